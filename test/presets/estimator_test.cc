// The estimator's worked examples (shared/reference/kaito.md §3) and edge cases.
#include "presets/estimator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kaito::presets {
namespace {

using ::testing::HasSubstr;

class EstimatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Embedded();
    ASSERT_TRUE(c.ok());
    catalog_ = std::make_unique<Catalog>(std::move(*c));
  }
  absl::StatusOr<Estimate> On(const std::string& model, const std::string& sku, int64_t len = 0) {
    return EstimateNodes(*catalog_->FindModel(model),
                         GpuConfig::FromSku(*catalog_->FindSku("azure", sku)), len);
  }
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(EstimatorTest, Phi4MiniOnA10IsOneNode) {
  auto e = On("phi-4-mini-instruct", "Standard_NV36ads_A10_v5");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->nodes, 1);
  EXPECT_EQ(e->min_gpus, 1);
  EXPECT_NEAR(e->available_per_gpu_gib, 16.8, 0.05);
  EXPECT_EQ(e->max_model_len, 2048);
}

TEST_F(EstimatorTest, Llama70bOnTwoA100sIsTwoNodes) {
  auto e = On("llama-3.3-70b-instruct", "Standard_NC48ads_A100_v4");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_NEAR(e->available_per_gpu_gib, 61.5, 0.05);
  EXPECT_EQ(e->min_gpus, 3);
  EXPECT_EQ(e->nodes, 2);
}

TEST_F(EstimatorTest, LongerContextNeedsMoreMemory) {
  auto short_ctx = On("llama-3.3-70b-instruct", "Standard_NC96ads_A100_v4");
  auto long_ctx = On("llama-3.3-70b-instruct", "Standard_NC96ads_A100_v4", 131072);
  ASSERT_TRUE(short_ctx.ok() && long_ctx.ok());
  EXPECT_GT(long_ctx->fixed_per_gpu_gib, short_ctx->fixed_per_gpu_gib);
  EXPECT_EQ(short_ctx->nodes, 1);
  EXPECT_GE(long_ctx->min_gpus, short_ctx->min_gpus);
}

TEST_F(EstimatorTest, GpuTooSmallForKvCache) {
  // phi-3-mini's 393216 B/token: 128k tokens of KV cache do not fit in 24Gi.
  auto e = On("phi-3-mini-128k-instruct", "Standard_NV36ads_A10_v5", 131072);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("GPU memory is too small"));
}

TEST_F(EstimatorTest, HugeModelsSpanNodes) {
  auto e = On("deepseek-r1-0528", "Standard_ND96isr_H100_v5");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->nodes, 2);
  auto h200 = On("deepseek-r1-0528", "Standard_ND96isr_H200_v5");
  ASSERT_TRUE(h200.ok());
  EXPECT_EQ(h200->nodes, 1);
}

TEST_F(EstimatorTest, NonDistributedModelCannotSpanNodes) {
  auto e = On("falcon-40b", "Standard_NV36ads_A10_v5");
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("does not support distributed"));
}

TEST_F(EstimatorTest, MigSliceCannotSpanNodes) {
  GpuConfig slice{.source = "node-1", .gpu_model = "A100", .gpu_count = 1,
                  .gpu_memory_bytes = 10 * kGiB, .mig = true};
  auto e = EstimateNodes(*catalog_->FindModel("phi-4"), slice, 0);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("MIG slice cannot span nodes"));
}

TEST_F(EstimatorTest, NoGpuInformation) {
  EXPECT_FALSE(EstimateNodes(*catalog_->FindModel("phi-4"), GpuConfig{}, 0).ok());
}

// Every catalog model on the largest Azure node: an answer, never a crash.
TEST_F(EstimatorTest, EveryModelHasAnEstimate) {
  for (const ModelPreset& m : catalog_->models()) {
    auto e = EstimateNodes(m, GpuConfig::FromSku(*catalog_->FindSku("azure", "Standard_ND96isr_H200_v5")), 0);
    if (m.distributed) {
      ASSERT_TRUE(e.ok()) << m.name << ": " << e.status();
      EXPECT_GE(e->nodes, 1) << m.name;
    }
  }
}

}  // namespace
}  // namespace kaito::presets
