#include "tools/kaitoctl/printers.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/manifest_codec.h"
#include "presets/renderer.h"

namespace kaito::ctl {
namespace {

constexpr char kLabelWorkspace[] = "kaito.sh/workspace";
constexpr char kLabelWorkspaceNamespace[] = "kaito.sh/workspacenamespace";
// The column where the values of `describe` start, as kubectl's tabwriter lines them up.
constexpr size_t kValueColumn = 20;

absl::Time ToTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string OrNone(const std::string& s) { return s.empty() ? "<none>" : s; }

std::string Age(const v1::ObjectMeta& m, absl::Time now) {
  return m.has_creation_timestamp() ? HumanAge(now - ToTime(m.creation_timestamp())) : "<unknown>";
}

// "2024-05-01T10:00:00Z (5m ago)", or "(in 30s)" for a time still ahead.
std::string TimeAndAge(const google::protobuf::Timestamp& ts, absl::Time now) {
  const absl::Time t = ToTime(ts);
  return google::protobuf::util::TimeUtil::ToString(ts) +
         (t > now ? " (in " + HumanAge(t - now) + ")" : " (" + HumanAge(now - t) + " ago)");
}

std::string InstanceType(const v1::Workspace& ws) { return OrNone(ws.resource().instance_type()); }

std::string WorkspaceReady(const v1::Workspace& ws) {
  // Kaito has no WorkspaceReady condition; readiness is WorkspaceSucceeded=True.
  std::string ready = ConditionStatus(ws, "WorkspaceReady");
  return ready != "Unknown" ? ready : ConditionStatus(ws, "WorkspaceSucceeded");
}

const v1::Condition* FindCondition(const google::protobuf::RepeatedPtrField<v1::Condition>& all,
                                   const std::string& type) {
  for (const auto& c : all) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

// "namespace/name" of the workspace a claim or workload is labelled with.
std::string WorkspaceOf(const v1::ObjectMeta& m) {
  auto name = m.labels().find(kLabelWorkspace);
  if (name == m.labels().end()) return "<none>";
  auto ns = m.labels().find(kLabelWorkspaceNamespace);
  return ns == m.labels().end() || ns->second.empty() ? name->second
                                                      : ns->second + "/" + name->second;
}

// The phase of a pod-like object, "Terminating" while it is being deleted.
std::string Phase(const v1::ObjectMeta& m, const std::string& phase) {
  if (m.has_deletion_timestamp()) return "Terminating";
  return phase.empty() ? "Pending" : phase;
}

// Newlines and surrounding blanks removed, so that a message stays on its table row.
std::string OneLine(const std::string& text) {
  std::string s(absl::StripAsciiWhitespace(text));
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  return s;
}

// Bytes as Kubernetes quantities: "80Gi", or "81559Mi" when not a whole number of GiB.
std::string Bytes(int64_t bytes) {
  constexpr int64_t kMi = int64_t{1} << 20, kGi = int64_t{1} << 30;
  if (bytes <= 0) return "<unknown>";
  if (bytes % kGi == 0) return absl::StrCat(bytes / kGi, "Gi");
  if (bytes % kMi == 0) return absl::StrCat(bytes / kMi, "Mi");
  return absl::StrCat(bytes);
}

std::vector<std::string> SortedLabels(const google::protobuf::Map<std::string, std::string>& m,
                                      const std::string& separator) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k + separator + v);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Taints(const google::protobuf::RepeatedPtrField<v1::Taint>& taints) {
  std::vector<std::string> out;
  for (const auto& t : taints) {
    out.push_back(t.key() + (t.value().empty() ? "" : "=" + t.value()) + ":" + t.effect());
  }
  return out;
}

// `describe` text under construction: "Key:   value" lines with the values in one column,
// and indented tables.
class DescribeText {
 public:
  // One line, or one line per value with the rest aligned under the first ("<none>" when
  // there is none), as kubectl prints labels.
  void Field(const std::string& key, const std::vector<std::string>& values, int indent = 0) {
    // Nested fields line up further right, past their longer keys.
    const size_t column = indent == 0 ? kValueColumn : kValueColumn + 4;
    std::string head = std::string(indent, ' ') + key + ":";
    head += std::string(head.size() < column ? column - head.size() : 1, ' ');
    if (values.empty()) {
      out_ += head + "<none>\n";
      return;
    }
    for (size_t i = 0; i < values.size(); ++i) {
      out_ += (i == 0 ? head : std::string(head.size(), ' ')) + values[i] + "\n";
    }
  }
  void Field(const std::string& key, const std::string& value, int indent = 0) {
    Field(key, std::vector<std::string>{OrNone(value)}, indent);
  }

