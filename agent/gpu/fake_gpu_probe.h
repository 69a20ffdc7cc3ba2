// A GPU probe that reports what it is told: a spec string, a file that is read again at
// every probe (so a test or an operator can mark a GPU unhealthy while the agent runs), or a
// fixed list. For tests, dev mode and simulated nodes; it never touches a driver.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/gpu/gpu_probe.h"

namespace kaito::agent {

// Parses `COUNTxMODEL:MEMORY_GIB[:CC]`, several separated by commas, e.g.
// "1xA100:80:8.0" or "2xA10:24,1xT4:16:7.5". An empty string is no GPU. The GPUs are
// healthy, with no memory used; UUIDs are "GPU-<node>-<index>" (index over the whole list).
// INVALID_ARGUMENT names the part that is wrong and what was expected.
absl::StatusOr<std::vector<v1::GpuInfo>> ParseFakeGpuSpec(const std::string& spec,
                                                          const std::string& node_name);

// Parses the content of a fake GPU file. Either YAML:
//   gpus:                       # or the list at top level
//   - model: A100
//     memoryGiB: 80
//     computeCapability: "8.0"  # optional
//     count: 2                  # optional, default 1
//     healthy: false            # optional, default true
//     healthReason: "XID 79: GPU has fallen off the bus"
//     memoryUsedGiB: 10         # optional
//     uuid: GPU-...             # optional (only with count 1)
// or lines of `ParseFakeGpuSpec` specs ('#' starts a comment). Errors name the entry.
absl::StatusOr<std::vector<v1::GpuInfo>> ParseFakeGpuFile(const std::string& content,
                                                          const std::string& node_name);

// Thread-safe.
class FakeGpuProbe : public GpuProbe {
 public:
  // A fixed list; GPUs without a UUID get "GPU-<node>-<index>".
  FakeGpuProbe(std::vector<v1::GpuInfo> gpus, std::string node_name);
  static absl::StatusOr<std::unique_ptr<FakeGpuProbe>> FromSpec(const std::string& spec,
                                                                const std::string& node_name);
  // Reads `path` at every `Probe`; a missing or bad file is an error of that probe
  // (UNAVAILABLE or INVALID_ARGUMENT), not of construction.
  static std::unique_ptr<FakeGpuProbe> FromFile(std::string path, std::string node_name);

  absl::StatusOr<std::vector<v1::GpuInfo>> Probe() override;

  // Replaces the fixed list (tests: a GPU turns unhealthy). Ignored for a file probe.
  void Set(std::vector<v1::GpuInfo> gpus);

 private:
  FakeGpuProbe(std::string path, std::string node_name, bool from_file);

  const std::string node_name_;
  const std::string path_;
  const bool from_file_ = false;
  absl::Mutex mu_;
  std::vector<v1::GpuInfo> gpus_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::agent
