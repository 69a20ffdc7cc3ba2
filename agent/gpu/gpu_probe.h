// The GPUs of this node and their health: NVML on a real node (later), `FakeGpuProbe` for
// tests and simulated nodes.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "kaito/v1/node.pb.h"

namespace kaito::agent {

// Called on the agent's strand, every re-probe interval (30 s by default) and at every
// (re)connect, so it must be quick (NVML queries are; no network). Thread-compatible.
// Errors: UNAVAILABLE when the driver or the source cannot be read right now (the agent
// reports no GPUs and probes again), INVALID_ARGUMENT for a bad fake description.
class GpuProbe {
 public:
  virtual ~GpuProbe() = default;
  // Every GPU of the node in a stable order (by index), with a UUID that stays the same
  // from one probe to the next.
  virtual absl::StatusOr<std::vector<v1::GpuInfo>> Probe() = 0;
};

}  // namespace kaito::agent
