// The reconciliation benchmarks of kaito-bench (not tests; they print figures and JSON):
//   fleet      N simulated agents in this process against a kaito-server process:
//              the server's CPU and memory, and false NotReady nodes, over a duration.
//   reconcile  W inference workspaces on W pre-registered simulated nodes (runtime ready
//              at once): time until all are WorkspaceReady; one workspace alone
//              create-to-ready; cache event to reconcile start (the work queue's wait).
//   nodeloss   N nodes whose agents stop at random moments: time to NotReady, against
//              the lease TTL.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "absl/time/time.h"

namespace kaito::bench {

struct FleetOptions {
  int agents = 10000;
  absl::Duration duration = absl::Minutes(10);
  absl::Duration heartbeat = absl::Seconds(5);
  absl::Duration lease_ttl = absl::Seconds(20);
  std::string data_dir;  // Empty: a temporary directory.
};
nlohmann::json RunFleet(const FleetOptions& options);

struct ReconcileOptions {
  int workspaces = 1000;
  int clients = 32;
  int single_runs = 50;
  std::string data_dir;
};
nlohmann::json RunReconcile(const ReconcileOptions& options);

struct NodeLossOptions {
  int nodes = 100;
  absl::Duration lease_ttl = absl::Seconds(5);
  absl::Duration heartbeat = absl::Seconds(1);
  std::string data_dir;
};
nlohmann::json RunNodeLoss(const NodeLossOptions& options);

}  // namespace kaito::bench