  // "Title:" and the table indented by two, with kubectl's dashes under the headers; or
  // "Title:  <none>" without rows.
  void Table(const std::string& title, const std::vector<std::string>& headers,
             const std::vector<std::vector<std::string>>& rows) {
    if (rows.empty()) {
      Field(title, std::vector<std::string>{});
      return;
    }
    std::vector<std::vector<std::string>> all = {headers, {}};
    for (const auto& h : headers) all[1].push_back(std::string(h.size(), '-'));
    all.insert(all.end(), rows.begin(), rows.end());
    out_ += title + ":\n";
    Indented(FormatTable(all));
  }

  // Every line of `text` indented by two.
  void Indented(const std::string& text) {
    for (absl::string_view l : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      out_ += "  " + std::string(l) + "\n";
    }
  }

  void Metadata(const v1::ObjectMeta& m, const std::string& api_version, bool namespaced,
                absl::Time now) {
    Field("Name", m.name());
    if (namespaced) Field("Namespace", m.namespace_());
    Field("Labels", SortedLabels(m.labels(), "="));
    Field("Annotations", SortedLabels(m.annotations(), ": "));
    if (!api_version.empty()) Field("API Version", api_version);
    Field("UID", m.uid());
    Field("Resource Version", m.resource_version());
    if (m.generation() > 0) Field("Generation", std::to_string(m.generation()));
    if (m.has_creation_timestamp()) Field("Created", TimeAndAge(m.creation_timestamp(), now));
    if (m.has_deletion_timestamp()) {
      Field("Deleting since", TimeAndAge(m.deletion_timestamp(), now));
    }
    if (!m.finalizers().empty()) {
      Field("Finalizers", std::vector<std::string>(m.finalizers().begin(), m.finalizers().end()));
    }
  }

  void Conditions(const google::protobuf::RepeatedPtrField<v1::Condition>& conditions,
                  absl::Time now) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& c : conditions) {
      rows.push_back({c.type(), c.status(), OrNone(c.reason()),
                      c.has_last_transition_time()
                          ? HumanAge(now - ToTime(c.last_transition_time()))
                          : "<unknown>",
                      OneLine(c.message())});
    }
    if (rows.empty()) {
      out_ += "Conditions:\n  <none>\n";
      return;
    }
    Table("Conditions", {"Type", "Status", "Reason", "LastTransition", "Message"}, rows);
  }

  void Events(const std::optional<std::vector<v1::Event>>& events, absl::Time now,
              const std::string& kind, const std::string& name) {
    if (events) out_ += FormatEvents(*events, now, kind, name);
  }

  std::string& out() { return out_; }

 private:
  std::string out_;
};

}  // namespace

std::string ConditionStatus(const v1::Workspace& ws, const std::string& type) {
  for (const auto& c : ws.status().conditions()) {
    if (c.type() == type) return c.status().empty() ? "Unknown" : c.status();
  }
  return "Unknown";
}

std::string HumanAge(absl::Duration age) {
  if (age < absl::ZeroDuration()) age = absl::ZeroDuration();
  const int64_t s = absl::ToInt64Seconds(age);
  const int64_t m = s / 60, h = s / 3600, d = s / 86400;
  if (s < 120) return absl::StrCat(s, "s");
  if (m < 10) return s % 60 == 0 ? absl::StrCat(m, "m") : absl::StrCat(m, "m", s % 60, "s");
  if (h < 3) return absl::StrCat(m, "m");
  if (h < 8) return m % 60 == 0 ? absl::StrCat(h, "h") : absl::StrCat(h, "h", m % 60, "m");
  if (h < 48) return absl::StrCat(h, "h");
  if (d < 8) return h % 24 == 0 ? absl::StrCat(d, "d") : absl::StrCat(d, "d", h % 24, "h");
  if (d < 365 * 2) return absl::StrCat(d, "d");
  return absl::StrCat(d / 365, "y");
}

std::string Truncate(const std::string& text, size_t max_chars) {
  std::string s = OneLine(text);
  if (s.size() <= max_chars) return s;
  const size_t keep = max_chars > 3 ? max_chars - 3 : 0;
  size_t cut = keep;
  // Back up to the first byte of a UTF-8 character.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + std::string(max_chars - keep, '.');
}

