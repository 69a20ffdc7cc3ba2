// Every manifest under shared/kaito-examples goes through the codec: Workspaces,
// ConfigMaps and Secrets parse; other kinds get a clear "not supported"; documents with
// placeholders that Kubernetes would reject too are rejected with the field path.
// The expected outcome of each document, and why, is in test/data/examples_codec.tsv.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_split.h"
#include "common/manifest_codec.h"
#include "support/process.h"

namespace kaito {
namespace {

namespace fs = std::filesystem;
using testing::Env;
using testing::ReadFile;

std::string Outcome(const ManifestDocument& doc) {
  if (doc.status.ok()) return "ok";
  if (doc.status.code() == absl::StatusCode::kUnimplemented) return "unsupported";
  return "invalid";
}

TEST(KaitoExamplesTest, EveryManifestHasItsExpectedOutcome) {
  fs::path root = Env("KAITO_EXAMPLES_DIR");
  if (!fs::is_directory(root)) root = "/work/shared/kaito-examples";
  if (!fs::is_directory(root)) {
    GTEST_SKIP() << "Kaito's examples are not beside this checkout (../shared/kaito-examples); "
                    "set KAITO_EXAMPLES_DIR";
  }
  // path \t index \t kind \t outcome \t why
  std::map<std::string, std::string> expected;
  std::ifstream table(Env("KAITO_SOURCE_DIR") + "/test/data/examples_codec.tsv");
  ASSERT_TRUE(table.good());
  std::string line;
  while (std::getline(table, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    ASSERT_GE(cols.size(), 4u) << line;
    expected[cols[0] + "#" + cols[1]] = cols[2] + " " + cols[3];
  }
  std::map<std::string, std::string> actual;
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".yaml") continue;
    ++files;
    const std::string rel = fs::relative(entry.path(), root).string();
    auto docs = ParseManifests(ReadFile(entry.path()));
    ASSERT_TRUE(docs.ok()) << rel << ": " << docs.status();
    for (const auto& doc : *docs) {
      actual[rel + "#" + std::to_string(doc.index)] = doc.kind + " " + Outcome(doc);
      if (!doc.status.ok()) {
        // Every failure names its document.
        EXPECT_NE(std::string(doc.status.message()).find(doc.Describe()), std::string::npos)
            << doc.status;
      }
    }
  }
  EXPECT_GE(files, 50);
  std::string diff;
  for (const auto& [k, v] : actual) {
    auto it = expected.find(k);
    if (it == expected.end() || it->second != v) {
      diff += k + ": got \"" + v + "\", table says \"" +
              (it == expected.end() ? "<missing>" : it->second) + "\"\n";
    }
  }
  for (const auto& [k, v] : expected) {
    if (!actual.contains(k)) diff += k + ": in the table but not in the examples\n";
  }
  EXPECT_EQ(diff, "");
}

}  // namespace
}  // namespace kaito
