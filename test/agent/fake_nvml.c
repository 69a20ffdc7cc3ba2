/* A stand-in for libnvidia-ml.so.1 in tests: the NVML functions `NvmlGpuProbe` loads, with
 * the types of agent/gpu/nvml_api.h, answering from a text file named by FAKE_NVML_CONFIG.
 * The file is read at nvmlInit_v2 and again at every nvmlDeviceGetCount_v2, so a test changes
 * the GPUs between two probes by rewriting it. One setting or one GPU per line, '#' starts a
 * comment:
 *
 *   init=ok|fail          fail: nvmlInit_v2 returns DRIVER_NOT_LOADED
 *   count=ok|fail         fail: nvmlDeviceGetCount_v2 returns UNKNOWN
 *   driver=550.54.15      nvmlSystemGetDriverVersion (NOT_SUPPORTED when absent)
 *   gpu uuid=GPU-1 name=NVIDIA_A100_80GB_PCIe mem_total=85899345920 mem_used=1073741824
 *       cc=8.0 temp=41 power_mw=65000 util=7 ecc_uncorrected=0 lost=0 xid=0
 *
 * A `gpu` line is one device, by index in file order; it is written on one line (wrapped
 * above only to fit). Underscores in `name` read as spaces. A field that is absent makes its
 * function return NOT_SUPPORTED (UNKNOWN for `uuid`). `lost=1` makes every call for the device
 * but nvmlDeviceGetHandleByIndex_v2 return GPU_IS_LOST. `xid=N` queues one critical XID event
 * N for the device when its value changes (from the previous read of the file) while the
 * device is registered for XID events; nvmlEventSetWait_v2 delivers queued events without
 * waiting and otherwise returns TIMEOUT.
 *
 * If FAKE_NVML_SHUTDOWN_FILE is set, every nvmlShutdown appends a line "shutdown" to it.
 * Not thread-safe: a probe is thread-compatible, and so is this. */
#define _POSIX_C_SOURCE 200809L /* strtok_r */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/gpu/nvml_api.h"

/* The definitions below must have NVML's types, as the probe declares them. */
nvmlInit_v2_fn nvmlInit_v2;
nvmlShutdown_fn nvmlShutdown;
nvmlErrorString_fn nvmlErrorString;
nvmlSystemGetDriverVersion_fn nvmlSystemGetDriverVersion;
nvmlDeviceGetCount_v2_fn nvmlDeviceGetCount_v2;
nvmlDeviceGetHandleByIndex_v2_fn nvmlDeviceGetHandleByIndex_v2;
nvmlDeviceGetName_fn nvmlDeviceGetName;
nvmlDeviceGetUUID_fn nvmlDeviceGetUUID;
nvmlDeviceGetMemoryInfo_fn nvmlDeviceGetMemoryInfo;
nvmlDeviceGetCudaComputeCapability_fn nvmlDeviceGetCudaComputeCapability;
nvmlDeviceGetTemperature_fn nvmlDeviceGetTemperature;
nvmlDeviceGetPowerUsage_fn nvmlDeviceGetPowerUsage;
nvmlDeviceGetUtilizationRates_fn nvmlDeviceGetUtilizationRates;
nvmlDeviceGetTotalEccErrors_fn nvmlDeviceGetTotalEccErrors;
nvmlEventSetCreate_fn nvmlEventSetCreate;
nvmlDeviceRegisterEvents_fn nvmlDeviceRegisterEvents;
nvmlEventSetWait_v2_fn nvmlEventSetWait_v2;
nvmlEventSetFree_fn nvmlEventSetFree;

#define FAKE_MAX_GPUS 16
#define FAKE_MAX_EVENTS 64
#define FAKE_TEXT 96

typedef struct {
  char uuid[FAKE_TEXT];
  char name[FAKE_TEXT];
  unsigned long long mem_total, mem_used, ecc_uncorrected, xid;
  unsigned long long temp, power_mw, util, cc_major, cc_minor, lost;
  /* Which fields the line gave. */
  int has_uuid, has_name, has_mem, has_cc, has_temp, has_power, has_util, has_ecc;
} FakeGpu;

struct nvmlDevice_st {
  unsigned int index;
};

struct nvmlEventSet_st {
  int registered[FAKE_MAX_GPUS];
};

