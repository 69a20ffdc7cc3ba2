// How kaitoctl shows objects: the tables of `get` (the workspace table of the seed document,
// nodes, node claims, workloads), the `describe` texts with their events, and ages.
//
// Every function here is pure: it formats what it is given at the time `now` it is given,
// and never calls the server, so that the output is unit-tested (test/tools/printers_test.cc).
// A table is a header row from `*Headers` and one `*Row` per object, printed by `FormatTable`;
// the `-o wide` columns come after AGE, as kubectl's do, except the workspace's historical
// wide columns (JOBSTARTED .. NODES) which sit before AGE as the seed document fixes them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kaito/v1/config.pb.h"
#include "kaito/v1/event.pb.h"
#include "kaito/v1/node.pb.h"
#include "kaito/v1/nodeclaim.pb.h"
#include "kaito/v1/presets.pb.h"
#include "kaito/v1/workload.pb.h"
#include "kaito/v1/workspace.pb.h"

namespace kaito::ctl {

// "True", "False" or "Unknown" (no such condition yet).
std::string ConditionStatus(const v1::Workspace& ws, const std::string& type);

// kubectl's short age: "42s", "5m10s", "45m", "3h20m", "20h", "3d4h", "12d", "2y".
std::string HumanAge(absl::Duration age);

// At most `max_chars` bytes of `text` on one line: newlines become spaces, and a longer text
// ends in "..." (cut at a UTF-8 character boundary).
std::string Truncate(const std::string& text, size_t max_chars);

// Column headers and one row per workspace. `wide` adds JOBSTARTED, WORKSPACESUCCEEDED,
// TARGETNODES, STATE, NODES before AGE and ENDPOINT after it; `with_namespace` puts
// NAMESPACE first.
std::vector<std::string> WorkspaceHeaders(bool wide, bool with_namespace);
std::vector<std::string> WorkspaceRow(const v1::Workspace& ws, absl::Time now, bool wide,
                                      bool with_namespace);

// "Ready", "NotReady" or "Unknown", from the node's Ready condition.
std::string NodeReadiness(const v1::Node& node);

// NAME STATUS INSTANCE GPUS GPU AGE; `wide` adds NODECLAIM ADDRESS AGENT REASON (the Ready
// condition's reason while the node is not Ready). GPUS and GPU come from the agent's GPU
// report, or for bring-your-own nodes from NVIDIA's feature-discovery labels.
std::vector<std::string> NodeHeaders(bool wide);
std::vector<std::string> NodeRow(const v1::Node& node, absl::Time now, bool wide);

// NAME INSTANCE PHASE NODE WORKSPACE AGE; `wide` adds ATTEMPTS ERROR MESSAGE (the message
// cut to 60 characters). WORKSPACE is "namespace/name" from the claim's labels.
std::vector<std::string> NodeClaimHeaders(bool wide);
std::vector<std::string> NodeClaimRow(const v1::NodeClaim& claim, absl::Time now, bool wide);

// NAME PHASE NODE ROLE RESTARTS AGE, as kubectl's pods; `wide` adds ENDPOINT REASON;
// `with_namespace` puts NAMESPACE first. PHASE is "Terminating" while the workload is
// being deleted.
std::vector<std::string> WorkloadHeaders(bool wide, bool with_namespace);
// `kubectl get events`' columns: LAST SEEN, TYPE, REASON, OBJECT (kind/name), MESSAGE;
// wide adds SOURCE, FIRST SEEN and COUNT.
std::vector<std::string> EventHeaders(bool wide, bool with_namespace);
std::vector<std::string> EventRow(const v1::Event& event, absl::Time now, bool wide,
                                  bool with_namespace);
std::vector<std::string> WorkloadRow(const v1::Workload& workload, absl::Time now, bool wide,
                                     bool with_namespace);

// NAME DATA AGE, as kubectl's configmaps and secrets; DATA counts the keys (a ConfigMap's
// `data` and `binaryData` together); `with_namespace` puts NAMESPACE first.
std::vector<std::string> DataHeaders(bool with_namespace);
std::vector<std::string> ConfigMapRow(const v1::ConfigMap& map, absl::Time now,
                                      bool with_namespace);
std::vector<std::string> SecretRow(const v1::Secret& secret, absl::Time now, bool with_namespace);

// The model catalog: NAME RUNTIMES WEIGHTS CONTEXT TUNING GATED; `wide` adds ID ARCHITECTURE
// QUANTIZATION DISTRIBUTED.
std::vector<std::string> PresetHeaders(bool wide);
std::vector<std::string> PresetRow(const v1::ModelInfo& model, bool wide);

// GPU instance types: NAME CLOUD GPUS GPU MEMORY PER-GPU CC NVME STATUS.
std::vector<std::string> SkuHeaders();
std::vector<std::string> SkuRow(const v1::SkuInfo& sku);

// Left-aligned columns separated by three spaces, as kubectl prints.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// The dry-run plan, indented under the "created (server dry run)" line.
std::string FormatPlan(const v1::WorkspacePlan& plan);
// The quota line of a plan: "FAMILY U of L vCPUs in use (F free), regional ...; N nodes x V
// vCPUs fit", or "unknown (why)".
std::string FormatQuota(const v1::QuotaHeadroom& quota);

// kubectl describe's Age of an event: the age of its first occurrence, or for an event seen
// `count` > 1 times "<age of the last> (x<count> over <age of the first>)".
std::string EventAge(const v1::Event& event, absl::Time now);

// kubectl describe's events section: "Events:  <none>", or the table
// `Type Reason Age From Message` sorted by last occurrence, newest last (stable for ties).
// Events about another object than `subject_kind`/`subject_name` (a workspace's node claims)
// get "<kind>/<name>: " in front of their message, lower-case kind as kubectl names it.
std::string FormatEvents(std::vector<v1::Event> events, absl::Time now,
                         const std::string& subject_kind, const std::string& subject_name);

// What `describe workspace` shows beyond the workspace itself. A section whose list could
// not be read (std::nullopt) is left out; an empty list prints "<none>".
struct DescribeExtras {
  // The workspace's workloads (its namespace, labelled with the workspace).
  std::optional<std::vector<v1::Workload>> workloads;
  // The workspace's node claims (cluster-scoped, labelled with the workspace).
  std::optional<std::vector<v1::NodeClaim>> node_claims;
  // Events about the workspace and about its node claims, in any order.
  std::optional<std::vector<v1::Event>> events;
};

// The human-readable `describe workspace` text: metadata, spec, status and conditions, then
// Endpoint (when set), Nodes, the Workloads and Node claims tables and the Events.
std::string DescribeWorkspace(const v1::Workspace& ws, absl::Time now,
                              const DescribeExtras& extras = {});

// `describe node`: metadata, spec, address and agent, conditions, capacity, the GPUs table
// (UUID MODEL MEMORY HEALTHY REASON), then `events` (std::nullopt: left out).
std::string DescribeNode(const v1::Node& node, absl::Time now,
                         const std::optional<std::vector<v1::Event>>& events);

// `describe nodeclaim`: metadata, spec, status (phase, node, attempts, error and message),
// conditions, then `events` (std::nullopt: left out).
std::string DescribeNodeClaim(const v1::NodeClaim& claim, absl::Time now,
                              const std::optional<std::vector<v1::Event>>& events);

// Why a deleting workspace is still there, for `delete --wait` when its timeout expires:
// its state, its conditions with their reasons and messages, and its finalizers.
std::string DeletionBlockers(const v1::Workspace& ws);

}  // namespace kaito::ctl
