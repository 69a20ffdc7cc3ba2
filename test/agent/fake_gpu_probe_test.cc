#include "agent/gpu/fake_gpu_probe.h"

#include <gtest/gtest.h>

#include <fstream>

#include "support/temp_dir.h"

namespace kaito::agent {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(FakeGpuSpecTest, ParsesOneSpec) {
  auto gpus = ParseFakeGpuSpec("1xA100:80:8.0", "node-a");
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 1u);
  const v1::GpuInfo& gpu = (*gpus)[0];
  EXPECT_EQ(gpu.model(), "A100");
  EXPECT_EQ(gpu.memory_bytes(), 80 * kGiB);
  EXPECT_EQ(gpu.memory_used_bytes(), 0);
  EXPECT_EQ(gpu.compute_capability(), "8.0");
  EXPECT_TRUE(gpu.healthy());
  EXPECT_EQ(gpu.uuid(), "GPU-node-a-0");
}

TEST(FakeGpuSpecTest, ParsesSeveralSpecsWithStableUuids) {
  auto gpus = ParseFakeGpuSpec("2xA10:24, 1XT4:16:7.5", "n");
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 3u);
  EXPECT_EQ((*gpus)[0].model(), "A10");
  EXPECT_EQ((*gpus)[1].model(), "A10");
  EXPECT_EQ((*gpus)[1].compute_capability(), "");
  EXPECT_EQ((*gpus)[2].model(), "T4");
  EXPECT_EQ((*gpus)[2].memory_bytes(), 16 * kGiB);
  EXPECT_EQ((*gpus)[2].uuid(), "GPU-n-2");
  auto again = ParseFakeGpuSpec("2xA10:24, 1XT4:16:7.5", "n");
  ASSERT_TRUE(again.ok());
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ((*again)[i].uuid(), (*gpus)[i].uuid());
  EXPECT_TRUE(ParseFakeGpuSpec("", "n")->empty());
  EXPECT_EQ(ParseFakeGpuSpec("1xH100 NVL:94:9.0", "n")->at(0).model(), "H100 NVL");
  EXPECT_EQ(ParseFakeGpuSpec("1xA10G:22.5", "n")->at(0).memory_bytes(), 45 * kGiB / 2);
}

TEST(FakeGpuSpecTest, ErrorsNameTheBadPart) {
  struct Case {
    const char* spec;
    const char* part;
    const char* why;
  };
  const Case cases[] = {
      {"A100:80", "A100:80", "GPU count"},
      {"0xA100:80", "0xA100:80", "count must be"},
      {"2xA100", "2xA100", "model and a memory size"},
      {"2x:80", "2x:80", "model is empty"},
      {"2xA100:-1", "2xA100:-1", "memory \"-1\""},
      {"2xA100:lots", "2xA100:lots", "memory \"lots\""},
      {"2xA100:80:8", "2xA100:80:8", "compute capability \"8\""},
      {"2xA100:80:8.0:x", "2xA100:80:8.0:x", "model and a memory size"},
      {"1xA100:80,2xbad", "2xbad", "model and a memory size"},
      {"1xA100:80,", "\"\"", "GPU count"},
  };
  for (const Case& c : cases) {
    auto gpus = ParseFakeGpuSpec(c.spec, "n");
    ASSERT_FALSE(gpus.ok()) << c.spec;
    EXPECT_EQ(gpus.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(gpus.status().message());
    EXPECT_NE(message.find(std::string(c.part)), std::string::npos) << c.spec << ": " << message;
    EXPECT_NE(message.find(c.why), std::string::npos) << c.spec << ": " << message;
    EXPECT_NE(message.find("COUNTxMODEL:MEMORY_GIB[:CC]"), std::string::npos) << message;
  }
}

void Write(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

TEST(FakeGpuProbeTest, FileIsReadAgainAtEveryProbe) {
  kaito::testing::TempDir dir;
  const std::string path = dir.File("gpus.yaml");
  Write(path,
        "gpus:\n"
        "- model: A100\n"
        "  memoryGiB: 80\n"
        "  computeCapability: \"8.0\"\n"
        "  count: 2\n");
  auto probe = FakeGpuProbe::FromFile(path, "node-a");
  auto first = probe->Probe();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 2u);
  EXPECT_TRUE((*first)[1].healthy());

  // An operator marks the second GPU unhealthy while the agent runs.
  Write(path,
        "gpus:\n"
        "- model: A100\n"
        "  memoryGiB: 80\n"
        "  computeCapability: \"8.0\"\n"
        "- model: A100\n"
        "  memoryGiB: 80\n"
        "  computeCapability: \"8.0\"\n"
        "  healthy: false\n"
        "  healthReason: \"XID 79: GPU has fallen off the bus\"\n"
        "  memoryUsedGiB: 10\n");
  auto second = probe->Probe();
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->size(), 2u);
  EXPECT_TRUE((*second)[0].healthy());
  EXPECT_FALSE((*second)[1].healthy());
  EXPECT_EQ((*second)[1].health_reason(), "XID 79: GPU has fallen off the bus");
  EXPECT_EQ((*second)[1].memory_used_bytes(), 10 * kGiB);
  EXPECT_EQ((*second)[1].uuid(), (*first)[1].uuid());

  // A broken file is an error of that probe only.
  Write(path, "gpus:\n- model: A100\n  memoryGiB: 80\n  colour: blue\n");
  auto bad = probe->Probe();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("entry 1: unknown field \"colour\""),
            absl::string_view::npos)
      << bad.status();
  std::remove(path.c_str());
  EXPECT_EQ(probe->Probe().status().code(), absl::StatusCode::kUnavailable);
}

TEST(FakeGpuProbeTest, FileMayListSpecsOnePerLine) {
  auto gpus = ParseFakeGpuFile("# node a\n1xA100:80:8.0\n\n2xT4:16  # two more\n", "a");
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 3u);
  EXPECT_EQ((*gpus)[2].model(), "T4");
  EXPECT_EQ((*gpus)[2].uuid(), "GPU-a-2");
  auto bad = ParseFakeGpuFile("1xA100:80\nnonsense\n", "a");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2"), absl::string_view::npos) << bad.status();
  // A top-level list is YAML too.
  auto list = ParseFakeGpuFile("- model: H100\n  memoryGiB: 80\n", "a");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->at(0).model(), "H100");
}

TEST(FakeGpuProbeTest, FixedListCanChange) {
  auto probe = FakeGpuProbe::FromSpec("2xA100:80:8.0", "n");
  ASSERT_TRUE(probe.ok());
  auto gpus = (*probe)->Probe();
  ASSERT_TRUE(gpus.ok());
  (*gpus)[0].set_healthy(false);
  (*probe)->Set(*gpus);
  EXPECT_FALSE((*probe)->Probe()->at(0).healthy());
  EXPECT_FALSE(FakeGpuProbe::FromSpec("2xA100", "n").ok());
}

}  // namespace
}  // namespace kaito::agent