static struct {
  int inits; /* nvmlInit_v2 calls not yet shut down */
  int count_fails;
  char driver[FAKE_TEXT];
  FakeGpu gpus[FAKE_MAX_GPUS];
  unsigned int gpu_count;
  unsigned long long previous_xid[FAKE_MAX_GPUS];
  struct nvmlDevice_st devices[FAKE_MAX_GPUS];
  struct nvmlEventSet_st set;
  int set_in_use;
  nvmlEventData_t events[FAKE_MAX_EVENTS];
  unsigned int event_count;
} fake;

/* Parses an unsigned decimal; 0 when `text` is not one. */
static int ParseNumber(const char* text, unsigned long long* out) {
  char* end = NULL;
  if (*text == '\0' || *text == '-') return 0;
  *out = strtoull(text, &end, 10);
  return *end == '\0';
}

static int CopyText(char* out, const char* text) {
  if (strlen(text) >= FAKE_TEXT) return 0;
  strcpy(out, text);
  return 1;
}

/* One `key=value` of a `gpu` line; 0 when it is unknown or malformed. */
static int ParseGpuField(FakeGpu* gpu, const char* key, const char* value) {
  if (strcmp(key, "uuid") == 0) return gpu->has_uuid = CopyText(gpu->uuid, value);
  if (strcmp(key, "name") == 0) {
    if (!CopyText(gpu->name, value)) return 0;
    for (char* c = gpu->name; *c != '\0'; ++c) {
      if (*c == '_') *c = ' ';
    }
    return gpu->has_name = 1;
  }
  if (strcmp(key, "mem_total") == 0) return gpu->has_mem = ParseNumber(value, &gpu->mem_total);
  if (strcmp(key, "mem_used") == 0) return gpu->has_mem = ParseNumber(value, &gpu->mem_used);
  if (strcmp(key, "cc") == 0) {
    char major[8] = {0};
    const char* dot = strchr(value, '.');
    if (dot == NULL || dot - value >= (long)sizeof(major)) return 0;
    memcpy(major, value, (size_t)(dot - value));
    return gpu->has_cc = ParseNumber(major, &gpu->cc_major) && ParseNumber(dot + 1, &gpu->cc_minor);
  }
  if (strcmp(key, "temp") == 0) return gpu->has_temp = ParseNumber(value, &gpu->temp);
  if (strcmp(key, "power_mw") == 0) return gpu->has_power = ParseNumber(value, &gpu->power_mw);
  if (strcmp(key, "util") == 0) return gpu->has_util = ParseNumber(value, &gpu->util);
  if (strcmp(key, "ecc_uncorrected") == 0) {
    return gpu->has_ecc = ParseNumber(value, &gpu->ecc_uncorrected);
  }
  if (strcmp(key, "lost") == 0) return ParseNumber(value, &gpu->lost);
  if (strcmp(key, "xid") == 0) return ParseNumber(value, &gpu->xid);
  return 0;
}

