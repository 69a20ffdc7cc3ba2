#include "presets/catalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "presets/planner.h"

namespace kaito::presets {
namespace {

using ::testing::HasSubstr;

TEST(CatalogTest, EmbeddedCatalogLoads) {
  auto c = Catalog::Embedded();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_GE(c->models().size(), 60u);
  EXPECT_GE(c->SkusOf("azure").size(), 14u);
  EXPECT_GE(c->SkusOf("aws").size(), 30u);
  EXPECT_EQ(c->SkusOf("arc").size(), 8u);
}

TEST(CatalogTest, ResolvesNamesAliasesAndIdsCaseInsensitively) {
  auto c = Catalog::Embedded();
  ASSERT_TRUE(c.ok());
  const ModelPreset* m = c->FindModel("PHI-4-MINI-INSTRUCT");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->id, "microsoft/Phi-4-mini-instruct");
  EXPECT_EQ(c->FindModel("microsoft/phi-4-mini-instruct"), m);
  EXPECT_EQ(c->FindModel("mistral-7b-v0.3"), c->FindModel("mistral-7b"));
  EXPECT_EQ(c->FindModel("deepseek-r1"), c->FindModel("deepseek-r1-0528"));
  EXPECT_EQ(c->FindModel("nope"), nullptr);
  EXPECT_EQ(m->ServedName(), "phi-4-mini-instruct");
  EXPECT_EQ(m->weights_bytes, static_cast<int64_t>(std::ceil(7.15 * kGiB)));
  EXPECT_EQ(c->FindModel("falcon-7b")->vllm, false);
  EXPECT_TRUE(c->FindModel("llama-3.3-70b-instruct")->gated);
  EXPECT_TRUE(c->FindModel("phi-2")->deprecated);
  const Sku* s = c->FindSku("azure", "standard_nc48ADS_a100_v4");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->gpu_count, 2);
  EXPECT_EQ(s->PerGpuBytes(), 80 * kGiB);
  EXPECT_EQ(s->ComputeCapability(), 80);
  EXPECT_TRUE(c->FindSku("azure", "Standard_NC6s_v3")->retired);
  EXPECT_EQ(c->FindSku("aws", "Standard_NC6s_v3"), nullptr);
}

TEST(CatalogTest, QuantityParsing) {
  EXPECT_EQ(*ParseQuantity("1Gi"), kGiB);
  EXPECT_EQ(*ParseQuantity("512Mi"), 512 << 20);
  EXPECT_EQ(*ParseQuantity("1024"), 1024);
  EXPECT_EQ(*ParseQuantity("0.5Ki"), 512);
  for (const char* bad : {"", "Gi", "abc", "-1Gi", "1.5.5Gi", "1e300Ti"}) {
    EXPECT_FALSE(ParseQuantity(bad).ok()) << bad;
  }
  EXPECT_EQ(FormatGi(27 * kGiB + kGiB / 4), "27.25Gi");
  EXPECT_EQ(FormatGi(80 * kGiB), "80Gi");
}

TEST(CatalogTest, InvalidEntriesAreNamed) {
  const std::string skus = "azure:\n  - {name: S1, gpuModel: A100, gpuCount: 1, gpuMemory: 80Gi}\n";
  auto bad_weights = Catalog::Parse("models:\n  - {name: m1, weights: lots, disk: 1Gi}\n", skus);
  ASSERT_FALSE(bad_weights.ok());
  EXPECT_THAT(bad_weights.status().message(), HasSubstr("models[0] (m1): weights: \"lots\" is not a quantity"));
  auto unknown = Catalog::Parse("models:\n  - {name: m1, weights: 1Gi, disk: 1Gi, wieghts: 2}\n", skus);
  EXPECT_THAT(unknown.status().message(), HasSubstr("models[0] (m1): wieghts: unknown field"));
  auto dup = Catalog::Parse(
      "models:\n  - {name: m1, weights: 1Gi, disk: 1Gi}\n  - {name: m2, aliases: [M1], weights: 1Gi, disk: 1Gi}\n",
      skus);
  EXPECT_THAT(dup.status().message(), HasSubstr("models[1] (m2): name: \"M1\" is already used by m1"));
  auto upper = Catalog::Parse("models:\n  - {name: M1, weights: 1Gi, disk: 1Gi}\n", skus);
  EXPECT_THAT(upper.status().message(), HasSubstr("must be lower case"));
  auto no_runtime = Catalog::Parse("models:\n  - {name: m1, weights: 1Gi, disk: 1Gi, vllm: false}\n", skus);
  EXPECT_THAT(no_runtime.status().message(), HasSubstr("needs at least one runtime"));
  auto bad_sku = Catalog::Parse("models: []\n",
                                "azure:\n  - {name: S1, gpuModel: A100, gpuCount: 0, gpuMemory: 80Gi, computeCapability: x}\n"
                                "gcp: []\n");
  EXPECT_THAT(bad_sku.status().message(), HasSubstr("skus.yaml: azure[0] (S1): gpuCount: must be at least 1"));
  EXPECT_THAT(bad_sku.status().message(), HasSubstr("computeCapability: expected MAJOR.MINOR"));
  EXPECT_THAT(bad_sku.status().message(), HasSubstr("gcp: unknown cloud"));
  auto malformed = Catalog::Parse("models: [", skus);
  EXPECT_THAT(malformed.status().message(), HasSubstr("models.yaml: malformed YAML"));
}

TEST(CatalogTest, FromDirectoryReportsMissingFiles) {
  EXPECT_EQ(Catalog::FromDirectory("/nonexistent").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace kaito::presets
