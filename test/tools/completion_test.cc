#include "tools/kaitoctl/completion.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::ctl {
namespace {

using ::kaito::testing::RunCommand;
using ::kaito::testing::RunResult;
using ::testing::HasSubstr;

CompletionSpec Spec() {
  CompletionSpec spec;
  spec.global_flags = {{"--server", true}, {"-n", true}, {"--namespace", true}};
  spec.verbs = {{"get", {{"-o", true}, {"--output", true}, {"-w", false}, {"--watch", false}}},
                {"apply", {{"-f", true}, {"--filename", true}, {"--dry-run", false}}},
                {"completion", {}}};
  spec.resource_names = {"workspaces", "ws", "nodes"};
  spec.output_formats = {"json", "yaml", "name"};
  return spec;
}

// Completes `words` (the last one being completed) with the script for `shell`, in bash.
class CompletionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> script = CompletionScript(Spec(), "bash");
    ASSERT_TRUE(script.ok()) << script.status();
    script_ = dir_.File("kaitoctl.bash");
    std::ofstream(script_) << *script;
    // A stand-in for kaitoctl that records its arguments and lists two workspaces.
    fake_ = dir_.File("kaitoctl");
    std::ofstream(fake_) << "#!/bin/sh\nprintf '%s\\n' \"$*\" > " << dir_.File("args")
                         << "\nprintf 'workspace.kaito.sh/alpha\\nworkspace.kaito.sh/beta\\n'\n";
    chmod(fake_.c_str(), 0755);
  }

  std::string Complete(const std::vector<std::string>& words) {
    std::string array = "'" + fake_ + "'";
    for (const std::string& w : words) array += " '" + w + "'";
    RunResult r = RunCommand({"/bin/bash", "-c",
                              "source '" + script_ + "' && COMP_WORDS=(" + array +
                                  ") && COMP_CWORD=" + std::to_string(words.size()) +
                                  " && _kaitoctl && echo \"${COMPREPLY[*]}\""});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    return r.out;
  }

  kaito::testing::TempDir dir_;
  std::string script_, fake_;
};

TEST_F(CompletionTest, Verbs) {
  EXPECT_EQ(Complete({"g"}), "get\n");
  EXPECT_EQ(Complete({""}), "get apply completion\n");
  EXPECT_EQ(Complete({"--server", "h:1", "a"}), "apply\n") << "a global flag's value is skipped";
  EXPECT_EQ(Complete({"--se"}), "--server\n");
}

TEST_F(CompletionTest, FlagsOfTheVerbAndGlobalFlags) {
  EXPECT_EQ(Complete({"get", "--w"}), "--watch\n");
  EXPECT_EQ(Complete({"get", "--n"}), "--namespace\n");
  EXPECT_EQ(Complete({"apply", "--d"}), "--dry-run\n");
}

TEST_F(CompletionTest, ResourceTypesThenNamesFromTheServer) {
  EXPECT_EQ(Complete({"get", "w"}), "workspaces ws\n");
  EXPECT_EQ(Complete({"get", "-n", "team-a", "ws", ""}), "alpha beta\n");
  EXPECT_EQ(kaito::testing::ReadFile(dir_.File("args")),
            "-n team-a --request-timeout=5s get ws -o name\n")
      << "the namespace on the line is passed on";
  EXPECT_EQ(Complete({"get", "ws", "b"}), "beta\n");
}

TEST_F(CompletionTest, OutputFormatsAndShells) {
  EXPECT_EQ(Complete({"get", "ws", "-o", "j"}), "json\n");
  EXPECT_EQ(Complete({"completion", "z"}), "zsh\n");
}

TEST_F(CompletionTest, FilesAfterDashF) {
  std::ofstream(dir_.File("manifest.yaml")) << "x";
  EXPECT_THAT(Complete({"apply", "-f", dir_.File("manif")}), HasSubstr("manifest.yaml"));
}

TEST(CompletionScriptTest, ZshLoadsTheBashScriptThroughBashcompinit) {
  absl::StatusOr<std::string> zsh = CompletionScript(Spec(), "zsh");
  ASSERT_TRUE(zsh.ok());
  EXPECT_THAT(*zsh, ::testing::StartsWith("#compdef kaitoctl\n"));
  EXPECT_THAT(*zsh, HasSubstr("bashcompinit"));
  EXPECT_THAT(*zsh, HasSubstr("complete -o default -F _kaitoctl kaitoctl"));
  EXPECT_FALSE(CompletionScript(Spec(), "fish").ok());
}

}  // namespace
}  // namespace kaito::ctl
