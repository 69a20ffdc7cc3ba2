#include "agent/gpu/fake_gpu_probe.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kaito::agent {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int kMaxGpusPerNode = 1024;

std::string DefaultUuid(const std::string& node_name, size_t index) {
  return absl::StrCat("GPU-", node_name, "-", index);
}

absl::Status BadPart(const std::string& part, const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("fake GPU spec \"", part, "\": ", why,
                   "; want COUNTxMODEL:MEMORY_GIB[:CC], e.g. 1xA100:80:8.0"));
}

bool ValidComputeCapability(absl::string_view cc) {
  std::vector<absl::string_view> parts = absl::StrSplit(cc, '.');
  if (parts.size() != 2) return false;
  for (absl::string_view p : parts) {
    if (p.empty() || p.size() > 3) return false;
    for (char c : p) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
  }
  return true;
}

// Parses a positive GiB amount (integer or decimal) into bytes.
bool ParseGiB(absl::string_view text, int64_t* bytes) {
  double gib = 0;
  if (!absl::SimpleAtod(text, &gib) || !std::isfinite(gib) || gib <= 0 || gib > 1e6) {
    return false;
  }
  *bytes = static_cast<int64_t>(std::llround(gib * static_cast<double>(kGiB)));
  return true;
}

v1::GpuInfo HealthyGpu(const std::string& model, int64_t memory, const std::string& cc) {
  v1::GpuInfo gpu;
  gpu.set_model(model);
  gpu.set_memory_bytes(memory);
  gpu.set_compute_capability(cc);
  gpu.set_healthy(true);
  return gpu;
}

absl::Status ParseOne(absl::string_view raw, std::vector<v1::GpuInfo>& out) {
  const std::string part(absl::StripAsciiWhitespace(raw));
  size_t digits = 0;
  while (digits < part.size() && std::isdigit(static_cast<unsigned char>(part[digits]))) {
    ++digits;
  }
  if (digits == 0 || digits >= part.size() || (part[digits] != 'x' && part[digits] != 'X')) {
    return BadPart(part, "it must start with a GPU count and 'x'");
  }
  int count = 0;
  if (!absl::SimpleAtoi(part.substr(0, digits), &count) || count < 1 || count > kMaxGpusPerNode) {
    return BadPart(part, absl::StrCat("the count must be 1 to ", kMaxGpusPerNode));
  }
  std::vector<std::string> fields = absl::StrSplit(part.substr(digits + 1), ':');
  if (fields.size() < 2 || fields.size() > 3) {
    return BadPart(part, "it needs a model and a memory size separated by ':'");
  }
  const std::string model(absl::StripAsciiWhitespace(fields[0]));
  if (model.empty()) return BadPart(part, "the model is empty");
  int64_t memory = 0;
  if (!ParseGiB(absl::StripAsciiWhitespace(fields[1]), &memory)) {
    return BadPart(part, absl::StrCat("memory \"", fields[1], "\" is not a positive GiB amount"));
  }
  std::string cc;
  if (fields.size() == 3) {
    cc = std::string(absl::StripAsciiWhitespace(fields[2]));
    if (!ValidComputeCapability(cc)) {
      return BadPart(part,
                     absl::StrCat("compute capability \"", cc, "\" is not MAJOR.MINOR, e.g. 8.0"));
    }
  }
  if (out.size() + count > static_cast<size_t>(kMaxGpusPerNode)) {
    return BadPart(part, absl::StrCat("more than ", kMaxGpusPerNode, " GPUs in all"));
  }
  for (int i = 0; i < count; ++i) out.push_back(HealthyGpu(model, memory, cc));
  return absl::OkStatus();
}

void AssignUuids(std::vector<v1::GpuInfo>& gpus, const std::string& node_name) {
  for (size_t i = 0; i < gpus.size(); ++i) {
    if (gpus[i].uuid().empty()) gpus[i].set_uuid(DefaultUuid(node_name, i));
  }
}

