// `NvmlGpuProbe` and `LazyNvmlProbe` against the fake NVML library (test/agent/fake_nvml.c),
// which answers from a config file the tests rewrite between probes.
#include "agent/gpu/nvml_gpu_probe.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>

#include "support/temp_dir.h"

#ifndef FAKE_NVML_PATH
#error "FAKE_NVML_PATH must name the fake NVML library (see test/agent/CMakeLists.txt)"
#endif

namespace kaito::agent {
namespace {

constexpr char kA100[] =
    "gpu uuid=GPU-a100 name=NVIDIA_A100_80GB_PCIe mem_total=85899345920 mem_used=1073741824 "
    "cc=8.0 temp=41 power_mw=65400 util=7 ecc_uncorrected=0";
constexpr char kH100[] =
    "gpu uuid=GPU-h100 name=NVIDIA_H100_80GB_HBM3 mem_total=85520809984 mem_used=0 cc=9.0 "
    "temp=35 power_mw=70000 util=93 ecc_uncorrected=0";

class NvmlGpuProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("FAKE_NVML_CONFIG", dir_.File("nvml.conf").c_str(), 1);
    setenv("FAKE_NVML_SHUTDOWN_FILE", dir_.File("shutdowns").c_str(), 1);
  }
  void TearDown() override {
    unsetenv("FAKE_NVML_CONFIG");
    unsetenv("FAKE_NVML_SHUTDOWN_FILE");
  }

  // Replaces the fake's config; the fake reads it again at the next probe.
  void Configure(const std::string& text) {
    std::ofstream out(dir_.File("nvml.conf"), std::ios::trunc);
    out << text << "\n";
  }

  std::unique_ptr<NvmlGpuProbe> Open() {
    auto probe = NvmlGpuProbe::Open(FAKE_NVML_PATH);
    EXPECT_TRUE(probe.ok()) << probe.status();
    return probe.ok() ? std::move(*probe) : nullptr;
  }

  std::vector<v1::GpuInfo> Probe(NvmlGpuProbe& probe) {
    auto gpus = probe.Probe();
    EXPECT_TRUE(gpus.ok()) << gpus.status();
    return gpus.ok() ? std::move(*gpus) : std::vector<v1::GpuInfo>{};
  }

  // GPU `index` of a probe; a default `GpuInfo` (and a failure) when there is none.
  v1::GpuInfo ProbeGpu(NvmlGpuProbe& probe, size_t index) {
    const auto gpus = Probe(probe);
    if (index < gpus.size()) return gpus[index];
    ADD_FAILURE() << "no GPU " << index << " among " << gpus.size();
    return v1::GpuInfo();
  }

  int Shutdowns() {
    std::ifstream in(dir_.File("shutdowns"));
    int lines = 0;
    for (std::string line; std::getline(in, line);) ++lines;
    return lines;
  }

  kaito::testing::TempDir dir_;
};

