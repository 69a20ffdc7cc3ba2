#include "agent/gpu/nvml_gpu_probe.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kaito::agent {

struct NvmlGpuProbe::Api {
  // Required.
  nvmlInit_v2_fn* init = nullptr;
  nvmlShutdown_fn* shutdown = nullptr;
  nvmlErrorString_fn* error_string = nullptr;
  nvmlDeviceGetCount_v2_fn* get_count = nullptr;
  nvmlDeviceGetHandleByIndex_v2_fn* get_handle = nullptr;
  nvmlDeviceGetName_fn* get_name = nullptr;
  nvmlDeviceGetUUID_fn* get_uuid = nullptr;
  nvmlDeviceGetMemoryInfo_fn* get_memory = nullptr;
  nvmlDeviceGetCudaComputeCapability_fn* get_compute_capability = nullptr;
  // Optional: null when the library lacks them.
  nvmlSystemGetDriverVersion_fn* get_driver_version = nullptr;
  nvmlDeviceGetTemperature_fn* get_temperature = nullptr;
  nvmlDeviceGetPowerUsage_fn* get_power = nullptr;
  nvmlDeviceGetUtilizationRates_fn* get_utilization = nullptr;
  nvmlDeviceGetTotalEccErrors_fn* get_ecc_errors = nullptr;
  nvmlEventSetCreate_fn* event_set_create = nullptr;
  nvmlDeviceRegisterEvents_fn* register_events = nullptr;
  nvmlEventSetWait_v2_fn* event_set_wait = nullptr;
  nvmlEventSetFree_fn* event_set_free = nullptr;

  bool has_events() const {
    return event_set_create != nullptr && register_events != nullptr && event_set_wait != nullptr &&
           event_set_free != nullptr;
  }
};

namespace {

// XIDs that an application causes (its own bad kernel or memory access), not the GPU:
// NVIDIA's Kubernetes device plugin skips them, and so do we.
constexpr unsigned long long kApplicationXids[] = {13, 31, 43, 45, 68, 109};

// At most this many events are read per probe, so that a storm cannot hold the strand; the
// rest are read at the next probe.
constexpr int kMaxEventsPerProbe = 1024;

bool IsApplicationXid(unsigned long long xid) {
  for (unsigned long long skipped : kApplicationXids) {
    if (xid == skipped) return true;
  }
  return false;
}

// NVIDIA's short description of the XIDs that take a GPU out of service; null for others.
const char* XidMeaning(unsigned long long xid) {
  switch (xid) {
    case 48:
      return "double-bit ECC error";
    case 63:
      return "ECC page retirement or row remap";
    case 64:
      return "ECC page retirement or row remap failure";
    case 74:
      return "NVLink error";
    case 79:
      return "GPU has fallen off the bus";
    case 92:
      return "high single-bit ECC error rate";
    case 94:
      return "contained ECC error";
    case 95:
      return "uncontained ECC error";
    case 119:
      return "GSP RPC timeout";
    case 120:
      return "GSP error";
    default:
      return nullptr;
  }
}

std::string XidReason(unsigned long long xid) {
  const char* meaning = XidMeaning(xid);
  return meaning == nullptr ? absl::StrCat("XID ", xid) : absl::StrCat("XID ", xid, ": ", meaning);
}

// Looks `name` up in `library`; false (and `fn` null) when it is not there.
template <typename Fn>
bool Resolve(void* library, const char* name, Fn*& fn) {
  fn = reinterpret_cast<Fn*>(dlsym(library, name));
  return fn != nullptr;
}

// What NVML wrote into a fixed-size buffer, which it NUL-terminates.
std::string FromBuffer(const char* buffer, size_t size) {
  return std::string(buffer, strnlen(buffer, size));
}

}  // namespace