absl::Status ParseYamlEntry(const YAML::Node& entry, size_t index, std::vector<v1::GpuInfo>& out) {
  const std::string where = absl::StrCat("fake GPU file entry ", index + 1);
  if (!entry.IsMap()) return absl::InvalidArgumentError(where + ": not a mapping");
  static const char* kKnown[] = {"model",   "memoryGiB",    "computeCapability", "count",
                                 "healthy", "healthReason", "memoryUsedGiB",     "uuid"};
  for (const auto& kv : entry) {
    const std::string key = kv.first.as<std::string>();
    bool known = false;
    for (const char* k : kKnown) known = known || key == k;
    if (!known) return absl::InvalidArgumentError(where + ": unknown field \"" + key + "\"");
  }
  const std::string model = entry["model"] ? entry["model"].as<std::string>() : "";
  if (model.empty()) return absl::InvalidArgumentError(where + ": model is required");
  int64_t memory = 0;
  if (!entry["memoryGiB"] || !ParseGiB(entry["memoryGiB"].as<std::string>(), &memory)) {
    return absl::InvalidArgumentError(where + ": memoryGiB must be a positive number");
  }
  std::string cc = entry["computeCapability"] ? entry["computeCapability"].as<std::string>() : "";
  if (!cc.empty() && !ValidComputeCapability(cc)) {
    return absl::InvalidArgumentError(where + ": computeCapability \"" + cc +
                                      "\" is not MAJOR.MINOR");
  }
  int count = 1;
  if (entry["count"] && (!absl::SimpleAtoi(entry["count"].as<std::string>(), &count) || count < 1 ||
                         count > kMaxGpusPerNode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": count must be 1 to ", kMaxGpusPerNode));
  }
  bool healthy = entry["healthy"] ? entry["healthy"].as<bool>() : true;
  int64_t used = 0;
  if (entry["memoryUsedGiB"]) {
    double gib = 0;
    if (!absl::SimpleAtod(entry["memoryUsedGiB"].as<std::string>(), &gib) || gib < 0) {
      return absl::InvalidArgumentError(where + ": memoryUsedGiB must be a number >= 0");
    }
    used = static_cast<int64_t>(std::llround(gib * static_cast<double>(kGiB)));
  }
  std::string uuid = entry["uuid"] ? entry["uuid"].as<std::string>() : "";
  if (!uuid.empty() && count != 1) {
    return absl::InvalidArgumentError(where + ": uuid needs count 1");
  }
  if (out.size() + count > static_cast<size_t>(kMaxGpusPerNode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": more than ", kMaxGpusPerNode, " GPUs in all"));
  }
  for (int i = 0; i < count; ++i) {
    v1::GpuInfo gpu = HealthyGpu(model, memory, cc);
    gpu.set_healthy(healthy);
    if (entry["healthReason"]) gpu.set_health_reason(entry["healthReason"].as<std::string>());
    gpu.set_memory_used_bytes(used);
    gpu.set_uuid(uuid);
    out.push_back(std::move(gpu));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<v1::GpuInfo>> ParseFakeGpuSpec(const std::string& spec,
                                                          const std::string& node_name) {
  std::vector<v1::GpuInfo> gpus;
  if (absl::StripAsciiWhitespace(spec).empty()) return gpus;
  for (absl::string_view part : absl::StrSplit(spec, ',')) {
    if (absl::Status s = ParseOne(part, gpus); !s.ok()) return s;
  }
  AssignUuids(gpus, node_name);
  return gpus;
}

absl::StatusOr<std::vector<v1::GpuInfo>> ParseFakeGpuFile(const std::string& content,
                                                          const std::string& node_name) {
  YAML::Node root;
  bool yaml = false;
  try {
    root = YAML::Load(content);
    yaml = root.IsMap() || root.IsSequence();
  } catch (const YAML::Exception&) {
    yaml = false;  // Not YAML: lines of specs.
  }
  std::vector<v1::GpuInfo> gpus;
  if (yaml) {
    try {
      YAML::Node list = root;
      if (root.IsMap()) {
        if (root.size() != 1 || !root["gpus"]) {
          return absl::InvalidArgumentError("fake GPU file: want a top-level \"gpus\" list");
        }
        list = root["gpus"];
        if (list.IsNull()) return gpus;
        if (!list.IsSequence()) {
          return absl::InvalidArgumentError("fake GPU file: \"gpus\" must be a list");
        }
      }
      for (size_t i = 0; i < list.size(); ++i) {
        if (absl::Status s = ParseYamlEntry(list[i], i, gpus); !s.ok()) return s;
      }
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("fake GPU file: ", e.what()));
    }
  } else {
    std::istringstream lines(content);
    std::string line;
    int number = 0;
    while (std::getline(lines, line)) {
      ++number;
      const size_t hash = line.find('#');
      if (hash != std::string::npos) line.resize(hash);
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      auto more = ParseFakeGpuSpec(line, node_name);
      if (!more.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("fake GPU file line ", number, ": ", more.status().message()));
      }
      for (auto& gpu : *more) {
        gpu.clear_uuid();
        gpus.push_back(std::move(gpu));
      }
    }
  }
  AssignUuids(gpus, node_name);
  return gpus;
}

FakeGpuProbe::FakeGpuProbe(std::vector<v1::GpuInfo> gpus, std::string node_name)
    : node_name_(std::move(node_name)) {
  AssignUuids(gpus, node_name_);
  gpus_ = std::move(gpus);
}

FakeGpuProbe::FakeGpuProbe(std::string path, std::string node_name, bool from_file)
    : node_name_(std::move(node_name)), path_(std::move(path)), from_file_(from_file) {}

absl::StatusOr<std::unique_ptr<FakeGpuProbe>> FakeGpuProbe::FromSpec(const std::string& spec,
                                                                     const std::string& node_name) {
  auto gpus = ParseFakeGpuSpec(spec, node_name);
  if (!gpus.ok()) return gpus.status();
  return std::make_unique<FakeGpuProbe>(std::move(*gpus), node_name);
}

std::unique_ptr<FakeGpuProbe> FakeGpuProbe::FromFile(std::string path, std::string node_name) {
  return std::unique_ptr<FakeGpuProbe>(
      new FakeGpuProbe(std::move(path), std::move(node_name), /*from_file=*/true));
}

absl::StatusOr<std::vector<v1::GpuInfo>> FakeGpuProbe::Probe() {
  if (!from_file_) {
    absl::MutexLock lock(&mu_);
    return gpus_;
  }
  std::ifstream in(path_);
  if (!in) return absl::UnavailableError("cannot read fake GPU file " + path_);
  std::stringstream content;
  content << in.rdbuf();
  auto gpus = ParseFakeGpuFile(content.str(), node_name_);
  if (!gpus.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", gpus.status().message()));
  }
  return gpus;
}

void FakeGpuProbe::Set(std::vector<v1::GpuInfo> gpus) {
  AssignUuids(gpus, node_name_);
  absl::MutexLock lock(&mu_);
  gpus_ = std::move(gpus);
}

}  // namespace kaito::agent
