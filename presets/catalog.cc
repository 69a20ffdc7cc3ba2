#include "presets/catalog.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace kaito::presets {

// Defined in the generated embedded_catalog.cc.
extern const char* const kEmbeddedModelsYaml;
extern const char* const kEmbeddedSkusYaml;

namespace {

std::string Lower(const std::string& s) { return absl::AsciiStrToLower(s); }

// Reads one YAML map with a fixed set of keys; every problem names the entry.
class EntryReader {
 public:
  EntryReader(const YAML::Node& node, std::string where, std::vector<std::string>& errors)
      : node_(node), where_(std::move(where)), errors_(errors) {
    if (!node_.IsMap()) Error("", "expected a mapping");
  }

  void Error(const std::string& field, const std::string& message) {
    errors_.push_back(where_ + (field.empty() ? "" : ": " + field) + ": " + message);
  }

  std::optional<std::string> Scalar(const std::string& key, bool required) {
    seen_.insert(key);
    if (!node_.IsMap()) return std::nullopt;
    YAML::Node v = node_[key];
    if (!v.IsDefined() || v.IsNull()) {
      if (required) Error(key, "required");
      return std::nullopt;
    }
    if (!v.IsScalar()) {
      Error(key, "expected a scalar");
      return std::nullopt;
    }
    return v.Scalar();
  }

  std::string String(const std::string& key, bool required = false) {
    return Scalar(key, required).value_or("");
  }

  bool Bool(const std::string& key, bool fallback) {
    auto v = Scalar(key, false);
    if (!v) return fallback;
    if (*v == "true") return true;
    if (*v == "false") return false;
    Error(key, "expected true or false, got \"" + *v + "\"");
    return fallback;
  }

  int64_t Int(const std::string& key, bool required = false) {
    auto v = Scalar(key, required);
    int64_t out = 0;
    if (v && (!absl::SimpleAtoi(*v, &out) || out < 0)) {
      Error(key, "expected a non-negative integer, got \"" + *v + "\"");
    }
    return out;
  }

  int64_t Quantity(const std::string& key, bool required = false) {
    auto v = Scalar(key, required);
    if (!v) return 0;
    auto q = ParseQuantity(*v);
    if (!q.ok()) {
      Error(key, std::string(q.status().message()));
      return 0;
    }
    return *q;
  }

  std::vector<std::string> List(const std::string& key) {
    seen_.insert(key);
    std::vector<std::string> out;
    if (!node_.IsMap()) return out;
    YAML::Node v = node_[key];
    if (!v.IsDefined() || v.IsNull()) return out;
    if (!v.IsSequence()) {
      Error(key, "expected a list");
      return out;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      YAML::Node item = v[i];
      if (!item.IsScalar()) {
        Error(key + "[" + std::to_string(i) + "]", "expected a string");
        continue;
      }
      out.push_back(item.Scalar());
    }
    return out;
  }

  YAML::Node Child(const std::string& key) {
    seen_.insert(key);
    return node_.IsMap() ? node_[key] : YAML::Node();
  }

  // Unknown keys are errors: a typo must not silently drop a fact.
  void RejectUnknown() {
    if (!node_.IsMap()) return;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      const YAML::Node key = it->first;
      if (key.IsScalar() && !seen_.contains(key.Scalar())) {
        Error(key.Scalar(), "unknown field");
      }
    }
  }

 private:
  YAML::Node node_;
  std::string where_;
  std::vector<std::string>& errors_;
  std::set<std::string> seen_;
};

absl::StatusOr<YAML::Node> Load(const std::string& text, const std::string& file) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": malformed YAML at line ",
                                                   e.mark.line + 1, ": ", e.msg));
  }
}

