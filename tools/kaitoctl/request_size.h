// The client side of the server's request bound: kaitoctl refuses, before sending, a
// request the server would refuse for its size, so that an oversized manifest costs the
// server nothing and the user gets an error naming the object.
#pragma once

#include <google/protobuf/message.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "common/limits.h"

namespace kaito::ctl {

// OK when `request` serializes to at most `limit` bytes; otherwise INVALID_ARGUMENT, one
// line naming `object` (e.g. `configmap/params`), the request's size and the limit.
absl::Status CheckRequestSize(const google::protobuf::Message& request, const std::string& object,
                              size_t limit = kMaxRequestBytes);

}  // namespace kaito::ctl
