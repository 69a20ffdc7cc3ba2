#include "server/registry/aes_gcm_transformer.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace kaito::server {
namespace {

constexpr absl::string_view kScheme = "aesgcm:v1:";
constexpr size_t kKeyIdChars = 8;
// A key file is a few lines; anything this large is not one.
constexpr size_t kMaxKeyFileBytes = 64 * 1024;

struct CipherContextFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree>;

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* Bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

absl::Status CryptoError(const char* what) {
  return absl::InternalError(absl::StrCat("aes-gcm: ", what, " failed in OpenSSL"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AesGcmTransformer>> AesGcmTransformer::FromKeyFile(
    const std::string& path) {
  const std::string what = "--encryption-key-file " + path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const std::string reason = std::strerror(errno);
    if (errno == ENOENT) return absl::NotFoundError(what + ": " + reason);
    return absl::UnavailableError(what + ": " + reason);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    return absl::UnavailableError(what + ": " + reason);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(what + ": not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return absl::PermissionDeniedError(
        absl::StrFormat("%s: mode %04o lets the group or others access the keys; chmod 600 it",
                        what, st.st_mode & 07777));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxKeyFileBytes) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": larger than ", kMaxKeyFileBytes, " bytes; not a key file"));
  }
  std::string text;
  char buffer[4096];
  // Room for the whole file up front, so that no reallocation leaves key bytes behind.
  text.reserve(static_cast<size_t>(st.st_size) + sizeof(buffer));
  while (text.size() <= kMaxKeyFileBytes) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string reason = std::strerror(errno);
      ::close(fd);
      OPENSSL_cleanse(buffer, sizeof(buffer));
      OPENSSL_cleanse(text.data(), text.size());
      return absl::UnavailableError(what + ": " + reason);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  OPENSSL_cleanse(buffer, sizeof(buffer));
  absl::StatusOr<std::vector<std::string>> keys = ParseKeyFile(text);
  OPENSSL_cleanse(text.data(), text.size());
  if (!keys.ok()) {
    return absl::Status(keys.status().code(), what + ": " + std::string(keys.status().message()));
  }
  auto transformer = FromKeys(std::move(*keys));
  if (!transformer.ok()) {
    return absl::Status(transformer.status().code(),
                        what + ": " + std::string(transformer.status().message()));
  }
  return transformer;
}

absl::StatusOr<std::vector<std::string>> AesGcmTransformer::ParseKeyFile(absl::string_view text) {
  std::vector<std::string> keys;
  std::vector<size_t> key_lines;
  size_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    std::string key;
    // Strict: standard alphabet with padding, in its one canonical spelling.
    if (!absl::Base64Unescape(line, &key) || absl::Base64Escape(key) != line) {
      OPENSSL_cleanse(key.data(), key.size());
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number,
                       ": not standard base64 (a key is base64 of 32 random bytes: "
                       "head -c 32 /dev/urandom | base64)"));
    }
    if (key.size() != kKeyBytes) {
      const size_t size = key.size();
      OPENSSL_cleanse(key.data(), key.size());
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": a key is ", kKeyBytes,
                                                     " bytes, this one is ", size));
    }
    const std::string id = KeyId(key);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (KeyId(keys[i]) == id) {
        OPENSSL_cleanse(key.data(), key.size());
        return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": the key of line ",
                                                       key_lines[i], " again (key id ", id, ")"));
      }
    }
    keys.push_back(std::move(key));
    key_lines.push_back(line_number);
  }
  if (keys.empty()) return absl::InvalidArgumentError("no key (one base64 key per line)");
  return keys;
}

absl::StatusOr<std::unique_ptr<AesGcmTransformer>> AesGcmTransformer::FromKeys(
    std::vector<std::string> keys) {
  if (keys.empty()) return absl::InvalidArgumentError("no key");
  std::vector<Key> parsed;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].size() != kKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("key ", i + 1, ": a key is ", kKeyBytes, " bytes"));
    }
    Key key{KeyId(keys[i]), std::move(keys[i])};
    for (const Key& other : parsed) {
      if (other.id == key.id) {
        return absl::InvalidArgumentError(
            absl::StrCat("key ", i + 1, ": key id ", key.id, " twice"));
      }
    }
    parsed.push_back(std::move(key));
  }
  return std::unique_ptr<AesGcmTransformer>(new AesGcmTransformer(std::move(parsed)));
}