std::string ReadFile(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

absl::StatusOr<int64_t> ParseQuantity(const std::string& text) {
  static const std::pair<const char*, int64_t> kSuffixes[] = {
      {"Ki", int64_t{1} << 10}, {"Mi", int64_t{1} << 20}, {"Gi", int64_t{1} << 30},
      {"Ti", int64_t{1} << 40}};
  std::string number = text;
  int64_t unit = 1;
  for (const auto& [suffix, scale] : kSuffixes) {
    if (text.size() > 2 && text.compare(text.size() - 2, 2, suffix) == 0) {
      number = text.substr(0, text.size() - 2);
      unit = scale;
      break;
    }
  }
  double value = 0;
  if (number.empty() || !absl::SimpleAtod(number, &value) || !std::isfinite(value) ||
      value < 0 || value * static_cast<double>(unit) > 9.0e18) {
    return absl::InvalidArgumentError("\"" + text +
                                      "\" is not a quantity (e.g. 27.31Gi, 512Mi, 1024)");
  }
  return static_cast<int64_t>(std::ceil(value * static_cast<double>(unit)));
}

std::string FormatGi(int64_t bytes) {
  std::string s = absl::StrFormat("%.2f", static_cast<double>(bytes) / kGiB);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s + "Gi";
}

std::string ModelPreset::ServedName() const {
  const std::string& source = id.empty() ? name : id;
  size_t slash = source.rfind('/');
  return Lower(slash == std::string::npos ? source : source.substr(slash + 1));
}

int Sku::ComputeCapability() const {
  size_t dot = compute_capability.find('.');
  int major = 0, minor = 0;
  if (dot == std::string::npos || !absl::SimpleAtoi(compute_capability.substr(0, dot), &major) ||
      !absl::SimpleAtoi(compute_capability.substr(dot + 1), &minor)) {
    return 0;
  }
  return major * 10 + minor;
}

absl::StatusOr<Catalog> Catalog::Parse(const std::string& models_yaml,
                                       const std::string& skus_yaml) {
  std::vector<std::string> errors;
  Catalog catalog;

  auto models = Load(models_yaml, "models.yaml");
  if (!models.ok()) return models.status();
  YAML::Node list = (*models)["models"];
  if (!list.IsSequence()) {
    return absl::InvalidArgumentError("models.yaml: expected a top-level list `models`");
  }
  for (size_t i = 0; i < list.size(); ++i) {
    YAML::Node node = list[i];
    std::string label = node.IsMap() && node["name"].IsScalar() ? node["name"].Scalar() : "";
    EntryReader r(node, absl::StrCat("models.yaml: models[", i, "] (", label, ")"), errors);
    ModelPreset m;
    m.name = r.String("name", true);
    if (m.name != Lower(m.name)) r.Error("name", "must be lower case");
    m.id = r.String("id");
    m.aliases = r.List("aliases");
    m.weights_bytes = r.Quantity("weights", true);
    m.disk_bytes = r.Quantity("disk", true);
    m.context_length = r.Int("contextLength");
    m.bytes_per_token = r.Int("bytesPerToken");
    m.architecture = r.String("architecture");
    m.quantization = r.String("quantization");
    m.dtype = r.String("dtype");
    if (m.dtype.empty()) m.dtype = m.quantization.empty() ? "bfloat16" : "auto";
    m.vllm = r.Bool("vllm", true);
    m.transformers = r.Bool("transformers", false);
    m.distributed = r.Bool("distributed", true);
    m.gated = r.Bool("gated", false);
    m.download_at_runtime = r.Bool("downloadAtRuntime", true);
    m.deprecated = r.Bool("deprecated", false);
    m.disallow_lora = r.Bool("disallowLoRA", false);
    m.tool_call_parser = r.String("toolCallParser");
    m.reasoning_parser = r.String("reasoningParser");
    m.chat_template = r.String("chatTemplate");
    m.tokenizer_mode = r.String("tokenizerMode");
    m.tag = r.String("tag");
    YAML::Node tuning = r.Child("tuning");
    if (tuning.IsDefined() && !tuning.IsNull()) {
      EntryReader t(tuning, absl::StrCat("models.yaml: models[", i, "] (", label, "): tuning"),
                    errors);
      TuningSupport ts;
      ts.disk_bytes = t.Quantity("disk", true);
      ts.model_bytes = t.Quantity("modelSize", true);
      auto methods = t.List("methods");
      if (!methods.empty()) ts.methods = methods;
      for (const auto& method : ts.methods) {
        if (method != "lora" && method != "qlora") t.Error("methods", "unknown method " + method);
      }
      t.RejectUnknown();
      m.tuning = ts;
    }
    r.RejectUnknown();
    if (!m.vllm && !m.transformers) r.Error("", "needs at least one runtime (vllm or transformers)");
    const size_t index = catalog.models_.size();
    for (const std::string& key : [&] {
           std::vector<std::string> keys = {m.name};
           if (!m.id.empty()) keys.push_back(m.id);
           keys.insert(keys.end(), m.aliases.begin(), m.aliases.end());
           return keys;
         }()) {
      if (key.empty()) continue;
      auto [it, inserted] = catalog.model_index_.emplace(Lower(key), index);
      if (!inserted && it->second != index) {
        r.Error("name", "\"" + key + "\" is already used by " + catalog.models_[it->second].name);
      }
    }
    catalog.models_.push_back(std::move(m));
  }

  auto skus = Load(skus_yaml, "skus.yaml");
  if (!skus.ok()) return skus.status();
  if (!skus->IsMap()) return absl::InvalidArgumentError("skus.yaml: expected clouds at the top");
  for (auto it = skus->begin(); it != skus->end(); ++it) {
    const std::string cloud = it->first.as<std::string>();
    if (cloud != "azure" && cloud != "aws" && cloud != "arc") {
      errors.push_back("skus.yaml: " + cloud + ": unknown cloud (azure, aws, arc)");
      continue;
    }
    const YAML::Node entries = it->second;
    if (!entries.IsSequence()) {
      errors.push_back("skus.yaml: " + cloud + ": expected a list");
      continue;
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      YAML::Node node = entries[i];
      std::string label = node.IsMap() && node["name"].IsScalar() ? node["name"].Scalar() : "";
      EntryReader r(node, absl::StrCat("skus.yaml: ", cloud, "[", i, "] (", label, ")"), errors);
      Sku s;
      s.cloud = cloud;
      s.name = r.String("name", true);
      s.gpu_model = r.String("gpuModel", true);
      s.gpu_count = static_cast<int>(r.Int("gpuCount", true));
      s.gpu_memory_bytes = r.Quantity("gpuMemory", true);
      s.nvme = r.Bool("nvme", false);
      s.compute_capability = r.String("computeCapability");
      s.retired = r.Bool("retired", false);
      r.RejectUnknown();
      if (s.gpu_count <= 0) r.Error("gpuCount", "must be at least 1");
      if (!s.compute_capability.empty() && s.ComputeCapability() == 0) {
        r.Error("computeCapability", "expected MAJOR.MINOR, got \"" + s.compute_capability + "\"");
      }
      auto [pos, inserted] =
          catalog.sku_index_.emplace(cloud + "/" + Lower(s.name), catalog.skus_.size());
      if (!inserted) r.Error("name", "duplicate");
      catalog.skus_.push_back(std::move(s));
    }
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError("invalid catalog: " + absl::StrJoin(errors, "; "));
  }
  return catalog;
}

absl::StatusOr<Catalog> Catalog::Embedded() {
  return Parse(kEmbeddedModelsYaml, kEmbeddedSkusYaml);
}

absl::StatusOr<Catalog> Catalog::FromDirectory(const std::string& dir) {
  bool ok_models = false, ok_skus = false;
  std::string models = ReadFile(dir + "/models.yaml", &ok_models);
  std::string skus = ReadFile(dir + "/skus.yaml", &ok_skus);
  if (!ok_models) return absl::NotFoundError("cannot read " + dir + "/models.yaml");
  if (!ok_skus) return absl::NotFoundError("cannot read " + dir + "/skus.yaml");
  return Parse(models, skus);
}

const ModelPreset* Catalog::FindModel(const std::string& name) const {
  auto it = model_index_.find(Lower(name));
  return it == model_index_.end() ? nullptr : &models_[it->second];
}

const Sku* Catalog::FindSku(const std::string& cloud, const std::string& name) const {
  auto it = sku_index_.find(cloud + "/" + Lower(name));
  return it == sku_index_.end() ? nullptr : &skus_[it->second];
}

std::vector<const Sku*> Catalog::SkusOf(const std::string& cloud) const {
  std::vector<const Sku*> out;
  for (const Sku& s : skus_) {
    if (s.cloud == cloud) out.push_back(&s);
  }
  return out;
}

}  // namespace kaito::presets
