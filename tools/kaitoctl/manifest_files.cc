#include "tools/kaitoctl/manifest_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kaito::ctl {
namespace {

namespace fs = std::filesystem;

bool IsManifest(const fs::path& path) {
  const std::string ext = path.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

// The manifests in `dir`, sorted by name; subdirectories after the files when `recursive`.
void AddDirectory(const fs::path& dir, bool recursive, std::vector<std::string>& out) {
  std::vector<fs::path> files, dirs;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec)) {
      dirs.push_back(entry.path());
    } else if (IsManifest(entry.path())) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& f : files) out.push_back(f.string());
  if (!recursive) return;
  for (const fs::path& d : dirs) AddDirectory(d, recursive, out);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandFilenames(const std::vector<std::string>& filenames,
                                                         bool recursive) {
  std::vector<std::string> out;
  for (const std::string& name : filenames) {
    std::error_code ec;
    if (name == "-") {
      out.push_back(name);
    } else if (fs::is_directory(name, ec)) {
      const size_t before = out.size();
      AddDirectory(name, recursive, out);
      if (out.size() == before) {
        return absl::InvalidArgumentError(
            absl::StrCat("error reading \"", name, "\": no manifests (.yaml, .yml, .json) found"));
      }
    } else if (fs::exists(name, ec)) {
      out.push_back(name);
    } else {
      return absl::NotFoundError(absl::StrCat("the path \"", name, "\" does not exist"));
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadManifestSource(const std::string& file) {
  std::stringstream buffer;
  if (file == "-") {
    buffer << std::cin.rdbuf();
    return buffer.str();
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", file));
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace kaito::ctl
