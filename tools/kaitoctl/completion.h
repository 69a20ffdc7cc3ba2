// `kaitoctl completion bash|zsh`: a shell completion script for the verbs, their flags, the
// resource types, `-o` formats, files after `-f`, and object names (which the script asks
// `kaitoctl get TYPE -o name` for, with the --server, --namespace and credentials already
// on the line). The zsh script is the bash one loaded through zsh's `bashcompinit`.
//
// The script is made from a `CompletionSpec` that main.cc reads off its command-line parser,
// so that it cannot drift from the flags kaitoctl takes. Pure.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kaito::ctl {

struct CompletionFlag {
  std::string name;          // "-o", "--output".
  bool takes_value = false;  // The next word is the flag's value, not an argument.
};

struct CompletionVerb {
  std::string name;
  std::vector<CompletionFlag> flags;
};

struct CompletionSpec {
  std::vector<CompletionVerb> verbs;
  std::vector<CompletionFlag> global_flags;  // Taken before or after the verb.
  std::vector<std::string> resource_names;   // Plurals, singulars and short names.
  std::vector<std::string> output_formats;
};

// The script for `shell` ("bash" or "zsh"); INVALID_ARGUMENT for any other shell.
absl::StatusOr<std::string> CompletionScript(const CompletionSpec& spec, const std::string& shell);

}  // namespace kaito::ctl
