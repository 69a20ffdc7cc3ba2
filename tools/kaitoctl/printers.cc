#include "tools/kaitoctl/printers.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/manifest_codec.h"
#include "presets/renderer.h"

namespace kaito::ctl {
namespace {

absl::Time ToTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string InstanceType(const v1::Workspace& ws) {
  return ws.resource().instance_type().empty() ? "<none>" : ws.resource().instance_type();
}

std::string WorkspaceReady(const v1::Workspace& ws) {
  // Kaito has no WorkspaceReady condition; readiness is WorkspaceSucceeded=True.
  std::string ready = ConditionStatus(ws, "WorkspaceReady");
  return ready != "Unknown" ? ready : ConditionStatus(ws, "WorkspaceSucceeded");
}

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
    r.push_back(ws.status().state().empty() ? "<none>" : ws.status().state());
    r.push_back(ws.status().worker_nodes().empty()
                    ? "<none>"
                    : absl::StrJoin(ws.status().worker_nodes(), ","));
  }
  r.push_back(ws.metadata().has_creation_timestamp()
                  ? HumanAge(now - ToTime(ws.metadata().creation_timestamp()))
                  : "<unknown>");
  return r;
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

std::string FormatPlan(const v1::WorkspacePlan& p) {
  std::string out = "  plan:\n";
  auto line = [&out](const std::string& k, const std::string& v) {
    if (!v.empty()) out += "    " + k + ":" + std::string(k.size() < 17 ? 17 - k.size() : 1, ' ') + v + "\n";
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
    line("memory per GPU", "~" + p.estimated_memory_per_gpu() +
                               (p.gpu_memory_per_gpu().empty() ? "" : " of " + p.gpu_memory_per_gpu()) +
                               (p.max_model_len() > 0
                                    ? " (weights + runtime + KV cache for max-model-len " +
                                          std::to_string(p.max_model_len()) + ")"
                                    : ""));
  }
  line("sizing problem", p.sizing_error());
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

std::string DescribeWorkspace(const v1::Workspace& ws, absl::Time now) {
  const auto& m = ws.metadata();
  std::string out;
  auto line = [&out](const std::string& k, const std::string& v) {
    out += k + ":" + std::string(k.size() < 19 ? 19 - k.size() : 1, ' ') + v + "\n";
  };
  line("Name", m.name());
  line("Namespace", m.namespace_());
  std::vector<std::string> labels, annotations;
  for (const auto& [k, v] : m.labels()) labels.push_back(k + "=" + v);
  for (const auto& [k, v] : m.annotations()) annotations.push_back(k + ": " + v);
  std::sort(labels.begin(), labels.end());
  std::sort(annotations.begin(), annotations.end());
  line("Labels", labels.empty() ? "<none>" : absl::StrJoin(labels, ", "));
  line("Annotations", annotations.empty() ? "<none>" : absl::StrJoin(annotations, ", "));
  line("API Version", ws.api_version());
  line("UID", m.uid());
  line("Resource Version", m.resource_version());
  line("Generation", std::to_string(m.generation()));
  if (m.has_creation_timestamp()) {
    line("Created", google::protobuf::util::TimeUtil::ToString(m.creation_timestamp()) + " (" +
                        HumanAge(now - ToTime(m.creation_timestamp())) + " ago)");
  }
  if (m.has_deletion_timestamp()) {
    line("Deleting since", google::protobuf::util::TimeUtil::ToString(m.deletion_timestamp()));
  }
  if (!m.finalizers().empty()) line("Finalizers", absl::StrJoin(m.finalizers(), ", "));
  // The spec as the user wrote it, in YAML.
  auto section = [&out](const std::string& title, const google::protobuf::Message& msg) {
    out += title + ":\n";
    std::string yaml = MessageToYaml(msg);
    for (absl::string_view l : absl::StrSplit(yaml, '\n', absl::SkipEmpty())) {
      out += "  " + std::string(l) + "\n";
    }
  };
  if (ws.has_resource()) section("Resource", ws.resource());
  if (ws.has_inference()) section("Inference", ws.inference());
  if (ws.has_tuning()) section("Tuning", ws.tuning());
  out += "Status:\n";
  out += "  State:             " + (ws.status().state().empty() ? "<none>" : ws.status().state()) +
         "\n";
  out += "  Target Node Count: " + std::to_string(ws.status().target_node_count()) + "\n";
  out += "  Worker Nodes:      " +
         (ws.status().worker_nodes().empty() ? "<none>"
                                             : absl::StrJoin(ws.status().worker_nodes(), ", ")) +
         "\n";
  out += "Conditions:\n";
  if (ws.status().conditions().empty()) {
    out += "  <none>\n";
  } else {
    std::vector<std::vector<std::string>> rows = {
        {"  Type", "Status", "Reason", "Age", "Message"}};
    for (const auto& c : ws.status().conditions()) {
      rows.push_back({"  " + c.type(), c.status(), c.reason(),
                      c.has_last_transition_time()
                          ? HumanAge(now - ToTime(c.last_transition_time()))
                          : "<unknown>",
                      c.message()});
    }
    out += FormatTable(rows);
  }
  return out;
}

}  // namespace kaito::ctl
