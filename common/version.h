#pragma once

namespace kaito {
// The version of this build, from CMake's project version.
const char* Version();
}  // namespace kaito