static int ParseLine(char* line, int* init_fails) {
  char* hash = strchr(line, '#');
  if (hash != NULL) *hash = '\0';
  char* save = NULL;
  char* word = strtok_r(line, " \t\r\n", &save);
  if (word == NULL) return 1;
  if (strcmp(word, "init=ok") == 0 || strcmp(word, "init=fail") == 0) {
    *init_fails = strcmp(word, "init=fail") == 0;
    return 1;
  }
  if (strcmp(word, "count=ok") == 0 || strcmp(word, "count=fail") == 0) {
    fake.count_fails = strcmp(word, "count=fail") == 0;
    return 1;
  }
  if (strncmp(word, "driver=", 7) == 0) return CopyText(fake.driver, word + 7);
  if (strcmp(word, "gpu") != 0 || fake.gpu_count == FAKE_MAX_GPUS) return 0;
  FakeGpu* gpu = &fake.gpus[fake.gpu_count++];
  memset(gpu, 0, sizeof(*gpu));
  while ((word = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
    char* equals = strchr(word, '=');
    if (equals == NULL) return 0;
    *equals = '\0';
    if (!ParseGpuField(gpu, word, equals + 1)) return 0;
  }
  return 1;
}

/* Reads FAKE_NVML_CONFIG and queues the XID events it adds. 0 (with a message on stderr)
 * when it is unreadable or wrong. */
static int ReadConfig(int* init_fails) {
  const char* path = getenv("FAKE_NVML_CONFIG");
  FILE* file = path == NULL ? NULL : fopen(path, "r");
  if (file == NULL) {
    fprintf(stderr, "fake NVML: cannot read FAKE_NVML_CONFIG (%s)\n", path ? path : "unset");
    return 0;
  }
  fake.gpu_count = 0;
  fake.count_fails = 0;
  fake.driver[0] = '\0';
  *init_fails = 0;
  char line[1024];
  int number = 0, good = 1;
  while (good && fgets(line, sizeof(line), file) != NULL) {
    ++number;
    good = ParseLine(line, init_fails);
  }
  fclose(file);
  if (!good) {
    fprintf(stderr, "fake NVML: %s line %d is not understood\n", path, number);
    return 0;
  }
  for (unsigned int i = 0; i < FAKE_MAX_GPUS; ++i) {
    const unsigned long long xid = i < fake.gpu_count ? fake.gpus[i].xid : 0;
    if (xid != 0 && xid != fake.previous_xid[i] && fake.set_in_use && fake.set.registered[i] &&
        fake.event_count < FAKE_MAX_EVENTS) {
      nvmlEventData_t* event = &fake.events[fake.event_count++];
      event->device = &fake.devices[i];
      event->eventType = nvmlEventTypeXidCriticalError;
      event->eventData = xid;
      event->gpuInstanceId = 0xFFFFFFFFu;
      event->computeInstanceId = 0xFFFFFFFFu;
    }
    fake.previous_xid[i] = xid;
  }
  return 1;
}

/* The GPU behind `device`, or NULL when it is not a handle of a current GPU. */
static FakeGpu* Gpu(nvmlDevice_t device) {
  for (unsigned int i = 0; i < fake.gpu_count; ++i) {
    if (device == &fake.devices[i]) return &fake.gpus[i];
  }
  return NULL;
}

/* The answer to a device call before its own work: NVML_SUCCESS to go on. */
static nvmlReturn_t Check(nvmlDevice_t device, const void* out) {
  if (fake.inits == 0) return NVML_ERROR_UNINITIALIZED;
  if (Gpu(device) == NULL || out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (Gpu(device)->lost) return NVML_ERROR_GPU_IS_LOST;
  return NVML_SUCCESS;
}

static nvmlReturn_t CopyOut(char* out, unsigned int length, const char* text) {
  if (strlen(text) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  strcpy(out, text);
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
  if (fake.inits == 0) {
    memset(&fake, 0, sizeof(fake));
    for (unsigned int i = 0; i < FAKE_MAX_GPUS; ++i) fake.devices[i].index = i;
  }
  int init_fails = 0;
  if (!ReadConfig(&init_fails)) return NVML_ERROR_UNKNOWN;
  if (init_fails) return NVML_ERROR_DRIVER_NOT_LOADED;
  ++fake.inits;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
  if (fake.inits == 0) return NVML_ERROR_UNINITIALIZED;
  --fake.inits;
  const char* path = getenv("FAKE_NVML_SHUTDOWN_FILE");
  FILE* file = path == NULL ? NULL : fopen(path, "a");
  if (file != NULL) {
    fputs("shutdown\n", file);
    fclose(file);
  }
  return NVML_SUCCESS;
}

const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case NVML_SUCCESS:
      return "Success";
    case NVML_ERROR_UNINITIALIZED:
      return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT:
      return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED:
      return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE:
      return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED:
      return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT:
      return "Timeout";
    case NVML_ERROR_GPU_IS_LOST:
      return "GPU is lost";
    default:
      return "Unknown Error";
  }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned int length) {
  if (fake.inits == 0) return NVML_ERROR_UNINITIALIZED;
  if (fake.driver[0] == '\0') return NVML_ERROR_NOT_SUPPORTED;
  return CopyOut(version, length, fake.driver);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  if (fake.inits == 0) return NVML_ERROR_UNINITIALIZED;
  int init_fails = 0;
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (!ReadConfig(&init_fails) || fake.count_fails) return NVML_ERROR_UNKNOWN;
  *count = fake.gpu_count;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  if (fake.inits == 0) return NVML_ERROR_UNINITIALIZED;
  if (index >= fake.gpu_count || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *device = &fake.devices[index];
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
  nvmlReturn_t rc = Check(device, name);
  if (rc != NVML_SUCCESS) return rc;
  if (!Gpu(device)->has_name) return NVML_ERROR_NOT_SUPPORTED;
  return CopyOut(name, length, Gpu(device)->name);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  nvmlReturn_t rc = Check(device, uuid);
  if (rc != NVML_SUCCESS) return rc;
  if (!Gpu(device)->has_uuid) return NVML_ERROR_UNKNOWN;
  return CopyOut(uuid, length, Gpu(device)->uuid);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  nvmlReturn_t rc = Check(device, memory);
  if (rc != NVML_SUCCESS) return rc;
  const FakeGpu* gpu = Gpu(device);
  if (!gpu->has_mem) return NVML_ERROR_NOT_SUPPORTED;
  memory->total = gpu->mem_total;
  memory->used = gpu->mem_used;
  memory->free = gpu->mem_total > gpu->mem_used ? gpu->mem_total - gpu->mem_used : 0;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int* major, int* minor) {
  nvmlReturn_t rc = Check(device, major);
  if (rc != NVML_SUCCESS) return rc;
  if (minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (!Gpu(device)->has_cc) return NVML_ERROR_NOT_SUPPORTED;
  *major = (int)Gpu(device)->cc_major;
  *minor = (int)Gpu(device)->cc_minor;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensor,
                                      unsigned int* celsius) {
  nvmlReturn_t rc = Check(device, celsius);
  if (rc != NVML_SUCCESS) return rc;
  if (sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  if (!Gpu(device)->has_temp) return NVML_ERROR_NOT_SUPPORTED;
  *celsius = (unsigned int)Gpu(device)->temp;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int* milliwatts) {
  nvmlReturn_t rc = Check(device, milliwatts);
  if (rc != NVML_SUCCESS) return rc;
  if (!Gpu(device)->has_power) return NVML_ERROR_NOT_SUPPORTED;
  *milliwatts = (unsigned int)Gpu(device)->power_mw;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t* utilization) {
  nvmlReturn_t rc = Check(device, utilization);
  if (rc != NVML_SUCCESS) return rc;
  if (!Gpu(device)->has_util) return NVML_ERROR_NOT_SUPPORTED;
  utilization->gpu = (unsigned int)Gpu(device)->util;
  utilization->memory = 0;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t error_type,
                                         nvmlEccCounterType_t counter_type,
                                         unsigned long long* count) {
  nvmlReturn_t rc = Check(device, count);
  if (rc != NVML_SUCCESS) return rc;
  if (!Gpu(device)->has_ecc) return NVML_ERROR_NOT_SUPPORTED;
  /* Only the uncorrected count is configured; the corrected one reads 0. */
  *count = error_type == NVML_MEMORY_ERROR_TYPE_UNCORRECTED ? Gpu(device)->ecc_uncorrected : 0;
  (void)counter_type;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  if (fake.inits == 0) return NVML_ERROR_UNINITIALIZED;
  if (set == NULL || fake.set_in_use) return NVML_ERROR_INVALID_ARGUMENT;
  memset(&fake.set, 0, sizeof(fake.set));
  fake.set_in_use = 1;
  *set = &fake.set;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long event_types,
                                      nvmlEventSet_t set) {
  nvmlReturn_t rc = Check(device, set);
  if (rc != NVML_SUCCESS) return rc;
  if (set != &fake.set || !fake.set_in_use) return NVML_ERROR_INVALID_ARGUMENT;
  if (event_types != nvmlEventTypeXidCriticalError) return NVML_ERROR_NOT_SUPPORTED;
  fake.set.registered[device->index] = 1;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t* data,
                                 unsigned int timeout_ms) {
  (void)timeout_ms; /* Never waits: events are queued when the file is read. */
  if (fake.inits == 0) return NVML_ERROR_UNINITIALIZED;
  if (set != &fake.set || !fake.set_in_use || data == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (fake.event_count == 0) return NVML_ERROR_TIMEOUT;
  *data = fake.events[0];
  --fake.event_count;
  memmove(&fake.events[0], &fake.events[1], fake.event_count * sizeof(fake.events[0]));
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  if (fake.inits == 0) return NVML_ERROR_UNINITIALIZED;
  if (set != &fake.set || !fake.set_in_use) return NVML_ERROR_INVALID_ARGUMENT;
  fake.set_in_use = 0;
  return NVML_SUCCESS;
}