std::vector<std::string> WorkspaceHeaders(bool wide, bool with_namespace) {
  std::vector<std::string> h;
  if (with_namespace) h.push_back("NAMESPACE");
  for (const char* c : {"NAME", "INSTANCE", "RESOURCEREADY", "INFERENCEREADY", "WORKSPACEREADY"}) {
    h.push_back(c);
  }
  if (wide) {
    for (const char* c : {"JOBSTARTED", "WORKSPACESUCCEEDED", "TARGETNODES", "STATE", "NODES"}) {
      h.push_back(c);
    }
  }
  h.push_back("AGE");
  if (wide) h.push_back("ENDPOINT");
  return h;
}

std::vector<std::string> WorkspaceRow(const v1::Workspace& ws, absl::Time now, bool wide,
                                      bool with_namespace) {
  std::vector<std::string> r;
  if (with_namespace) r.push_back(ws.metadata().namespace_());
  r.push_back(ws.metadata().name());
  r.push_back(InstanceType(ws));
  r.push_back(ConditionStatus(ws, "ResourceReady"));
  r.push_back(ConditionStatus(ws, "InferenceReady"));
  r.push_back(WorkspaceReady(ws));
  if (wide) {
    r.push_back(ConditionStatus(ws, "JobStarted"));
    r.push_back(ConditionStatus(ws, "WorkspaceSucceeded"));
    r.push_back(std::to_string(ws.status().target_node_count()));
    r.push_back(OrNone(ws.status().state()));
    r.push_back(OrNone(absl::StrJoin(ws.status().worker_nodes(), ",")));
  }
  r.push_back(Age(ws.metadata(), now));
  if (wide) r.push_back(OrNone(ws.status().endpoint()));
  return r;
}

std::string NodeReadiness(const v1::Node& node) {
  const v1::Condition* ready = FindCondition(node.status().conditions(), "Ready");
  if (ready == nullptr) return "Unknown";
  if (ready->status() == "True") return "Ready";
  if (ready->status() == "False") return "NotReady";
  return "Unknown";
}

std::vector<std::string> NodeHeaders(bool wide) {
  std::vector<std::string> h = {"NAME", "STATUS", "INSTANCE", "GPUS", "GPU", "AGE"};
  if (wide) h.insert(h.end(), {"NODECLAIM", "ADDRESS", "AGENT", "REASON"});
  return h;
}

std::vector<std::string> NodeRow(const v1::Node& node, absl::Time now, bool wide) {
  const auto& labels = node.metadata().labels();
  std::string count, models;
  if (!node.status().gpus().empty()) {
    count = std::to_string(node.status().gpus_size());
    std::vector<std::string> distinct;
    for (const auto& gpu : node.status().gpus()) {
      if (std::find(distinct.begin(), distinct.end(), gpu.model()) == distinct.end()) {
        distinct.push_back(gpu.model());
      }
    }
    models = absl::StrJoin(distinct, ",");
  } else {
    // Bring-your-own nodes: what the operator or GPU feature discovery labelled.
    auto capacity = node.status().capacity().find("nvidia.com/gpu");
    auto label = labels.find("nvidia.com/gpu.count");
    count = capacity != node.status().capacity().end() ? capacity->second
            : label != labels.end()                    ? label->second
                                                       : "0";
    auto product = labels.find("nvidia.com/gpu.product");
    if (product != labels.end()) models = product->second;
  }
  const std::string readiness = NodeReadiness(node);
  std::vector<std::string> r = {node.metadata().name(),
                                readiness,
                                OrNone(node.spec().instance_type()),
                                count,
                                OrNone(models),
                                Age(node.metadata(), now)};
  if (wide) {
    const v1::Condition* ready = FindCondition(node.status().conditions(), "Ready");
    r.push_back(OrNone(node.spec().node_claim()));
    r.push_back(OrNone(node.status().address()));
    r.push_back(OrNone(node.status().agent_version()));
    r.push_back(readiness != "Ready" && ready != nullptr ? OrNone(ready->reason()) : "<none>");
  }
  return r;
}

std::vector<std::string> NodeClaimHeaders(bool wide) {
  std::vector<std::string> h = {"NAME", "INSTANCE", "PHASE", "NODE", "WORKSPACE", "AGE"};
  if (wide) h.insert(h.end(), {"ATTEMPTS", "ERROR", "MESSAGE"});
  return h;
}

