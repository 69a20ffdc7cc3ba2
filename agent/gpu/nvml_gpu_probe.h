// The GPUs of a real node, read through NVML (`libnvidia-ml.so.1`, which the NVIDIA driver
// installs). The library is loaded at run time, so the agent builds and starts on machines
// without a driver; `test/agent/fake_nvml.c` stands in for it in tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/gpu/gpu_probe.h"
#include "agent/gpu/nvml_api.h"

namespace kaito::agent {

inline constexpr char kNvmlLibrary[] = "libnvidia-ml.so.1";

// What `Probe` reports per GPU (by NVML index): UUID, name as model, memory total and used,
// compute capability "MAJOR.MINOR", and where the GPU supports them temperature, power
// (watts) and utilisation (0 when not supported). A GPU is unhealthy, with every reason in
// `health_reason` ("; " between them), when
//   - an NVML call for it returns GPU_IS_LOST ("GPU has fallen off the bus (NVML: ...)");
//   - a critical XID event was delivered for it since `Open`: events are registered once per
//     device and drained without waiting at every `Probe`; the XIDs an application causes (13,
//     31, 43, 45, 68, 109, as NVIDIA's Kubernetes device plugin skips them) are ignored, any
//     other marks the GPU unhealthy for the life of the probe ("XID 79: GPU has fallen off the
//     bus"); an event for a device NVML cannot name marks every GPU;
//   - its volatile uncorrected ECC count is above 0 ("2 uncorrectable ECC errors").
// The UUID of a GPU whose UUID cannot be read is the one an earlier probe read at that index,
// else "nvml-index-<i>"; the GPU is then unhealthy and the reason says why.
//
// Thread-compatible: the agent calls it on its strand. `Probe` never blocks (NVML queries
// take milliseconds; the event wait has a zero timeout). Errors: UNAVAILABLE when NVML cannot
// list the GPUs (the agent reports none and probes again).
class NvmlGpuProbe : public GpuProbe {
 public:
  // Loads `library` (a name for the dynamic linker's search, or a path) and initialises NVML.
  // UNAVAILABLE when it cannot be loaded, lacks a required function (named in the message) or
  // `nvmlInit_v2` fails. Optional functions (temperature, power, utilisation, ECC, events,
  // driver version) may be missing: what they read is then not reported.
  static absl::StatusOr<std::unique_ptr<NvmlGpuProbe>> Open(
      const std::string& library = kNvmlLibrary);

  // Frees the event set, shuts NVML down and unloads the library.
  ~NvmlGpuProbe() override;
  NvmlGpuProbe(const NvmlGpuProbe&) = delete;
  NvmlGpuProbe& operator=(const NvmlGpuProbe&) = delete;

  absl::StatusOr<std::vector<v1::GpuInfo>> Probe() override;

  // The driver's version, e.g. "550.54.15"; empty when NVML cannot say.
  const std::string& driver_version() const { return driver_version_; }

  // The functions looked up in the library; the optional ones may be null.
  struct Api;

 private:
  // What the probe remembers of one NVML index.
  struct Device {
    nvmlDevice_t handle = nullptr;
    // The handle events were registered on (tried once per handle).
    nvmlDevice_t events_handle = nullptr;
    // The last UUID read; kept when it cannot be read again.
    std::string uuid;
    // The first critical XID seen; it never clears.
    std::string xid_reason;
  };

  NvmlGpuProbe(void* library, std::unique_ptr<const Api> api);

  std::string ErrorText(nvmlReturn_t code) const;
  // Registers critical XID events on `device` once (when NVML supports it).
  void RegisterEvents(Device& device);
  // Reads every pending event without waiting and records the critical XIDs.
  void DrainEvents();
  v1::GpuInfo ReadDevice(unsigned int index, nvmlReturn_t handle_status, Device& device);

  void* const library_;
  const std::unique_ptr<const Api> api_;
  std::string driver_version_;
  nvmlEventSet_t events_ = nullptr;  // Null when events are not supported.
  std::vector<Device> devices_;      // By NVML index.
};

// A `GpuProbe` for `--gpu-probe nvml` that tries `NvmlGpuProbe::Open` at every `Probe` until
// it succeeds (a driver installed after the agent started is found), returning that error,
// UNAVAILABLE, meanwhile. Thread-compatible, like the probe it wraps.
class LazyNvmlProbe : public GpuProbe {
 public:
  explicit LazyNvmlProbe(std::string library = kNvmlLibrary);

  absl::StatusOr<std::vector<v1::GpuInfo>> Probe() override;

  // The opened probe; null until a `Probe` has opened it.
  const NvmlGpuProbe* opened() const { return probe_.get(); }

 private:
  const std::string library_;
  std::unique_ptr<NvmlGpuProbe> probe_;
};

}  // namespace kaito::agent
