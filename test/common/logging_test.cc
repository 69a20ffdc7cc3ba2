// The daemons' log formats: one line per event in text (line breaks in a message escaped),
// one JSON object per line in json.
#include "common/logging.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <fcntl.h>
#include <string>

#include "absl/strings/str_split.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito {
namespace {

// What `log` wrote to stderr with `format`.
std::string Captured(const std::string& format, const std::function<void()>& log) {
  testing::TempDir dir;
  const std::string path = dir.File("stderr");
  std::fflush(stderr);
  const int saved = dup(2);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fd, 2);
  close(fd);
  EXPECT_TRUE(SetupLogging("info", format, "kaito-test").ok());
  log();
  spdlog::default_logger()->flush();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  return testing::ReadFile(path);
}

TEST(LoggingTest, AMultiLineMessageIsOneTextLine) {
  const std::string out = Captured("text", [] {
    spdlog::info("workload default/tune-0 failed: last output: line one\nline two\r\nline three");
  });
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_NE(lines[0].find(" I kaito-test workload default/tune-0 failed: last output: line "
                          "one\\nline two\\r\\nline three"),
            std::string::npos)
      << lines[0];
}

TEST(LoggingTest, JsonIsOneObjectPerLine) {
  const std::string out = Captured("json", [] { spdlog::warn("two\nlines"); });
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << out;
  EXPECT_NE(lines[0].find("\"level\":\"warning\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"msg\":\"two\\nlines\""), std::string::npos) << lines[0];
}

}  // namespace
}  // namespace kaito
