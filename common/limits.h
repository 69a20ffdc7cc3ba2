// Size limits shared by the server, its clients and the tools.
#pragma once

#include <cstddef>

namespace kaito {

// Largest stored object, as etcd's default request limit that Kubernetes lives with.
inline constexpr size_t kMaxObjectBytes = 1536 * 1024;
// Largest request a server accepts: one object plus the request's other fields.
inline constexpr size_t kMaxRequestBytes = kMaxObjectBytes + 64 * 1024;

}  // namespace kaito
