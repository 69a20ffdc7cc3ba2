// The manifests `apply -f` and `delete -f` read, as kubectl finds them: each `-f` is a
// file, `-` (stdin), or a directory whose .yaml, .yml and .json files are read in name
// order (with `-R`, its subdirectories' too, depth first).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kaito::ctl {

// The files `filenames` name, in order; "-" stays "-". A path that does not exist is
// NOT_FOUND: `the path "x" does not exist`; a directory without manifests is
// INVALID_ARGUMENT: `error reading "dir": no manifests (.yaml, .yml, .json) found`.
absl::StatusOr<std::vector<std::string>> ExpandFilenames(const std::vector<std::string>& filenames,
                                                         bool recursive);

// The text of `file` ("-": all of stdin); NOT_FOUND naming the file when it cannot be read.
absl::StatusOr<std::string> ReadManifestSource(const std::string& file);

}  // namespace kaito::ctl
