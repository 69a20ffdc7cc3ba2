// kaito-bench agent: the real node agent on a real container engine (Docker, or a Podman
// service; see docs/agent.md for starting an isolated one). Phases:
//   idle   kaito-server and a kaito-agent (--runtime docker, one fake GPU) as processes; after
//          a warm-up, the agent's resident memory and its CPU use over `idle` (percent of one
//          core), with its session, heartbeats and GPU probes going on as in production;
//   start  in this process, `starts` times: the engine's own create + start of a container of
//          `image` through the runtime (the floor), then the same container as a workload
//          through the agent's supervisor, from the desired set to the workload Ready (the
//          image check, labels, the inspection after the start); the added time is the
//          difference, per start, as p50 and p90.
// Targets (issue "The real node agent"): idle <= 20 MB RSS and <= 1 % of a core; a start adds
// <= 100 ms over the engine's create + start.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "absl/time/time.h"

namespace kaito::bench {

struct AgentBenchOptions {
  // unix:///PATH of the engine.
  std::string docker_host;
  // An image the engine has or can pull, with a `sleep` on its PATH (busybox).
  std::string image;
  int starts = 10;
  absl::Duration idle = absl::Seconds(20);
  absl::Duration warmup = absl::Seconds(3);
  std::string data_dir;
};

nlohmann::json RunAgentBench(const AgentBenchOptions& options);

}  // namespace kaito::bench