std::vector<std::string> NodeClaimRow(const v1::NodeClaim& claim, absl::Time now, bool wide) {
  const auto& st = claim.status();
  std::vector<std::string> r = {claim.metadata().name(),
                                OrNone(claim.spec().instance_type()),
                                Phase(claim.metadata(), st.phase()),
                                OrNone(st.node_name()),
                                WorkspaceOf(claim.metadata()),
                                Age(claim.metadata(), now)};
  if (wide) {
    r.push_back(std::to_string(st.attempts()));
    r.push_back(OrNone(st.error_code()));
    r.push_back(OrNone(Truncate(st.message(), 60)));
  }
  return r;
}

std::vector<std::string> WorkloadHeaders(bool wide, bool with_namespace) {
  std::vector<std::string> h;
  if (with_namespace) h.push_back("NAMESPACE");
  h.insert(h.end(), {"NAME", "PHASE", "NODE", "ROLE", "RESTARTS", "AGE"});
  if (wide) h.insert(h.end(), {"ENDPOINT", "REASON"});
  return h;
}

std::vector<std::string> WorkloadRow(const v1::Workload& workload, absl::Time now, bool wide,
                                     bool with_namespace) {
  const auto& m = workload.metadata();
  std::vector<std::string> r;
  if (with_namespace) r.push_back(m.namespace_());
  r.insert(r.end(), {m.name(), Phase(m, workload.status().phase()),
                     OrNone(workload.spec().node_name()), OrNone(workload.spec().role()),
                     std::to_string(workload.status().restarts()), Age(m, now)});
  if (wide) {
    r.push_back(OrNone(workload.status().endpoint()));
    r.push_back(OrNone(workload.status().reason()));
  }
  return r;
}

std::vector<std::string> EventHeaders(bool wide, bool with_namespace) {
  std::vector<std::string> h;
  if (with_namespace) h.push_back("NAMESPACE");
  h.insert(h.end(), {"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"});
  if (wide) h.insert(h.end(), {"SOURCE", "FIRST SEEN", "COUNT"});
  return h;
}

std::vector<std::string> EventRow(const v1::Event& event, absl::Time now, bool wide,
                                  bool with_namespace) {
  std::vector<std::string> r;
  if (with_namespace) r.push_back(event.metadata().namespace_());
  const auto& ref = event.involved_object();
  const auto seen = [&](const google::protobuf::Timestamp& t) {
    return t.seconds() == 0 && t.nanos() == 0 ? std::string("<unknown>")
                                              : HumanAge(now - ToTime(t));
  };
  r.insert(r.end(),
           {seen(event.has_last_timestamp() ? event.last_timestamp() : event.first_timestamp()),
            OrNone(event.type()), OrNone(event.reason()),
            absl::AsciiStrToLower(ref.kind()) + "/" + ref.name(), OneLine(event.message())});
  if (wide) {
    r.push_back(OrNone(event.source()));
    r.push_back(seen(event.first_timestamp()));
    r.push_back(std::to_string(std::max(1, event.count())));
  }
  return r;
}

std::vector<std::string> DataHeaders(bool with_namespace) {
  std::vector<std::string> h = {"NAME", "DATA", "AGE"};
  if (with_namespace) h.insert(h.begin(), "NAMESPACE");
  return h;
}

namespace {
std::vector<std::string> DataRow(const v1::ObjectMeta& m, size_t keys, absl::Time now,
                                 bool with_namespace) {
  std::vector<std::string> row;
  if (with_namespace) row.push_back(m.namespace_());
  row.push_back(m.name());
  row.push_back(std::to_string(keys));
  row.push_back(Age(m, now));
  return row;
}
}  // namespace

std::vector<std::string> ConfigMapRow(const v1::ConfigMap& map, absl::Time now,
                                      bool with_namespace) {
  return DataRow(map.metadata(), map.data().size() + map.binary_data().size(), now, with_namespace);
}

std::vector<std::string> SecretRow(const v1::Secret& secret, absl::Time now, bool with_namespace) {
  return DataRow(secret.metadata(), secret.data().size(), now, with_namespace);
}

std::vector<std::string> PresetHeaders(bool wide) {
  std::vector<std::string> h = {"NAME", "RUNTIMES", "WEIGHTS", "CONTEXT", "TUNING", "GATED"};
  if (wide) {
    for (const char* w : {"ID", "ARCHITECTURE", "QUANTIZATION", "DISTRIBUTED"}) h.push_back(w);
  }
  return h;
}