TEST_F(NvmlGpuProbeTest, MissingLibraryIsUnavailableAndNamesIt) {
  const std::string library = dir_.File("libnvidia-ml.so.1");
  auto probe = NvmlGpuProbe::Open(library);
  ASSERT_FALSE(probe.ok());
  EXPECT_EQ(probe.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(probe.status().message().find("cannot load " + library), std::string::npos)
      << probe.status();
  EXPECT_NE(probe.status().message().find("no NVIDIA driver"), std::string::npos);
}

TEST_F(NvmlGpuProbeTest, LibraryWithoutNvmlIsUnavailableAndNamesTheFunction) {
  auto probe = NvmlGpuProbe::Open("libc.so.6");
  ASSERT_FALSE(probe.ok());
  EXPECT_EQ(probe.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(probe.status().message().find("nvmlInit_v2"), std::string::npos) << probe.status();
}

TEST_F(NvmlGpuProbeTest, InitFailureIsUnavailable) {
  Configure(std::string("init=fail\n") + kA100);
  auto probe = NvmlGpuProbe::Open(FAKE_NVML_PATH);
  ASSERT_FALSE(probe.ok());
  EXPECT_EQ(probe.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(probe.status().message().find("nvmlInit_v2 failed: Driver Not Loaded"),
            std::string::npos)
      << probe.status();
}

TEST_F(NvmlGpuProbeTest, ReadsEveryFieldOfTwoGpus) {
  Configure(std::string("driver=550.54.15\n") + kA100 + "\n" + kH100);
  auto probe = Open();
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->driver_version(), "550.54.15");
  const auto gpus = Probe(*probe);
  ASSERT_EQ(gpus.size(), 2u);
  const v1::GpuInfo& a100 = gpus[0];
  EXPECT_EQ(a100.uuid(), "GPU-a100");
  EXPECT_EQ(a100.model(), "NVIDIA A100 80GB PCIe");
  EXPECT_EQ(a100.memory_bytes(), 85899345920);
  EXPECT_EQ(a100.memory_used_bytes(), 1073741824);
  EXPECT_EQ(a100.compute_capability(), "8.0");
  EXPECT_EQ(a100.temperature_celsius(), 41);
  EXPECT_EQ(a100.power_watts(), 65);
  EXPECT_EQ(a100.utilization_percent(), 7);
  EXPECT_TRUE(a100.healthy());
  EXPECT_EQ(a100.health_reason(), "");
  const v1::GpuInfo& h100 = gpus[1];
  EXPECT_EQ(h100.uuid(), "GPU-h100");
  EXPECT_EQ(h100.model(), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(h100.memory_bytes(), 85520809984);
  EXPECT_EQ(h100.memory_used_bytes(), 0);
  EXPECT_EQ(h100.compute_capability(), "9.0");
  EXPECT_EQ(h100.temperature_celsius(), 35);
  EXPECT_EQ(h100.power_watts(), 70);
  EXPECT_EQ(h100.utilization_percent(), 93);
  EXPECT_TRUE(h100.healthy());
}

TEST_F(NvmlGpuProbeTest, UnsupportedMetricsReadZeroAndTheGpuStaysHealthy) {
  Configure("gpu uuid=GPU-t4 name=Tesla_T4 mem_total=16106127360 mem_used=0 cc=7.5");
  auto probe = Open();
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->driver_version(), "");
  const auto gpus = Probe(*probe);
  ASSERT_EQ(gpus.size(), 1u);
  EXPECT_EQ(gpus[0].model(), "Tesla T4");
  EXPECT_EQ(gpus[0].temperature_celsius(), 0);
  EXPECT_EQ(gpus[0].power_watts(), 0);
  EXPECT_EQ(gpus[0].utilization_percent(), 0);
  EXPECT_TRUE(gpus[0].healthy()) << gpus[0].health_reason();
}

TEST_F(NvmlGpuProbeTest, UncorrectableEccErrorsMakeTheGpuUnhealthy) {
  Configure(std::string(kA100) + "\n" +
            "gpu uuid=GPU-bad name=NVIDIA_A100_80GB_PCIe mem_total=1 mem_used=0 cc=8.0 "
            "ecc_uncorrected=2");
  auto probe = Open();
  ASSERT_NE(probe, nullptr);
  const auto gpus = Probe(*probe);
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_TRUE(gpus[0].healthy());
  EXPECT_FALSE(gpus[1].healthy());
  EXPECT_EQ(gpus[1].health_reason(), "2 uncorrectable ECC errors");
}

TEST_F(NvmlGpuProbeTest, CriticalXidMakesThatGpuUnhealthyForGood) {
  Configure(std::string(kA100) + "\n" + kH100);
  auto probe = Open();
  ASSERT_NE(probe, nullptr);
  ASSERT_TRUE(ProbeGpu(*probe, 1).healthy());

  Configure(std::string(kA100) + "\n" + kH100 + " xid=79");
  auto gpus = Probe(*probe);
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_TRUE(gpus[0].healthy());
  EXPECT_FALSE(gpus[1].healthy());
  EXPECT_EQ(gpus[1].health_reason(), "XID 79: GPU has fallen off the bus");

  // No new event: the GPU stays unhealthy, at this probe and after the XID is gone.
  gpus = Probe(*probe);
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_FALSE(gpus[1].healthy());
  EXPECT_EQ(gpus[1].health_reason(), "XID 79: GPU has fallen off the bus");
  Configure(std::string(kA100) + "\n" + kH100);
  EXPECT_FALSE(ProbeGpu(*probe, 1).healthy());
  EXPECT_TRUE(ProbeGpu(*probe, 0).healthy());
}

TEST_F(NvmlGpuProbeTest, ApplicationXidIsIgnored) {
  Configure(kA100);
  auto probe = Open();
  ASSERT_NE(probe, nullptr);
  ASSERT_EQ(Probe(*probe).size(), 1u);
  Configure(std::string(kA100) + " xid=13");
  const auto gpus = Probe(*probe);
  ASSERT_EQ(gpus.size(), 1u);
  EXPECT_TRUE(gpus[0].healthy()) << gpus[0].health_reason();
}

TEST_F(NvmlGpuProbeTest, LostGpuIsUnhealthyAndKeepsItsUuid) {
  Configure(std::string(kA100) + "\n" + kH100);
  auto probe = Open();
  ASSERT_NE(probe, nullptr);
  ASSERT_EQ(Probe(*probe).size(), 2u);
  Configure(std::string(kA100) + " lost=1\n" + kH100);
  const auto gpus = Probe(*probe);
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_EQ(gpus[0].uuid(), "GPU-a100");
  EXPECT_FALSE(gpus[0].healthy());
  EXPECT_EQ(gpus[0].health_reason(), "GPU has fallen off the bus (NVML: GPU is lost)");
  EXPECT_TRUE(gpus[1].healthy());
}

TEST_F(NvmlGpuProbeTest, GpuWhoseUuidWasNeverReadIsNamedByIndex) {
  Configure(std::string(kA100) + "\n" +
            "gpu name=NVIDIA_A100_80GB_PCIe mem_total=1 mem_used=0 cc=8.0\n" + kH100 + " lost=1");
  auto probe = Open();
  ASSERT_NE(probe, nullptr);
  const auto gpus = Probe(*probe);
  ASSERT_EQ(gpus.size(), 3u);
  EXPECT_TRUE(gpus[0].healthy());
  EXPECT_EQ(gpus[1].uuid(), "nvml-index-1");
  EXPECT_FALSE(gpus[1].healthy());
  EXPECT_NE(gpus[1].health_reason().find("cannot read its UUID"), std::string::npos)
      << gpus[1].health_reason();
  EXPECT_EQ(gpus[2].uuid(), "nvml-index-2");
  EXPECT_FALSE(gpus[2].healthy());
  EXPECT_NE(gpus[2].health_reason().find("fallen off the bus"), std::string::npos);
}

TEST_F(NvmlGpuProbeTest, SeesTheConfigChangeBetweenProbes) {
  Configure(kA100);
  auto probe = Open();
  ASSERT_NE(probe, nullptr);
  auto gpus = Probe(*probe);
  ASSERT_EQ(gpus.size(), 1u);
  EXPECT_EQ(gpus[0].utilization_percent(), 7);

  std::string busy(kA100);
  busy.replace(busy.find("util=7"), 6, "util=99");
  Configure(busy + "\n" + kH100);
  gpus = Probe(*probe);
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_EQ(gpus[0].uuid(), "GPU-a100");
  EXPECT_EQ(gpus[0].utilization_percent(), 99);
  EXPECT_EQ(gpus[1].uuid(), "GPU-h100");
}

TEST_F(NvmlGpuProbeTest, CountFailureIsUnavailable) {
  Configure(kA100);
  auto probe = Open();
  ASSERT_NE(probe, nullptr);
  Configure(std::string("count=fail\n") + kA100);
  auto gpus = probe->Probe();
  ASSERT_FALSE(gpus.ok());
  EXPECT_EQ(gpus.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(gpus.status().message().find("nvmlDeviceGetCount_v2"), std::string::npos);
}

TEST_F(NvmlGpuProbeTest, DestroyingTheProbeShutsNvmlDown) {
  Configure(kA100);
  auto probe = Open();
  ASSERT_NE(probe, nullptr);
  ASSERT_EQ(Probe(*probe).size(), 1u);
  EXPECT_EQ(Shutdowns(), 0);
  probe.reset();
  EXPECT_EQ(Shutdowns(), 1);
}

TEST_F(NvmlGpuProbeTest, LazyProbeOpensOnceTheDriverAnswers) {
  Configure(std::string("init=fail\n") + kA100);
  LazyNvmlProbe lazy(FAKE_NVML_PATH);
  auto gpus = lazy.Probe();
  ASSERT_FALSE(gpus.ok());
  EXPECT_EQ(gpus.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(lazy.opened(), nullptr);

  Configure(std::string("driver=550.54.15\n") + kA100);
  gpus = lazy.Probe();
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 1u);
  EXPECT_EQ((*gpus)[0].uuid(), "GPU-a100");
  ASSERT_NE(lazy.opened(), nullptr);
  EXPECT_EQ(lazy.opened()->driver_version(), "550.54.15");
}

TEST_F(NvmlGpuProbeTest, LazyProbeWithoutALibraryReportsWhy) {
  LazyNvmlProbe lazy(dir_.File("libnvidia-ml.so.1"));
  for (int i = 0; i < 2; ++i) {
    auto gpus = lazy.Probe();
    ASSERT_FALSE(gpus.ok());
    EXPECT_EQ(gpus.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(gpus.status().message().find("no NVIDIA driver"), std::string::npos);
  }
}

}  // namespace
}  // namespace kaito::agent
