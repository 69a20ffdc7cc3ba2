#include "tools/kaitoctl/request_size.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kaito/v1/config.pb.h"

namespace kaito::ctl {
namespace {

using ::testing::HasSubstr;

v1::WriteConfigMapRequest RequestWithValueOf(size_t bytes) {
  v1::WriteConfigMapRequest r;
  r.mutable_config_map()->mutable_metadata()->set_name("params");
  (*r.mutable_config_map()->mutable_data())["blob"] = std::string(bytes, 'x');
  return r;
}

TEST(RequestSizeTest, AcceptsUpToTheLimitAndNamesTheObjectPastIt) {
  EXPECT_TRUE(
      CheckRequestSize(RequestWithValueOf(kMaxObjectBytes - 1024), "configmap/params").ok());
  const auto big = RequestWithValueOf(kMaxRequestBytes);
  absl::Status s = CheckRequestSize(big, "configmap/params");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("configmap/params: the request would be " +
                                     std::to_string(big.ByteSizeLong()) + " bytes"));
  EXPECT_THAT(s.message(), HasSubstr(std::to_string(kMaxRequestBytes)));
  // The limit is the caller's to choose.
  EXPECT_FALSE(CheckRequestSize(RequestWithValueOf(100), "configmap/params", 50).ok());
}

TEST(RequestSizeTest, TheLimitIsALittleAboveTheLargestObject) {
  EXPECT_EQ(kMaxObjectBytes, 1536u * 1024);
  EXPECT_GT(kMaxRequestBytes, kMaxObjectBytes);
  EXPECT_LE(kMaxRequestBytes, kMaxObjectBytes + 64 * 1024);
}

}  // namespace
}  // namespace kaito::ctl