std::vector<std::string> PresetRow(const v1::ModelInfo& m, bool wide) {
  std::vector<std::string> row = {
      m.name() + (m.deprecated() ? " (deprecated)" : ""),
      absl::StrJoin(m.runtimes(), ","),
      m.weights(),
      m.context_length() ? std::to_string(m.context_length()) : "<unknown>",
      m.tuning_methods().empty() ? "-" : absl::StrJoin(m.tuning_methods(), ","),
      m.gated() ? "yes" : "no"};
  if (wide) {
    row.push_back(m.id());
    row.push_back(m.architecture());
    row.push_back(m.quantization().empty() ? "-" : m.quantization());
    row.push_back(m.distributed() ? "yes" : "no");
  }
  return row;
}

std::vector<std::string> SkuHeaders() {
  return {"NAME", "CLOUD", "GPUS", "GPU", "MEMORY", "PER-GPU", "CC", "NVME", "STATUS"};
}

std::vector<std::string> SkuRow(const v1::SkuInfo& sku) {
  return {sku.name(),
          sku.cloud(),
          std::to_string(sku.gpu_count()),
          sku.gpu_model(),
          sku.gpu_memory(),
          sku.gpu_memory_per_gpu(),
          sku.compute_capability().empty() ? "-" : sku.compute_capability(),
          sku.nvme() ? "yes" : "no",
          sku.retired() ? "retired" : "available"};
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 3, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string FormatQuota(const v1::QuotaHeadroom& q) {
  if (!q.known()) return "unknown (" + q.message() + ")";
  std::vector<std::string> parts;
  auto pool = [&parts](const std::string& name, int64_t used, int64_t limit) {
    if (limit < 0) return;
    parts.push_back(absl::StrCat(name, " ", used, " of ", limit, " vCPUs in use (",
                                 std::max<int64_t>(0, limit - used), " free)"));
  };
  pool(q.family(), q.family_used(), q.family_limit());
  pool("regional", q.regional_used(), q.regional_limit());
  if (parts.empty()) parts.push_back("no quota listed for " + q.family());
  return absl::StrCat(absl::StrJoin(parts, ", "), "; ", q.nodes(),
                      q.nodes() == 1 ? " node" : " nodes", " x ", q.vcpus_per_node(), " vCPUs ",
                      q.fits() ? "fit"
                               : "do NOT fit (raise the quota, or allow other instance types "
                                 "with kaito.sh/instance-type-fallback)");
}

std::string FormatPlan(const v1::WorkspacePlan& p) {
  std::string out = "  plan:\n";
  auto line = [&out](const std::string& k, const std::string& v) {
    if (!v.empty())
      out += "    " + k + ":" + std::string(k.size() < 17 ? 17 - k.size() : 1, ' ') + v + "\n";
  };
  line("kind", p.kind());
  line("preset", p.preset().empty() ? "<template>" : p.preset());
  line("runtime", p.runtime());
  std::string gpus;
  if (p.gpus_per_node() > 0) {
    gpus = " (" + std::to_string(p.gpus_per_node()) + "x " + p.gpu_model() + ", " +
           p.gpu_memory_per_gpu() + " per GPU)";
  }
  line("instance type", p.instance_type() + gpus);
  if (p.target_node_count() > 0) line("target nodes", std::to_string(p.target_node_count()));
  if (p.min_gpus() > 0) line("GPUs needed", std::to_string(p.min_gpus()));
  if (!p.estimated_memory_per_gpu().empty()) {
    line("memory per GPU",
         "~" + p.estimated_memory_per_gpu() +
             (p.gpu_memory_per_gpu().empty() ? "" : " of " + p.gpu_memory_per_gpu()) +
             (p.max_model_len() > 0 ? " (weights + runtime + KV cache for max-model-len " +
                                          std::to_string(p.max_model_len()) + ")"
                                    : ""));
  }
  line("sizing problem", p.sizing_error());
  if (p.has_quota()) line("quota", FormatQuota(p.quota()));
  if (!p.workloads().empty()) out += "    workloads:\n";
  for (const auto& w : p.workloads()) {
    out += "      " + w.name() + " (" + w.role() + ", " + std::to_string(w.gpus()) +
           (w.gpus() == 1 ? " GPU" : " GPUs") + "):\n";
    for (const auto& init : w.init_containers()) {
      out += "        init " + init.name() + ": " + presets::CommandLine(init) + "\n";
    }
    for (int i = 0; i < w.containers_size(); ++i) {
      const auto& c = w.containers(i);
      out += std::string("        ") + (i == 0 ? "run" : "sidecar " + c.name()) + ": " +
             presets::CommandLine(c) + "\n";
    }
  }
  return out;
}

std::string EventAge(const v1::Event& e, absl::Time now) {
  const bool has_first = e.has_first_timestamp(), has_last = e.has_last_timestamp();
  if (!has_first && !has_last) return "<unknown>";
  const absl::Time first = ToTime(has_first ? e.first_timestamp() : e.last_timestamp());
  const absl::Time last = ToTime(has_last ? e.last_timestamp() : e.first_timestamp());
  if (e.count() > 1) {
    return absl::StrCat(HumanAge(now - last), " (x", e.count(), " over ", HumanAge(now - first),
                        ")");
  }
  return HumanAge(now - first);
}

std::string FormatEvents(std::vector<v1::Event> events, absl::Time now,
                         const std::string& subject_kind, const std::string& subject_name) {
  auto last_seen = [](const v1::Event& e) {
    return ToTime(e.has_last_timestamp() ? e.last_timestamp() : e.first_timestamp());
  };
  std::stable_sort(events.begin(), events.end(), [&](const v1::Event& a, const v1::Event& b) {
    return last_seen(a) < last_seen(b);
  });
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : events) {
    const auto& about = e.involved_object();
    std::string message = OneLine(e.message());
    if (!about.kind().empty() && (about.kind() != subject_kind || about.name() != subject_name)) {
      message = absl::AsciiStrToLower(about.kind()) + "/" + about.name() + ": " + message;
    }
    rows.push_back(
        {OrNone(e.type()), OrNone(e.reason()), EventAge(e, now), OrNone(e.source()), message});
  }
  DescribeText text;
  text.Table("Events", {"Type", "Reason", "Age", "From", "Message"}, rows);
  return text.out();
}

