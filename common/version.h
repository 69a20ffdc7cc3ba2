#pragma once

namespace kaito {
// The version of this build, from CMake's project version.
const char* Version();
// The source revision (git commit, 12 hex digits) CMake was configured from; "unknown"
// outside a git checkout.
const char* Revision();
}  // namespace kaito
