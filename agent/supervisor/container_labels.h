// The labels the agent puts on every container it creates. They are how a restarted agent
// finds and adopts its containers (`WorkloadSupervisor::Recover`), and how the simulated
// runtime knows which containers run to completion. Changing one orphans the containers
// of agents that run the old names.
#pragma once

namespace kaito::agent::labels {

// "kaito-agent" on every container we manage; containers without it are never touched.
inline constexpr char kManagedBy[] = "kaito.sh/managed-by";
inline constexpr char kManagedByValue[] = "kaito-agent";
inline constexpr char kNode[] = "kaito.sh/node";
inline constexpr char kWorkloadNamespace[] = "kaito.sh/workload-namespace";
inline constexpr char kWorkloadName[] = "kaito.sh/workload-name";
inline constexpr char kWorkloadUid[] = "kaito.sh/workload-uid";
// The Workload's metadata.generation (decimal).
inline constexpr char kWorkloadGeneration[] = "kaito.sh/workload-generation";
inline constexpr char kWorkspace[] = "kaito.sh/workspace";
// The container's name in the workload spec, its kind and its index within that kind.
inline constexpr char kContainerName[] = "kaito.sh/container-name";
inline constexpr char kContainerKind[] = "kaito.sh/container-kind";
inline constexpr char kContainerIndex[] = "kaito.sh/container-index";
// How many containers of its kind the workload has: an adopted workload with fewer was
// caught half-created.
inline constexpr char kContainerCount[] = "kaito.sh/container-count";
inline constexpr char kKindInit[] = "init";
inline constexpr char kKindMain[] = "main";
// "Always" (inference) or "Never" (tuning: run to completion).
inline constexpr char kRestartPolicy[] = "kaito.sh/restart-policy";
// The port of the workload's endpoint (main container, first port), when it has one.
inline constexpr char kEndpointPort[] = "kaito.sh/endpoint-port";
// The workload's termination grace period in seconds.
inline constexpr char kGracePeriod[] = "kaito.sh/termination-grace-period-seconds";

}  // namespace kaito::agent::labels