std::string DescribeWorkspace(const v1::Workspace& ws, absl::Time now,
                              const DescribeExtras& extras) {
  DescribeText text;
  text.Metadata(ws.metadata(), ws.api_version(), /*namespaced=*/true, now);
  // The spec as the user wrote it, in YAML.
  auto section = [&text](const std::string& title, const google::protobuf::Message& msg) {
    text.out() += title + ":\n";
    text.Indented(MessageToYaml(msg));
  };
  if (ws.has_resource()) section("Resource", ws.resource());
  if (ws.has_inference()) section("Inference", ws.inference());
  if (ws.has_tuning()) section("Tuning", ws.tuning());
  if (ws.has_termination_grace_period_seconds()) {
    text.Field("Termination Grace Period",
               absl::StrCat(ws.termination_grace_period_seconds(), "s"));
  }
  const auto& st = ws.status();
  text.out() += "Status:\n";
  text.Field("State", st.state(), 2);
  text.Field("Target Node Count", std::to_string(st.target_node_count()), 2);
  text.Field("Worker Nodes", absl::StrJoin(st.worker_nodes(), ", "), 2);
  if (st.observed_generation() > 0) {
    text.Field("Observed Generation", std::to_string(st.observed_generation()), 2);
  }
  text.Conditions(st.conditions(), now);
  if (!st.endpoint().empty()) text.Field("Endpoint", st.endpoint());
  text.Field("Nodes", absl::StrJoin(st.worker_nodes(), ", "));
  if (extras.workloads) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& w : *extras.workloads) {
      rows.push_back({w.metadata().name(), Phase(w.metadata(), w.status().phase()),
                      OrNone(w.spec().node_name()), OrNone(w.spec().role()),
                      std::to_string(w.status().restarts()), OrNone(w.status().reason())});
    }
    text.Table("Workloads", {"NAME", "PHASE", "NODE", "ROLE", "RESTARTS", "REASON"}, rows);
  }
  if (extras.node_claims) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& c : *extras.node_claims) {
      rows.push_back({c.metadata().name(), Phase(c.metadata(), c.status().phase()),
                      OrNone(c.status().node_name()), std::to_string(c.status().attempts()),
                      OrNone(c.status().error_code()), OrNone(OneLine(c.status().message()))});
    }
    text.Table("Node claims", {"NAME", "PHASE", "NODE", "ATTEMPTS", "ERROR", "MESSAGE"}, rows);
  }
  text.Events(extras.events, now, "Workspace", ws.metadata().name());
  return text.out();
}