std::string AesGcmTransformer::KeyId(absl::string_view key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(key.data(), key.size(), digest, &size, EVP_sha256(), nullptr) != 1 ||
      size < kKeyIdChars / 2) {
    // A broken invariant: SHA-256 is always available in OpenSSL.
    std::abort();
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), kKeyIdChars / 2));
}

AesGcmTransformer::AesGcmTransformer(std::vector<Key> keys)
    : keys_(std::move(keys)), primary_header_(Header(keys_.front().id)) {}

AesGcmTransformer::~AesGcmTransformer() {
  for (Key& key : keys_) OPENSSL_cleanse(key.bytes.data(), key.bytes.size());
}

std::string AesGcmTransformer::Header(absl::string_view id) {
  return absl::StrCat(kSealedValuePrefix, kScheme, id, ":");
}

absl::StatusOr<std::string> AesGcmTransformer::Seal(absl::string_view key,
                                                    absl::string_view plain) const {
  if (plain.size() > INT_MAX || key.size() > INT_MAX) {
    return absl::InvalidArgumentError("aes-gcm: value too large");
  }
  const std::string& secret = keys_.front().bytes;
  std::string out = primary_header_;
  const size_t nonce_at = out.size();
  out.resize(nonce_at + kNonceBytes + plain.size() + kTagBytes);
  unsigned char* nonce = Bytes(out) + nonce_at;
  unsigned char* cipher = nonce + kNonceBytes;
  if (RAND_bytes(nonce, kNonceBytes) != 1) return CryptoError("RAND_bytes");
  CipherContext ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(secret), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &n, Bytes(key), static_cast<int>(key.size())) != 1) {
    return CryptoError("encrypt init");
  }
  int written = 0;
  if (EVP_EncryptUpdate(ctx.get(), cipher, &written, Bytes(plain),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), cipher + written, &n) != 1) {
    return CryptoError("encrypt");
  }
  written += n;
  if (static_cast<size_t>(written) != plain.size() ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, cipher + written) != 1) {
    return CryptoError("encrypt tag");
  }
  return out;
}

absl::StatusOr<std::string> AesGcmTransformer::Open(absl::string_view key,
                                                    absl::string_view stored) const {
  if (!absl::StartsWith(stored, kSealedValuePrefix)) return std::string(stored);
  absl::string_view rest = stored.substr(kSealedValuePrefix.size());
  if (!absl::ConsumePrefix(&rest, kScheme) || rest.size() < kKeyIdChars + 1 ||
      rest[kKeyIdChars] != ':') {
    return absl::DataLossError("sealed value of an unknown scheme (this server writes " +
                               std::string(kScheme.substr(0, kScheme.size() - 1)) + ")");
  }
  const absl::string_view id = rest.substr(0, kKeyIdChars);
  rest.remove_prefix(kKeyIdChars + 1);
  const Key* found = nullptr;
  for (const Key& k : keys_) {
    if (k.id == id) found = &k;
  }
  if (found == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("sealed with key id ", absl::CHexEscape(id),
                                                      ", which is not in --encryption-key-file"));
  }
  if (rest.size() < kNonceBytes + kTagBytes || rest.size() > INT_MAX || key.size() > INT_MAX) {
    return absl::DataLossError("sealed value is truncated");
  }
  const unsigned char* nonce = Bytes(rest);
  const absl::string_view cipher = rest.substr(kNonceBytes, rest.size() - kNonceBytes - kTagBytes);
  std::string tag(rest.substr(rest.size() - kTagBytes));
  std::string plain(cipher.size(), '\0');
  CipherContext ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(found->bytes), nonce) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &n, Bytes(key), static_cast<int>(key.size())) != 1) {
    return CryptoError("decrypt init");
  }
  int written = 0;
  if (EVP_DecryptUpdate(ctx.get(), Bytes(plain), &written, Bytes(cipher),
                        static_cast<int>(cipher.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return CryptoError("decrypt");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), Bytes(plain) + written, &n) != 1) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return absl::DataLossError(absl::StrCat("sealed value does not authenticate with key id ",
                                            found->id,
                                            " (tampered with, or copied from another key)"));
  }
  return plain;
}

bool AesGcmTransformer::NeedsReseal(absl::string_view stored) const {
  return !absl::StartsWith(stored, primary_header_);
}

}  // namespace kaito::server
