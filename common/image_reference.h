// Container image references, parsed as Docker's reference grammar (Kaito calls
// `reference.ParseDockerRef`): shared by the validator, the agent and the OCI client.
#pragma once

#include <string>

namespace kaito {

// An empty string when `image` is a valid reference; otherwise why it is not. Linear in
// the length of the input (no backtracking regex on hostile input).
std::string CheckImageReference(const std::string& image);

}  // namespace kaito