std::string DescribeNode(const v1::Node& node, absl::Time now,
                         const std::optional<std::vector<v1::Event>>& events) {
  DescribeText text;
  text.Metadata(node.metadata(), node.api_version(), /*namespaced=*/false, now);
  text.Field("Status", NodeReadiness(node));
  text.Field("Instance Type", node.spec().instance_type());
  text.Field("Provider ID", node.spec().provider_id());
  text.Field("Node Claim", node.spec().node_claim());
  text.Field("Taints", Taints(node.spec().taints()));
  text.Field("Address", node.status().address());
  text.Field("Agent Version", node.status().agent_version());
  text.Conditions(node.status().conditions(), now);
  std::vector<std::vector<std::string>> capacity;
  for (const auto& [resource, quantity] : node.status().capacity()) {
    capacity.push_back({resource + ":", quantity});
  }
  std::sort(capacity.begin(), capacity.end());
  if (capacity.empty()) {
    text.Field("Capacity", std::vector<std::string>{});
  } else {
    text.out() += "Capacity:\n";
    text.Indented(FormatTable(capacity));
  }
  std::vector<std::vector<std::string>> gpus;
  for (const auto& gpu : node.status().gpus()) {
    gpus.push_back({OrNone(gpu.uuid()), OrNone(gpu.model()), Bytes(gpu.memory_bytes()),
                    gpu.healthy() ? "True" : "False", OrNone(OneLine(gpu.health_reason()))});
  }
  text.Table("GPUs", {"UUID", "MODEL", "MEMORY", "HEALTHY", "REASON"}, gpus);
  text.Events(events, now, "Node", node.metadata().name());
  return text.out();
}

std::string DescribeNodeClaim(const v1::NodeClaim& claim, absl::Time now,
                              const std::optional<std::vector<v1::Event>>& events) {
  DescribeText text;
  text.Metadata(claim.metadata(), claim.api_version(), /*namespaced=*/false, now);
  text.Field("Workspace", WorkspaceOf(claim.metadata()));
  const auto& spec = claim.spec();
  text.out() += "Spec:\n";
  text.Field("Instance Type", spec.instance_type(), 2);
  text.Field("Image Family", spec.image_family(), 2);
  if (spec.disk_size_gib() > 0)
    text.Field("Disk Size", absl::StrCat(spec.disk_size_gib(), "Gi"), 2);
  text.Field("Node Labels", SortedLabels(spec.labels(), "="), 2);
  text.Field("Taints", Taints(spec.taints()), 2);
  const auto& st = claim.status();
  text.out() += "Status:\n";
  text.Field("Phase", Phase(claim.metadata(), st.phase()), 2);
  text.Field("Node", st.node_name(), 2);
  text.Field("Provider ID", st.provider_id(), 2);
  text.Field("Attempts", std::to_string(st.attempts()), 2);
  if (st.has_last_attempt_time()) {
    text.Field("Last Attempt", TimeAndAge(st.last_attempt_time(), now), 2);
  }
  if (st.has_next_attempt_time()) {
    text.Field("Next Attempt", TimeAndAge(st.next_attempt_time(), now), 2);
  }
  text.Field("Error",
             st.error_code().empty()
                 ? ""
                 : st.error_code() + (st.retryable() ? " (retryable)" : " (not retryable)"),
             2);
  text.Field("Message", OneLine(st.message()), 2);
  text.Conditions(st.conditions(), now);
  text.Events(events, now, "NodeClaim", claim.metadata().name());
  return text.out();
}

std::string DeletionBlockers(const v1::Workspace& ws) {
  std::vector<std::string> parts;
  parts.push_back("state " + OrNone(ws.status().state()));
  for (const auto& c : ws.status().conditions()) {
    std::string part = c.type() + "=" + c.status();
    if (!c.reason().empty()) part += " (" + c.reason() + ")";
    if (!c.message().empty()) part += ": " + OneLine(c.message());
    parts.push_back(part);
  }
  if (!ws.metadata().finalizers().empty()) {
    parts.push_back("finalizers " + absl::StrJoin(ws.metadata().finalizers(), ", "));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace kaito::ctl
