// How a kind's values are kept at rest: the seam between the serialized object and the
// bytes given to the store, as Kubernetes' storage value transformers. `ObjectRegistry`
// seals each value after serializing it (the size limit applies to the plain value);
// `ObjectCache` opens each stored value before parsing it. Only Secrets use one today
// (`AesGcmTransformer` when `--encryption-key-file` is given, else `PlaintextTransformer`).
//
// Thread-safety: implementations are immutable after construction; every method may be
// called from any thread at once (RPC threads seal, the store's writer thread opens).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kaito::server {

// Every sealed value begins with this, then the scheme ("aesgcm:v1:<key id>:"). A
// serialized protobuf message never begins so: its first byte 'k' (0x6b) would be field
// 13 with the start-group wire type, which proto3 never writes. So a stored value without
// it is plaintext, written before encryption was configured.
inline constexpr absl::string_view kSealedValuePrefix = "kaito:enc:";

class ValueTransformer {
 public:
  virtual ~ValueTransformer() = default;

  // The bytes to store at `key` for `plain`. `key` is bound to the result: a sealed value
  // copied to another key does not open. INTERNAL only when the crypto library fails.
  virtual absl::StatusOr<std::string> Seal(absl::string_view key,
                                           absl::string_view plain) const = 0;

  // The plain value from the bytes stored at `key`. A value without `kSealedValuePrefix`
  // is returned as it is. FAILED_PRECONDITION when it is sealed with a key this
  // transformer does not have (the message names the key id, never a key); DATA_LOSS
  // when it is malformed, tampered with, or sealed for another store key.
  virtual absl::StatusOr<std::string> Open(absl::string_view key,
                                           absl::string_view stored) const = 0;

  // Whether `stored` (which opens) should be written again so that it is sealed the way
  // `Seal` seals now: plaintext, or sealed with a key other than the current one.
  virtual bool NeedsReseal(absl::string_view stored) const = 0;
};

// No encryption: values are stored as they are. A sealed value does not open
// (FAILED_PRECONDITION: the key file is missing), so a server started without its key
// file never mistakes ciphertext for an object.
class PlaintextTransformer : public ValueTransformer {
 public:
  absl::StatusOr<std::string> Seal(absl::string_view key, absl::string_view plain) const override;
  absl::StatusOr<std::string> Open(absl::string_view key, absl::string_view stored) const override;
  // Never: values are not decrypted back to plaintext.
  bool NeedsReseal(absl::string_view stored) const override { return false; }
};

}  // namespace kaito::server
