// Every Workspace of shared/kaito-examples through `kaitoctl apply --dry-run` and then a
// real `kaitoctl apply`, against kaito-server in dev mode (node auto-provisioning on, the
// Azure SKU table), each file in a namespace of its own. The expected outcome of each
// workspace, and why, is in test/data/examples_apply.tsv.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::testing {
namespace {

namespace fs = std::filesystem;

// workspace name -> "accepted" or "rejected: <message>"
std::map<std::string, std::string> Outcomes(const RunResult& r) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "workspace/")) continue;
    std::string rest(line.substr(10));
    out[rest.substr(0, rest.find(' '))] = "accepted";
  }
  const std::string marker = "Error from server (Invalid): workspace/";
  for (absl::string_view line : absl::StrSplit(r.err, '\n', absl::SkipEmpty())) {
    size_t at = line.find(marker);
    if (at == absl::string_view::npos) continue;
    std::string rest(line.substr(at + marker.size()));
    const std::string name = rest.substr(0, rest.find(':'));
    out[name] = "rejected: " + rest.substr(rest.find(" is invalid: ") + 13);
  }
  return out;
}

TEST(KaitoExamplesApplyTest, EveryWorkspaceHasItsExpectedOutcome) {
  fs::path root = Env("KAITO_EXAMPLES_DIR");
  if (!fs::is_directory(root)) root = "/work/shared/kaito-examples";
  if (!fs::is_directory(root)) GTEST_SKIP() << "Kaito's examples are not beside this checkout";
  // path \t workspace \t dry-run outcome \t apply outcome \t why
  std::map<std::string, std::pair<std::string, std::string>> expected;
  std::ifstream table(Env("KAITO_SOURCE_DIR") + "/test/data/examples_apply.tsv");
  ASSERT_TRUE(table.good());
  std::string line;
  while (std::getline(table, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    ASSERT_GE(cols.size(), 5u) << line;
    expected[cols[0] + "#" + cols[1]] = {cols[2], cols[3]};
  }
  TempDir dir;
  auto server = StartServer(dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::string diff;
  size_t seen = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string rel = fs::relative(files[i], root).string();
    const std::string ns = "example-" + std::to_string(i);
    auto ctl = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {BinDir() + "/kaitoctl", "--server", server->address(), "-n", ns});
      return RunCommand(args);
    };
    auto dry = Outcomes(ctl({"apply", "--dry-run", "-f", files[i].string()}));
    auto real = Outcomes(ctl({"apply", "-f", files[i].string()}));
    for (const auto& [name, outcome] : real) {
      ++seen;
      const std::string key = rel + "#" + name;
      auto it = expected.find(key);
      const std::string got_dry = dry.count(name) ? dry[name] : "<none>";
      if (it == expected.end()) {
        diff += key + "\t" + got_dry + "\t" + outcome + "\t<missing from table>\n";
        continue;
      }
      auto matches = [](const std::string& got, const std::string& want) {
        return got == want || (absl::StartsWith(want, "rejected: ") && absl::StartsWith(got, "rejected: ") &&
                               got.find(want.substr(10)) != std::string::npos);
      };
      if (!matches(got_dry, it->second.first) || !matches(outcome, it->second.second)) {
        diff += key + "\tgot\t" + got_dry + "\t" + outcome + "\twant\t" + it->second.first + "\t" +
                it->second.second + "\n";
      }
    }
    // Create and update judge a manifest the same way: applied again, every accepted
    // workspace is unchanged; with a label added (from its own `get -o yaml`), configured.
    RunResult again = ctl({"apply", "-f", files[i].string()});
    for (const auto& [name, outcome] : real) {
      if (outcome != "accepted") continue;
      const std::string key = rel + "#" + name;
      if (again.out.find("workspace/" + name + " unchanged") == std::string::npos) {
        diff += key + "\tsecond apply\t" + again.out + again.err + "\n";
      }
      RunResult yaml = ctl({"get", "workspace", name, "-o", "yaml"});
      std::string text = yaml.out;
      // The stored resourceVersion would make the update conditional on a status that the
      // controller keeps writing; the label goes under metadata.
      std::vector<std::string> lines = absl::StrSplit(text, '\n');
      std::string edited;
      bool labelled = false;
      for (const std::string& l : lines) {
        if (absl::StartsWith(l, "  resourceVersion:")) continue;
        edited += l + "\n";
        if (!labelled && l == "  labels:") {
          edited += "    example-touched: \"yes\"\n";
          labelled = true;
        }
      }
      if (!labelled) {
        const size_t at = edited.find("metadata:\n");
        if (at != std::string::npos) {
          edited.insert(at + 10, "  labels:\n    example-touched: \"yes\"\n");
        }
      }
      auto args = std::vector<std::string>{BinDir() + "/kaitoctl", "--server", server->address(),
                                           "-n", ns, "apply", "-f", "-"};
      RunResult label = RunCommand(args, edited);
      if (label.out.find("workspace/" + name + " configured") == std::string::npos) {
        diff += key + "\tlabel change\t" + label.out + label.err + "\n";
      }
    }
  }
  EXPECT_EQ(seen, expected.size()) << "workspaces in the examples vs rows in the table";
  EXPECT_EQ(diff, "");
}

}  // namespace
}  // namespace kaito::testing
