// Encryption at rest with AES-256-GCM (OpenSSL), keyed by `--encryption-key-file`, as
// Kubernetes' EncryptionConfiguration with an `aesgcm` provider and a list of keys.
//
// Key file: one key per line, each the standard base64 of exactly 32 random bytes
// (`head -c 32 /dev/urandom | base64`); blank lines and lines starting with `#` are
// skipped. The first key seals every new value; every key opens. Rotation: put the new key
// first and keep the old ones after it. The file must be a regular file that neither the
// group nor others may read or write (mode 0600 or 0400), as ssh requires of a private key.
//
// Sealed value: "kaito:enc:aesgcm:v1:<key id>:" + 12-byte nonce + ciphertext + 16-byte
// tag. The key id is the first 8 hex digits of SHA-256 of the key (so an operator can tell
// which line of the file a value needs: `base64 -d | sha256sum`); it is not the key and
// does not help to find it. The nonce is random per value (RAND_bytes). The authenticated
// data is the store key, so a value moved to another key fails to open.
//
// Thread-safety: immutable after construction; `Seal` and `Open` may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/registry/value_transformer.h"

namespace kaito::server {

class AesGcmTransformer : public ValueTransformer {
 public:
  static constexpr size_t kKeyBytes = 32;
  static constexpr size_t kNonceBytes = 12;
  static constexpr size_t kTagBytes = 16;

  // Reads and checks a key file (see above). INVALID_ARGUMENT names the line that is
  // wrong, never its text; PERMISSION_DENIED when group or others may access the file;
  // NOT_FOUND or UNAVAILABLE when it cannot be read.
  static absl::StatusOr<std::unique_ptr<AesGcmTransformer>> FromKeyFile(const std::string& path);
  // The keys of a key file's text, in order. Errors as `FromKeyFile`, naming lines.
  static absl::StatusOr<std::vector<std::string>> ParseKeyFile(absl::string_view text);
  // From raw 32-byte keys: the first seals, all open. INVALID_ARGUMENT when there is
  // none, one is not 32 bytes, or two have the same key id.
  static absl::StatusOr<std::unique_ptr<AesGcmTransformer>> FromKeys(std::vector<std::string> keys);

  // The first 8 hex digits of SHA-256 of `key`.
  static std::string KeyId(absl::string_view key);

  ~AesGcmTransformer() override;
  AesGcmTransformer(const AesGcmTransformer&) = delete;
  AesGcmTransformer& operator=(const AesGcmTransformer&) = delete;

  absl::StatusOr<std::string> Seal(absl::string_view key, absl::string_view plain) const override;
  absl::StatusOr<std::string> Open(absl::string_view key, absl::string_view stored) const override;
  bool NeedsReseal(absl::string_view stored) const override;

  // The id of the key that seals.
  const std::string& primary_key_id() const { return keys_.front().id; }
  size_t key_count() const { return keys_.size(); }

 private:
  struct Key {
    std::string id;
    std::string bytes;
  };
  explicit AesGcmTransformer(std::vector<Key> keys);
  // "kaito:enc:aesgcm:v1:<id>:".
  static std::string Header(absl::string_view id);

  // Never changed after construction; cleansed by the destructor.
  std::vector<Key> keys_;
  const std::string primary_header_;
};

}  // namespace kaito::server