absl::StatusOr<std::unique_ptr<NvmlGpuProbe>> NvmlGpuProbe::Open(const std::string& library) {
  dlerror();  // Clears an earlier error.
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return absl::UnavailableError(absl::StrCat("cannot load ", library, ": ",
                                               why == nullptr ? "unknown error" : why,
                                               " (no NVIDIA driver on this machine?)"));
  }
  auto api = std::make_unique<Api>();
  const char* missing = nullptr;
  auto require = [&](const char* name, auto*& fn) {
    if (!Resolve(handle, name, fn) && missing == nullptr) missing = name;
  };
  require("nvmlInit_v2", api->init);
  require("nvmlShutdown", api->shutdown);
  require("nvmlErrorString", api->error_string);
  require("nvmlDeviceGetCount_v2", api->get_count);
  require("nvmlDeviceGetHandleByIndex_v2", api->get_handle);
  require("nvmlDeviceGetName", api->get_name);
  require("nvmlDeviceGetUUID", api->get_uuid);
  require("nvmlDeviceGetMemoryInfo", api->get_memory);
  require("nvmlDeviceGetCudaComputeCapability", api->get_compute_capability);
  if (missing != nullptr) {
    dlclose(handle);
    return absl::UnavailableError(absl::StrCat(
        library, " has no ", missing, " (not NVML, or an NVIDIA driver too old for this agent)"));
  }
  Resolve(handle, "nvmlSystemGetDriverVersion", api->get_driver_version);
  Resolve(handle, "nvmlDeviceGetTemperature", api->get_temperature);
  Resolve(handle, "nvmlDeviceGetPowerUsage", api->get_power);
  Resolve(handle, "nvmlDeviceGetUtilizationRates", api->get_utilization);
  Resolve(handle, "nvmlDeviceGetTotalEccErrors", api->get_ecc_errors);
  Resolve(handle, "nvmlEventSetCreate", api->event_set_create);
  Resolve(handle, "nvmlDeviceRegisterEvents", api->register_events);
  Resolve(handle, "nvmlEventSetWait_v2", api->event_set_wait);
  Resolve(handle, "nvmlEventSetFree", api->event_set_free);

  if (const nvmlReturn_t rc = api->init(); rc != NVML_SUCCESS) {
    const char* text = api->error_string(rc);
    const std::string message =
        absl::StrCat(library, ": nvmlInit_v2 failed: ", text == nullptr ? "unknown error" : text,
                     " (NVML error ", rc, ")");
    dlclose(handle);
    return absl::UnavailableError(message);
  }
  return std::unique_ptr<NvmlGpuProbe>(new NvmlGpuProbe(handle, std::move(api)));
}

NvmlGpuProbe::NvmlGpuProbe(void* library, std::unique_ptr<const Api> api)
    : library_(library), api_(std::move(api)) {
  if (api_->get_driver_version != nullptr) {
    char version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {};
    if (api_->get_driver_version(version, sizeof(version)) == NVML_SUCCESS) {
      driver_version_ = FromBuffer(version, sizeof(version));
    }
  }
  if (api_->has_events() && api_->event_set_create(&events_) != NVML_SUCCESS) events_ = nullptr;
  // Events are registered now, so that an XID between `Open` and the first `Probe` counts.
  unsigned int count = 0;
  if (api_->get_count(&count) != NVML_SUCCESS) return;
  devices_.resize(count);
  for (unsigned int i = 0; i < count; ++i) {
    if (api_->get_handle(i, &devices_[i].handle) == NVML_SUCCESS) RegisterEvents(devices_[i]);
  }
}

NvmlGpuProbe::~NvmlGpuProbe() {
  if (events_ != nullptr) api_->event_set_free(events_);
  api_->shutdown();
  dlclose(library_);
}

std::string NvmlGpuProbe::ErrorText(nvmlReturn_t code) const {
  const char* text = api_->error_string(code);
  return text == nullptr ? absl::StrCat("NVML error ", code) : std::string(text);
}

void NvmlGpuProbe::RegisterEvents(Device& device) {
  if (events_ == nullptr || device.handle == nullptr || device.events_handle == device.handle) {
    return;
  }
  // Tried once per handle: a GPU that does not support events (NOT_SUPPORTED) is not asked
  // again at every probe; it is simply not watched.
  device.events_handle = device.handle;
  api_->register_events(device.handle, nvmlEventTypeXidCriticalError, events_);
}

void NvmlGpuProbe::DrainEvents() {
  if (events_ == nullptr) return;
  for (int read = 0; read < kMaxEventsPerProbe; ++read) {
    nvmlEventData_t event = {};
    if (api_->event_set_wait(events_, &event, /*timeout_ms=*/0) != NVML_SUCCESS) {
      return;  // TIMEOUT: nothing pending; anything else: try again at the next probe.
    }
    if ((event.eventType & nvmlEventTypeXidCriticalError) == 0) continue;
    if (IsApplicationXid(event.eventData)) continue;
    const std::string reason = XidReason(event.eventData);
    size_t named = devices_.size();
    for (size_t i = 0; i < devices_.size(); ++i) {
      if (event.device != nullptr && devices_[i].handle == event.device) named = i;
    }
    if (named < devices_.size()) {
      spdlog::warn("NVML: {} on GPU {} {}", reason, named, devices_[named].uuid);
      if (devices_[named].xid_reason.empty()) devices_[named].xid_reason = reason;
      continue;
    }
    // As NVIDIA's device plugin does: an XID that NVML does not attribute takes every GPU.
    spdlog::warn("NVML: {} on a GPU it does not name; every GPU is marked unhealthy", reason);
    for (Device& device : devices_) {
      if (device.xid_reason.empty()) device.xid_reason = reason;
    }
  }
}

