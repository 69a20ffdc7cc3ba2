/* The subset of NVML's C ABI (libnvidia-ml.so.1) that `NvmlGpuProbe` uses, declared here
 * because the build has no nvml.h: return codes, opaque handles, the structs passed by pointer
 * and the function types. Values and layouts are NVML's (stable since CUDA 11; the event
 * record is the v11+ layout). The probe loads the library at run time and looks each function
 * up by name; `test/agent/fake_nvml.c` declares its functions with the same types, so the
 * fake cannot drift from these declarations.
 *
 * Plain C, so that the header is shared by the C++ probe and the C fake. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* NVML returns an enum; it is int-sized, so an int carries it (and any code we do not know). */
typedef int nvmlReturn_t;
enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_NO_PERMISSION = 4,
  NVML_ERROR_ALREADY_INITIALIZED = 5,
  NVML_ERROR_NOT_FOUND = 6,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_DRIVER_NOT_LOADED = 9,
  NVML_ERROR_TIMEOUT = 10,
  NVML_ERROR_LIBRARY_NOT_FOUND = 12,
  NVML_ERROR_FUNCTION_NOT_FOUND = 13,
  NVML_ERROR_GPU_IS_LOST = 15,
  NVML_ERROR_UNKNOWN = 999
};

typedef struct nvmlDevice_st* nvmlDevice_t;
typedef struct nvmlEventSet_st* nvmlEventSet_t;

/* nvmlTemperatureSensors_t, nvmlMemoryErrorType_t, nvmlEccCounterType_t: int-sized enums. */
typedef int nvmlTemperatureSensors_t;
typedef int nvmlMemoryErrorType_t;
typedef int nvmlEccCounterType_t;
enum {
  NVML_TEMPERATURE_GPU = 0,
  NVML_MEMORY_ERROR_TYPE_CORRECTED = 0,
  NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1,
  NVML_VOLATILE_ECC = 0, /* since the driver was loaded */
  NVML_AGGREGATE_ECC = 1 /* over the GPU's life */
};

/* Buffer sizes NVML documents as always large enough. */
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80

/* Event types (a bit mask) for nvmlDeviceRegisterEvents; eventData carries the XID number. */
#define nvmlEventTypeXidCriticalError 0x0000000000000008ULL

typedef struct nvmlMemory_st {
  unsigned long long total; /* bytes */
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_t;

typedef struct nvmlUtilization_st {
  unsigned int gpu;    /* percent of the last sample period a kernel ran */
  unsigned int memory; /* percent of it memory was read or written */
} nvmlUtilization_t;

typedef struct nvmlEventData_st {
  nvmlDevice_t device;
  unsigned long long eventType;
  unsigned long long eventData;
  unsigned int gpuInstanceId;     /* MIG; 0xFFFFFFFF when not applicable */
  unsigned int computeInstanceId; /* MIG; 0xFFFFFFFF when not applicable */
} nvmlEventData_t;

/* Function types: `X_fn` is the type of NVML's symbol `X`. */
typedef nvmlReturn_t nvmlInit_v2_fn(void);
typedef nvmlReturn_t nvmlShutdown_fn(void);
typedef const char* nvmlErrorString_fn(nvmlReturn_t result);
typedef nvmlReturn_t nvmlSystemGetDriverVersion_fn(char* version, unsigned int length);
typedef nvmlReturn_t nvmlDeviceGetCount_v2_fn(unsigned int* count);
typedef nvmlReturn_t nvmlDeviceGetHandleByIndex_v2_fn(unsigned int index, nvmlDevice_t* device);
typedef nvmlReturn_t nvmlDeviceGetName_fn(nvmlDevice_t device, char* name, unsigned int length);
typedef nvmlReturn_t nvmlDeviceGetUUID_fn(nvmlDevice_t device, char* uuid, unsigned int length);
typedef nvmlReturn_t nvmlDeviceGetMemoryInfo_fn(nvmlDevice_t device, nvmlMemory_t* memory);
typedef nvmlReturn_t nvmlDeviceGetCudaComputeCapability_fn(nvmlDevice_t device, int* major,
                                                           int* minor);
typedef nvmlReturn_t nvmlDeviceGetTemperature_fn(nvmlDevice_t device,
                                                 nvmlTemperatureSensors_t sensor,
                                                 unsigned int* celsius);
typedef nvmlReturn_t nvmlDeviceGetPowerUsage_fn(nvmlDevice_t device, unsigned int* milliwatts);
typedef nvmlReturn_t nvmlDeviceGetUtilizationRates_fn(nvmlDevice_t device,
                                                      nvmlUtilization_t* utilization);
typedef nvmlReturn_t nvmlDeviceGetTotalEccErrors_fn(nvmlDevice_t device,
                                                    nvmlMemoryErrorType_t error_type,
                                                    nvmlEccCounterType_t counter_type,
                                                    unsigned long long* count);
typedef nvmlReturn_t nvmlEventSetCreate_fn(nvmlEventSet_t* set);
typedef nvmlReturn_t nvmlDeviceRegisterEvents_fn(nvmlDevice_t device,
                                                 unsigned long long event_types,
                                                 nvmlEventSet_t set);
typedef nvmlReturn_t nvmlEventSetWait_v2_fn(nvmlEventSet_t set, nvmlEventData_t* data,
                                            unsigned int timeout_ms);
typedef nvmlReturn_t nvmlEventSetFree_fn(nvmlEventSet_t set);

#ifdef __cplusplus
} /* extern "C" */
#endif
