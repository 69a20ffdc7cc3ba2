#include "tools/kaitoctl/request_size.h"

namespace kaito::ctl {

absl::Status CheckRequestSize(const google::protobuf::Message& request, const std::string& object,
                              size_t limit) {
  const size_t size = request.ByteSizeLong();
  if (size <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(object + ": the request would be " + std::to_string(size) +
                                    " bytes, more than the server accepts (" +
                                    std::to_string(limit) + " bytes; an object is at most " +
                                    std::to_string(kMaxObjectBytes) + " bytes): not sent");
}

}  // namespace kaito::ctl