absl::StatusOr<std::vector<v1::GpuInfo>> NvmlGpuProbe::Probe() {
  unsigned int count = 0;
  if (const nvmlReturn_t rc = api_->get_count(&count); rc != NVML_SUCCESS) {
    return absl::UnavailableError(
        absl::StrCat("nvmlDeviceGetCount_v2: ", ErrorText(rc), " (NVML error ", rc, ")"));
  }
  if (devices_.size() < count) devices_.resize(count);
  std::vector<nvmlReturn_t> handle_status(count, NVML_SUCCESS);
  for (unsigned int i = 0; i < count; ++i) {
    nvmlDevice_t handle = nullptr;
    handle_status[i] = api_->get_handle(i, &handle);
    if (handle_status[i] != NVML_SUCCESS) continue;
    devices_[i].handle = handle;
    RegisterEvents(devices_[i]);
  }
  DrainEvents();
  std::vector<v1::GpuInfo> gpus;
  gpus.reserve(count);
  for (unsigned int i = 0; i < count; ++i) {
    gpus.push_back(ReadDevice(i, handle_status[i], devices_[i]));
  }
  return gpus;
}

v1::GpuInfo NvmlGpuProbe::ReadDevice(unsigned int index, nvmlReturn_t handle_status,
                                     Device& device) {
  v1::GpuInfo gpu;
  std::vector<std::string> reasons;
  bool lost = false;
  // True when `rc` is a success; a lost GPU is remembered (the rest of its reads are skipped).
  auto ok = [&](nvmlReturn_t rc) {
    if (rc == NVML_ERROR_GPU_IS_LOST && !lost) {
      lost = true;
      reasons.insert(reasons.begin(),
                     absl::StrCat("GPU has fallen off the bus (NVML: ", ErrorText(rc), ")"));
    }
    return rc == NVML_SUCCESS;
  };
  const nvmlDevice_t handle = device.handle;
  if (!ok(handle_status)) {
    if (!lost) {
      reasons.push_back(
          absl::StrCat("NVML cannot open GPU ", index, ": ", ErrorText(handle_status)));
    }
  } else {
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = {};
    if (const nvmlReturn_t rc = api_->get_uuid(handle, uuid, sizeof(uuid)); ok(rc)) {
      device.uuid = FromBuffer(uuid, sizeof(uuid));
    } else if (!lost) {
      reasons.push_back(absl::StrCat("NVML cannot read its UUID: ", ErrorText(rc)));
    }
  }
  if (!lost && handle_status == NVML_SUCCESS) {
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = {};
    if (ok(api_->get_name(handle, name, sizeof(name)))) {
      gpu.set_model(FromBuffer(name, sizeof(name)));
    }
    nvmlMemory_t memory = {};
    if (!lost && ok(api_->get_memory(handle, &memory))) {
      gpu.set_memory_bytes(static_cast<int64_t>(memory.total));
      gpu.set_memory_used_bytes(static_cast<int64_t>(memory.used));
    }
    int major = 0, minor = 0;
    if (!lost && ok(api_->get_compute_capability(handle, &major, &minor))) {
      gpu.set_compute_capability(absl::StrCat(major, ".", minor));
    }
    unsigned int celsius = 0;
    if (!lost && api_->get_temperature != nullptr &&
        ok(api_->get_temperature(handle, NVML_TEMPERATURE_GPU, &celsius))) {
      gpu.set_temperature_celsius(static_cast<int32_t>(celsius));
    }
    unsigned int milliwatts = 0;
    if (!lost && api_->get_power != nullptr && ok(api_->get_power(handle, &milliwatts))) {
      gpu.set_power_watts(static_cast<int32_t>((milliwatts + 500) / 1000));
    }
    nvmlUtilization_t utilization = {};
    if (!lost && api_->get_utilization != nullptr &&
        ok(api_->get_utilization(handle, &utilization))) {
      gpu.set_utilization_percent(static_cast<int32_t>(utilization.gpu));
    }
    unsigned long long uncorrected = 0;
    if (!lost && api_->get_ecc_errors != nullptr &&
        ok(api_->get_ecc_errors(handle, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC,
                                &uncorrected)) &&
        uncorrected > 0) {
      reasons.push_back(
          absl::StrCat(uncorrected, " uncorrectable ECC error", uncorrected == 1 ? "" : "s"));
    }
  }
  if (!device.xid_reason.empty()) {
    reasons.insert(reasons.begin() + (lost ? 1 : 0), device.xid_reason);
  }
  gpu.set_uuid(device.uuid.empty() ? absl::StrCat("nvml-index-", index) : device.uuid);
  gpu.set_healthy(reasons.empty());
  gpu.set_health_reason(absl::StrJoin(reasons, "; "));
  return gpu;
}

LazyNvmlProbe::LazyNvmlProbe(std::string library) : library_(std::move(library)) {}

absl::StatusOr<std::vector<v1::GpuInfo>> LazyNvmlProbe::Probe() {
  if (probe_ == nullptr) {
    auto opened = NvmlGpuProbe::Open(library_);
    if (!opened.ok()) return opened.status();
    probe_ = std::move(*opened);
  }
  return probe_->Probe();
}

}  // namespace kaito::agent
