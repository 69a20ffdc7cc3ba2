// The daemons' log formats: one line per event in text (line breaks in a message escaped),
// one JSON object per line in json.
#include "common/logging.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <map>
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

TEST(LoggingTest, ALineAboutAWorkspaceNamesItInTheTextFormat) {
  const std::string out = Captured("text", [] {
    LogAbout(spdlog::level::warn, WorkspaceSubject("team-a", "phi"), "event {}", "Ready");
    std::map<std::string, std::string> labels = {{kWorkspaceLabel, "phi"},
                                                 {kWorkspaceNamespaceLabel, "team-a"}};
    LogAbout(spdlog::level::info, SubjectFromLabels(labels, "nodeclaim/ws3f9a1c"), "created");
    LogAbout(spdlog::level::info, LogSubject{"", "", "nodeclaim/orphan"}, "gone");
    LogAbout(spdlog::level::debug, WorkspaceSubject("team-a", "phi"), "below the level");
    spdlog::info("about nothing");
  });
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << out;
  EXPECT_NE(lines[0].find(" W kaito-test workspace team-a/phi: event Ready"), std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find(" I kaito-test nodeclaim/ws3f9a1c (workspace team-a/phi): created"),
            std::string::npos)
      << lines[1];
  EXPECT_NE(lines[2].find(" I kaito-test nodeclaim/orphan: gone"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find(" I kaito-test about nothing"), std::string::npos) << lines[3];
}

TEST(LoggingTest, ALineAboutAWorkspaceHasFieldsInTheJsonFormat) {
  const std::string out = Captured("json", [] {
    LogAbout(spdlog::level::info, LogSubject{"team-a", "phi", "workload/phi-0"}, "adopted");
    spdlog::info("about nothing");
  });
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << out;
  EXPECT_NE(lines[0].find("\"namespace\":\"team-a\",\"workspace\":\"phi\",\"object\":"
                          "\"workload/phi-0\",\"msg\":\"adopted\""),
            std::string::npos)
      << lines[0];
  EXPECT_EQ(lines[1].find("\"workspace\""), std::string::npos)
      << "the subject ends with its line: " << lines[1];
}

}  // namespace
}  // namespace kaito
