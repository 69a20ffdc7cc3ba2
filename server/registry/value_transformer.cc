#include "server/registry/value_transformer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace kaito::server {
namespace {

// The scheme and key id of a sealed value ("aesgcm:v1:1a2b3c4d"), printable characters
// only, for messages; never any of the sealed bytes after them.
std::string SealedScheme(absl::string_view stored) {
  absl::string_view rest = stored.substr(kSealedValuePrefix.size());
  std::string scheme;
  int colons = 0;
  for (char c : rest.substr(0, 40)) {
    if (c == ':' && ++colons == 3) break;
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) break;
    scheme.push_back(c);
  }
  return scheme;
}

}  // namespace

absl::StatusOr<std::string> PlaintextTransformer::Seal(absl::string_view key,
                                                       absl::string_view plain) const {
  return std::string(plain);
}

absl::StatusOr<std::string> PlaintextTransformer::Open(absl::string_view key,
                                                       absl::string_view stored) const {
  if (absl::StartsWith(stored, kSealedValuePrefix)) {
    return absl::FailedPreconditionError("encrypted (" + SealedScheme(stored) +
                                         ") and no --encryption-key-file is given");
  }
  return std::string(stored);
}

}  // namespace kaito::server
