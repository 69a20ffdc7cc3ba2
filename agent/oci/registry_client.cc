#include "agent/oci/registry_client.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/image_reference.h"
#include "spdlog/spdlog.h"

namespace kaito::agent::oci {
namespace {

using json = nlohmann::json;

// Of an error reply kept while a blob streams to its file, for the error's text.
constexpr size_t kErrorBodyBytes = 4096;
// How much more than its declared size a blob reply may carry before it is cut off: an error
// reply (whose status is known only at the end) may be longer than a small blob.
constexpr int64_t kBlobSlackBytes = 64 << 10;
// Redirects followed for one blob.
constexpr int kMaxRedirects = 5;
constexpr size_t kReadChunkBytes = 1 << 20;

constexpr char kManifestAccept[] =
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json";

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsSha256Digest(const std::string& digest) {
  constexpr size_t kPrefix = sizeof("sha256:") - 1;
  if (digest.size() != kPrefix + 64 || !absl::StartsWith(digest, "sha256:")) return false;
  for (size_t i = kPrefix; i < digest.size(); ++i) {
    if (!IsLowerHex(digest[i])) return false;
  }
  return true;
}

// An incremental sha256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { Reset(); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Reset() { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  void Update(std::string_view data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
  // "sha256:<hex>" of what was added since the last reset; resets.
  std::string Digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_, md, &size);
    Reset();
    return absl::StrCat(
        "sha256:", absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(md), size)));
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string Base64Encode(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int size = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                   reinterpret_cast<const unsigned char*>(data.data()),
                                   static_cast<int>(data.size()));
  out.resize(size < 0 ? 0 : static_cast<size_t>(size));
  return out;
}

std::optional<std::string> Base64Decode(const std::string& text) {
  const std::string in(absl::StripAsciiWhitespace(text));
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  const int size = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                   reinterpret_cast<const unsigned char*>(in.data()),
                                   static_cast<int>(in.size()));
  if (size < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding as decoded zero bytes.
  size_t padding = 0;
  while (padding < 2 && padding < in.size() && in[in.size() - 1 - padding] == '=') ++padding;
  out.resize(static_cast<size_t>(size) - padding);
  return out;
}

std::string BasicAuthorization(const Credentials& creds) {
  return absl::StrCat("Basic ", Base64Encode(absl::StrCat(creds.username, ":", creds.password)));
}

std::string StringField(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// `text` cut to `limit` bytes with control characters blanked, for an error message.
std::string Printable(const std::string& text, size_t limit = 300) {
  std::string out = text.substr(0, limit);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  if (text.size() > limit) out += "...";
  return out;
}

// Serialized without exceptions: strings that are not UTF-8 are repaired, not thrown at.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// "scheme://authority", lower-cased, of an absolute URL; "" for a relative one.
std::string Origin(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  return absl::AsciiStrToLower(url.substr(0, url.find_first_of("/?#", scheme + 3)));
}

// `location` (a Location header) resolved against the URL it came from.
std::string ResolveUrl(const std::string& base, const std::string& location) {
  const std::string lower = absl::AsciiStrToLower(location);
  if (absl::StartsWith(lower, "http://") || absl::StartsWith(lower, "https://")) return location;
  if (absl::StartsWith(location, "//"))
    return absl::StrCat(base.substr(0, base.find(':')), ":", location);
  if (absl::StartsWith(location, "/")) return Origin(base) + location;
  const std::string path = base.substr(0, base.find_first_of("?#"));
  return path.substr(0, path.rfind('/') + 1) + location;
}

std::string WithQuery(const std::string& url, const std::string& query) {
  return absl::StrCat(url, absl::StrContains(url, "?") ? "&" : "?", query);
}

// The URL without its query, for messages.
std::string WithoutQuery(const std::string& url) { return url.substr(0, url.find('?')); }

std::string ApiHost(const std::string& registry) {
  return registry == "docker.io" ? "registry-1.docker.io" : registry;
}

// One challenge of a WWW-Authenticate header: `Bearer realm="...",service="...",scope="..."`.
struct Challenge {
  std::string scheme;  // Lower-cased.
  std::map<std::string, std::string> params;
};

std::optional<Challenge> ParseChallenge(const std::string& header) {
  Challenge c;
  size_t i = 0;
  const size_t n = header.size();
  auto skip = [&](const char* chars) {
    while (i < n && std::strchr(chars, header[i]) != nullptr) ++i;
  };
  skip(" \t");
  const size_t scheme_end = header.find_first_of(" \t", i);
  c.scheme = absl::AsciiStrToLower(header.substr(i, scheme_end - i));
  if (c.scheme.empty()) return std::nullopt;
  i = scheme_end == std::string::npos ? n : scheme_end;
  while (i < n) {
    skip(" \t,");
    const size_t eq = header.find('=', i);
    // A token without '=' starts another challenge: only the first is read.
    if (eq == std::string::npos || header.find_first_of(" \t,", i) < eq) break;
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(header.substr(i, eq - i)));
    i = eq + 1;
    std::string value;
    if (i < n && header[i] == '"') {
      for (++i; i < n && header[i] != '"'; ++i) {
        if (header[i] == '\\' && i + 1 < n) ++i;
        value += header[i];
      }
      ++i;  // The closing quote.
    } else {
      const size_t end = header.find(',', i);
      value = std::string(absl::StripAsciiWhitespace(header.substr(i, end - i)));
      i = end == std::string::npos ? n : end;
    }
    c.params[key] = value;
  }
  return c;
}

absl::StatusCode CodeForHttpStatus(int status) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 405:
      return absl::StatusCode::kUnimplemented;
    case 408:
    case 429:
      return absl::StatusCode::kUnavailable;
    case 409:
      return absl::StatusCode::kFailedPrecondition;
    case 413:
      return absl::StatusCode::kResourceExhausted;
    default:
      return status >= 500 ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnknown;
  }
}

// "HTTP 503: CODE: message" from the OCI error body (`{"errors": [{"code", "message"}]}`),
// else with an excerpt of the body.
std::string ResponseText(const http::Response& r) {
  std::string text = absl::StrCat("HTTP ", r.status);
  const json body = json::parse(r.body, nullptr, false);
  std::vector<std::string> errors;
  if (body.is_object()) {
    auto list = body.find("errors");
    if (list != body.end() && list->is_array()) {
      for (const json& e : *list) {
        const std::string code = StringField(e, "code");
        const std::string message = StringField(e, "message");
        if (code.empty() && message.empty()) continue;
        errors.push_back(code.empty()      ? message
                         : message.empty() ? code
                                           : absl::StrCat(code, ": ", message));
      }
    }
  }
  if (!errors.empty()) {
    absl::StrAppend(&text, ": ", Printable(absl::StrJoin(errors, "; ")));
  } else if (!r.body.empty()) {
    absl::StrAppend(&text, ": ", Printable(r.body, 200));
  }
  return text;
}

absl::Status LocalError(const std::string& what) {
  const int error = errno;
  const std::string text = absl::StrCat(what, ": ", std::strerror(error));
  return error == ENOSPC ? absl::ResourceExhaustedError(text) : absl::InternalError(text);
}

// Reads `path` in chunks, handing each to `chunk`; RESOURCE_EXHAUSTED past `limit` bytes.
// The number of bytes read.
absl::StatusOr<int64_t> ReadChunks(const std::string& path, int64_t limit,
                                   const std::function<void(std::string_view)>& chunk) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return LocalError(absl::StrCat("opening ", path));
  std::string buffer(kReadChunkBytes, '\0');
  int64_t size = 0;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    size += static_cast<int64_t>(n);
    if (size > limit) {
      std::fclose(file);
      return absl::ResourceExhaustedError(
          absl::StrCat(path, " is larger than the limit of ", limit, " bytes"));
    }
    chunk(std::string_view(buffer.data(), n));
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return LocalError(absl::StrCat("reading ", path));
  return size;
}

// The digest and size of a file, read in chunks.
absl::StatusOr<std::pair<std::string, int64_t>> HashFile(const std::string& path, int64_t limit) {
  Sha256 hash;
  absl::StatusOr<int64_t> size =
      ReadChunks(path, limit, [&hash](std::string_view data) { hash.Update(data); });
  if (!size.ok()) return size.status();
  return std::make_pair(hash.Digest(), *size);
}

absl::StatusOr<std::string> ReadFile(const std::string& path, int64_t limit) {
  std::string data;
  absl::StatusOr<int64_t> size =
      ReadChunks(path, limit, [&data](std::string_view chunk) { data.append(chunk); });
  if (!size.ok()) return size.status();
  return data;
}

// Where a blob's reply goes while it arrives: a temporary file (removed unless kept), hashed
// as it is written. Its first bytes are also kept, for the text of an error reply. Used on
// the HttpClient's thread only, by one request at a time.
class BlobSink {
 public:
  static absl::StatusOr<std::shared_ptr<BlobSink>> Create(const std::string& dir, int64_t limit) {
    std::string path = (std::filesystem::path(dir) / ".oci-pull-XXXXXX").string();
    const int fd = mkstemp(path.data());
    if (fd < 0) return LocalError(absl::StrCat("creating a temporary file in ", dir));
    std::FILE* file = fdopen(fd, "w+b");
    if (file == nullptr) {
      absl::Status status = LocalError(absl::StrCat("opening ", path));
      close(fd);
      unlink(path.c_str());
      return status;
    }
    return std::shared_ptr<BlobSink>(new BlobSink(std::move(path), file, limit));
  }

  ~BlobSink() { Discard(); }
  BlobSink(const BlobSink&) = delete;
  BlobSink& operator=(const BlobSink&) = delete;

  // Empties the file for another attempt.
  absl::Status Reset() {
    if (file_ == nullptr) return absl::InternalError(absl::StrCat(path_, " was closed"));
    hash_.Reset();
    bytes_ = 0;
    head_.clear();
    over_limit_ = false;
    write_error_ = absl::OkStatus();
    if (std::fflush(file_) != 0 || ftruncate(fileno(file_), 0) != 0) {
      return LocalError(absl::StrCat("truncating ", path_));
    }
    std::rewind(file_);
    return absl::OkStatus();
  }

  // The body's next piece; false stops the transfer.
  bool Write(std::string_view data) {
    if (file_ == nullptr) return false;
    if (bytes_ + static_cast<int64_t>(data.size()) > limit_) {
      over_limit_ = true;
      return false;
    }
    if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) {
      write_error_ = LocalError(absl::StrCat("writing ", path_));
      return false;
    }
    hash_.Update(data);
    if (head_.size() < kErrorBodyBytes) {
      head_.append(data.substr(0, kErrorBodyBytes - head_.size()));
    }
    bytes_ += static_cast<int64_t>(data.size());
    return true;
  }

  // Flushes and closes the file; the digest of what was written.
  absl::StatusOr<std::string> Finish() {
    if (file_ == nullptr) return absl::InternalError(absl::StrCat(path_, " was closed"));
    const bool failed = std::fclose(file_) != 0;
    file_ = nullptr;
    if (failed) return LocalError(absl::StrCat("writing ", path_));
    return hash_.Digest();
  }

  // Renames the file to `target` (after `Finish`); it is then no longer removed.
  absl::Status MoveTo(const std::string& target) {
    if (std::rename(path_.c_str(), target.c_str()) != 0) {
      return LocalError(absl::StrCat("renaming ", path_, " to ", target));
    }
    kept_ = true;
    return absl::OkStatus();
  }

  // Closes and removes the file now, unless it was moved (a request that still holds the
  // sink may outlive the operation).
  void Discard() {
    if (file_ != nullptr) std::fclose(file_);
    file_ = nullptr;
    if (!kept_) unlink(path_.c_str());
    kept_ = true;
  }

  int64_t bytes() const { return bytes_; }
  bool over_limit() const { return over_limit_; }
  const absl::Status& write_error() const { return write_error_; }
  const std::string& head() const { return head_; }

 private:
  BlobSink(std::string path, std::FILE* file, int64_t limit)
      : path_(std::move(path)), file_(file), limit_(limit) {}

  const std::string path_;
  std::FILE* file_;
  const int64_t limit_;
  Sha256 hash_;
  int64_t bytes_ = 0;
  std::string head_;
  bool over_limit_ = false;
  absl::Status write_error_;
  bool kept_ = false;
};

// A layer title that names a file in the destination directory itself.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

bool IsCompressed(const std::string& media_type) {
  return absl::StrContains(media_type, "gzip") || absl::StrContains(media_type, "zstd");
}

std::string NowRfc3339() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
}

}  // namespace

std::string Sha256Digest(const std::string& data) {
  Sha256 hash;
  hash.Update(data);
  return hash.Digest();
}

std::string Reference::ToString() const {
  std::string out = absl::StrCat(registry, "/", repository);
  if (!tag.empty()) absl::StrAppend(&out, ":", tag);
  if (!digest.empty()) absl::StrAppend(&out, "@", digest);
  return out;
}

absl::StatusOr<Reference> ParseReference(const std::string& image) {
  if (const std::string why = CheckImageReference(image); !why.empty()) {
    return absl::InvalidArgumentError(why);
  }
  Reference ref;
  std::string rest = image;
  if (const size_t at = rest.find('@'); at != std::string::npos) {
    ref.digest = rest.substr(at + 1);
    rest.erase(at);
    if (!IsSha256Digest(ref.digest)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image reference \"", image,
          "\": the digest must be sha256:<64 lower-case hex digits> (only sha256 is supported)"));
    }
  }
  const size_t last_slash = rest.rfind('/');
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos && (last_slash == std::string::npos || colon > last_slash)) {
    ref.tag = rest.substr(colon + 1);
    rest.erase(colon);
  }
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    const std::string first = rest.substr(0, slash);
    if (first.find_first_of(".:") != std::string::npos || first == "localhost") {
      ref.registry = first;
      ref.repository = rest.substr(slash + 1);
    }
  }
  if (ref.registry.empty()) {
    ref.registry = "docker.io";
    ref.repository = rest;
  }
  if (ref.registry == "index.docker.io") ref.registry = "docker.io";
  if (ref.registry == "docker.io" && !absl::StrContains(ref.repository, "/")) {
    ref.repository = absl::StrCat("library/", ref.repository);
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

absl::StatusOr<std::optional<Credentials>> CredentialsFromDockerConfig(
    const std::string& config_json, const std::string& registry) {
  const json config = json::parse(config_json, nullptr, false);
  if (!config.is_object()) {
    return absl::InvalidArgumentError("the docker config is not a JSON object");
  }
  auto auths = config.find("auths");
  if (auths == config.end()) return std::nullopt;
  if (!auths->is_object()) {
    return absl::InvalidArgumentError("the docker config's \"auths\" is not an object");
  }
  const bool docker_hub = registry == "docker.io";
  // An exact key first, then any key that names the same host.
  std::vector<std::string> exact = {registry, absl::StrCat("https://", registry),
                                    absl::StrCat("http://", registry)};
  if (docker_hub) exact.push_back("https://index.docker.io/v1/");
  auto entry = auths->end();
  for (const std::string& key : exact) {
    if ((entry = auths->find(key)) != auths->end()) break;
  }
  if (entry == auths->end()) {
    auto host_of = [](std::string key) {
      key = absl::AsciiStrToLower(key);
      for (const char* scheme : {"https://", "http://"}) {
        if (absl::StartsWith(key, scheme)) key.erase(0, std::strlen(scheme));
      }
      key.erase(std::min(key.find('/'), key.size()));
      return key;
    };
    const std::set<std::string> hosts =
        docker_hub ? std::set<std::string>{"docker.io", "index.docker.io", "registry-1.docker.io"}
                   : std::set<std::string>{absl::AsciiStrToLower(registry)};
    for (auto it = auths->begin(); it != auths->end(); ++it) {
      if (hosts.count(host_of(it.key())) > 0) {
        entry = it;
        break;
      }
    }
  }
  if (entry == auths->end()) return std::nullopt;
  const std::string key = entry.key();
  if (!entry->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the docker config's entry for \"", Printable(key), "\" is not an object"));
  }
  if (const std::string auth = StringField(*entry, "auth"); !auth.empty()) {
    const std::optional<std::string> decoded = Base64Decode(auth);
    const size_t colon = decoded.has_value() ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("the docker config's \"auth\" for \"",
                                                     Printable(key),
                                                     "\" is not base64 of user:password"));
    }
    return Credentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
  }
  Credentials creds{StringField(*entry, "username"), StringField(*entry, "password")};
  if (creds.username.empty() && creds.password.empty()) return std::nullopt;
  return creds;
}

// What every operation shares: its identity in messages, and registry requests with their
// authentication (a challenge answered once per request, bearer tokens shared through the
// client's cache). Its steps run one at a time, each from the previous one's completion, so
// its state needs no lock. Kept alive by the callbacks of its requests.
class RegistryClient::Operation : public std::enable_shared_from_this<RegistryClient::Operation> {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<http::Response>)>;
  // Runs before every attempt of a request: fills its body, or resets its body's sink.
  using Prepare = std::function<absl::Status(http::Request&)>;

  Operation(RegistryClient* client, Reference ref, const char* verb, const char* actions,
            std::optional<Credentials> creds)
      : client_(client),
        ref_(std::move(ref)),
        name_(absl::StrCat(verb, " ", ref_.ToString())),
        origin_(absl::AsciiStrToLower(absl::StrCat(
            client->options_.plain_http ? "http://" : "https://", ApiHost(ref_.registry)))),
        scope_(absl::StrCat("repository:", ref_.repository, ":", actions)),
        creds_(std::move(creds)) {
    token_key_ = absl::StrCat(
        origin_, " ", scope_, " ",
        creds_.has_value()
            ? Sha256Digest(absl::StrCat(creds_->username, std::string(1, '\0'), creds_->password))
            : "anonymous");
    if (creds_.has_value()) {
      secrets_.push_back(creds_->password);
      secrets_.push_back(Base64Encode(absl::StrCat(creds_->username, ":", creds_->password)));
    }
    if (std::string token = client_->CachedToken(token_key_); !token.empty()) {
      authorization_ = absl::StrCat("Bearer ", token);
      secrets_.push_back(std::move(token));
    }
  }
  virtual ~Operation() = default;

 protected:
  const ClientOptions& options() const { return client_->options_; }

  // `origin/v2/<repository><path>`.
  std::string RegistryUrl(const std::string& path) const {
    return absl::StrCat(origin_, "/v2/", ref_.repository, path);
  }

  http::Request NewRequest(std::string method, std::string url) const {
    http::Request request;
    request.method = std::move(method);
    request.url = std::move(url);
    request.timeout = options().timeout;
    request.ca_file = options().ca_file;
    return request;
  }

  // Sends `request` (Authorization added when it goes to the registry); a 401 is answered
  // once (a token fetched, or Basic credentials) and the request sent again.
  void Send(http::Request request, Prepare prepare, Done done) {
    Attempt(std::move(request), std::move(prepare), /*challenged=*/false, std::move(done));
  }

  // `<verb> <ref>: <step>: <detail>`, with every secret this operation knows masked.
  absl::Status Error(absl::StatusCode code, const std::string& step,
                     const std::string& detail) const {
    std::string message = step.empty() ? absl::StrCat(name_, ": ", detail)
                                       : absl::StrCat(name_, ": ", step, ": ", detail);
    for (const std::string& secret : secrets_) {
      if (secret.size() >= 4) message = absl::StrReplaceAll(message, {{secret, "<redacted>"}});
    }
    return absl::Status(code, message);
  }
  absl::Status Error(const absl::Status& cause, const std::string& step) const {
    return Error(cause.code(), step, std::string(cause.message()));
  }
  // An HTTP status that is not the step's success, classified.
  absl::Status ResponseError(const http::Response& r, const std::string& step) const {
    if (r.status == 401) {
      return Error(absl::StatusCode::kUnauthenticated, step,
                   absl::StrCat("the registry refused ",
                                creds_.has_value() ? "the credentials" : "anonymous access", " (",
                                ResponseText(r), ")"));
    }
    return Error(CodeForHttpStatus(r.status), step, ResponseText(r));
  }

  RegistryClient* const client_;
  const Reference ref_;
  // "pushing <ref>" or "pulling <ref>".
  const std::string name_;

 private:
  void Attempt(http::Request request, Prepare prepare, bool challenged, Done done) {
    http::Request attempt = request;
    if (prepare) {
      if (absl::Status status = prepare(attempt); !status.ok()) {
        done(status);
        return;
      }
    }
    // Credentials go to the registry's own origin only (never to a redirect's storage host).
    const bool to_registry = Origin(attempt.url) == origin_;
    if (to_registry && !authorization_.empty()) {
      attempt.headers.emplace_back("Authorization", authorization_);
    }
    client_->http_->Send(
        std::move(attempt), [self = shared_from_this(), request = std::move(request),
                             prepare = std::move(prepare), challenged, to_registry,
                             done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
          if (!r.ok() || r->status != 401 || !to_registry || challenged) {
            done(std::move(r));
            return;
          }
          const http::Response refused = *std::move(r);
          self->AnswerChallenge(refused,
                                [self, request = std::move(request), prepare = std::move(prepare),
                                 done = std::move(done)](absl::Status status) mutable {
                                  if (!status.ok()) {
                                    done(std::move(status));
                                    return;
                                  }
                                  self->Attempt(std::move(request), std::move(prepare),
                                                /*challenged=*/true, std::move(done));
                                });
        });
  }

  // Sets `authorization_` for the registry's challenge in `refused`.
  void AnswerChallenge(const http::Response& refused, absl::AnyInvocable<void(absl::Status)> next) {
    std::optional<Challenge> bearer, basic;
    for (auto [it, end] = refused.headers.equal_range("www-authenticate"); it != end; ++it) {
      std::optional<Challenge> c = ParseChallenge(it->second);
      if (!c.has_value()) continue;
      if (c->scheme == "bearer" && !bearer.has_value()) {
        bearer = std::move(c);
      } else if (c->scheme == "basic" && !basic.has_value()) {
        basic = std::move(c);
      }
    }
    if (bearer.has_value()) {
      if (absl::StartsWith(authorization_, "Bearer ")) {
        client_->DropToken(token_key_, authorization_.substr(sizeof("Bearer ") - 1));
      }
      FetchToken(*bearer, std::move(next));
      return;
    }
    if (basic.has_value()) {
      if (!creds_.has_value()) {
        next(absl::UnauthenticatedError(
            "the registry wants credentials (a Basic challenge) and none were given"));
        return;
      }
      std::string header = BasicAuthorization(*creds_);
      if (authorization_ == header) {
        next(absl::UnauthenticatedError("the registry refused the credentials (HTTP 401)"));
        return;
      }
      authorization_ = std::move(header);
      next(absl::OkStatus());
      return;
    }
    next(absl::UnauthenticatedError(
        absl::StrCat("the registry answered 401 without a Bearer or Basic challenge (",
                     ResponseText(refused), ")")));
  }

  // A token from the challenge's realm (Docker's token protocol), cached for this scope.
  void FetchToken(const Challenge& challenge, absl::AnyInvocable<void(absl::Status)> next) {
    auto param = [&](const char* key) {
      auto it = challenge.params.find(key);
      return it == challenge.params.end() ? std::string() : it->second;
    };
    const std::string realm = param("realm");
    const std::string step = absl::StrCat("getting a token from ", Printable(WithoutQuery(realm)));
    const std::string lower = absl::AsciiStrToLower(realm);
    if (!absl::StartsWith(lower, "https://") &&
        !(options().plain_http && absl::StartsWith(lower, "http://"))) {
      next(absl::UnauthenticatedError(
          absl::StrCat(step, ": the registry's token service is not an https URL")));
      return;
    }
    std::vector<std::pair<std::string, std::string>> query;
    if (const std::string service = param("service"); !service.empty()) {
      query.emplace_back("service", service);
    }
    query.emplace_back("scope", scope_);
    if (const std::string scope = param("scope"); !scope.empty() && scope != scope_) {
      query.emplace_back("scope", scope);
    }
    http::Request request = NewRequest("GET", WithQuery(realm, http::FormEncode(query)));
    request.max_response_bytes = 1 << 20;
    if (creds_.has_value())
      request.headers.emplace_back("Authorization", BasicAuthorization(*creds_));
    client_->http_->Send(
        std::move(request), [self = shared_from_this(), step,
                             next = std::move(next)](absl::StatusOr<http::Response> r) mutable {
          if (!r.ok()) {
            next(absl::Status(r.status().code(), absl::StrCat(step, ": ", r.status().message())));
            return;
          }
          if (r->status == 401 || r->status == 403) {
            next(absl::UnauthenticatedError(absl::StrCat(
                step, ": the token service refused ",
                self->creds_.has_value()
                    ? absl::StrCat("the credentials of \"", Printable(self->creds_->username), "\"")
                    : std::string("anonymous access"),
                " (", ResponseText(*r), ")")));
            return;
          }
          if (r->status != 200) {
            next(absl::Status(CodeForHttpStatus(r->status),
                              absl::StrCat(step, ": ", ResponseText(*r))));
            return;
          }
          const json body = json::parse(r->body, nullptr, false);
          std::string token = StringField(body, "token");
          if (token.empty()) token = StringField(body, "access_token");
          if (token.empty()) {
            next(absl::UnauthenticatedError(
                absl::StrCat(step, ": the token service's answer has no token")));
            return;
          }
          self->secrets_.push_back(token);
          self->authorization_ = absl::StrCat("Bearer ", token);
          self->client_->CacheToken(self->token_key_, std::move(token));
          next(absl::OkStatus());
        });
  }

  // "https://host[:port]" of the registry's API, lower-cased.
  const std::string origin_;
  const std::string scope_;
  const std::optional<Credentials> creds_;
  // The token cache's key: registry, scope and (a digest of) the credentials.
  std::string token_key_;
  // The Authorization header of registry requests ("" until a challenge asks for one).
  std::string authorization_;
  // Masked in every error message.
  std::vector<std::string> secrets_;
};

class RegistryClient::PushOperation : public RegistryClient::Operation {
 public:
  PushOperation(RegistryClient* client, Reference ref, std::vector<std::string> files,
                std::map<std::string, std::string> annotations, std::optional<Credentials> creds,
                PushDone done)
      : Operation(client, std::move(ref), "pushing", "pull,push", std::move(creds)),
        files_(std::move(files)),
        annotations_(std::move(annotations)),
        done_(std::move(done)) {}

  void Start() {
    if (ref_.tag.empty()) {
      return Finish(Error(absl::StatusCode::kInvalidArgument, "",
                          "a push needs a tag (the reference has a digest only)"));
    }
    if (files_.empty()) {
      return Finish(Error(absl::StatusCode::kInvalidArgument, "", "no files to push"));
    }
    blobs_.push_back(Blob{"", "{}", kEmptyConfigMediaType, "", Sha256Digest("{}"), 2});
    std::set<std::string> titles;
    for (const std::string& file : files_) {
      const std::filesystem::path path(file);
      std::error_code ec;
      if (!path.is_absolute() || !std::filesystem::is_regular_file(path, ec)) {
        return Finish(Error(absl::StatusCode::kInvalidArgument, "",
                            absl::StrCat(file, " is not the absolute path of a regular file")));
      }
      const std::string title = path.filename().string();
      if (!titles.insert(title).second) {
        return Finish(Error(absl::StatusCode::kInvalidArgument, "",
                            absl::StrCat("two files are named ", title,
                                         " (a layer's title is its file's base name)")));
      }
      blobs_.push_back(
          Blob{file, "", absl::EndsWith(title, ".tar") ? kTarLayerMediaType : kFileLayerMediaType,
               title, "", 0});
    }
    UploadBlob(0);
  }

 private:
  struct Blob {
    // The file, or "" for a blob held in `data` (the config).
    std::string path;
    std::string data;
    std::string media_type;
    std::string title;
    std::string digest;
    int64_t size = 0;
  };

  std::shared_ptr<PushOperation> self() {
    return std::static_pointer_cast<PushOperation>(shared_from_this());
  }

  // Blob `i` and the ones after it, then the manifest.
  void UploadBlob(size_t i) {
    if (i == blobs_.size()) return PutManifest();
    Blob& blob = blobs_[i];
    if (!blob.path.empty()) {
      absl::StatusOr<std::pair<std::string, int64_t>> hashed =
          HashFile(blob.path, options().max_blob_bytes);
      if (!hashed.ok()) return Finish(Error(hashed.status(), absl::StrCat("hashing ", blob.path)));
      std::tie(blob.digest, blob.size) = *std::move(hashed);
    }
    const std::string step = absl::StrCat("uploading blob ", blob.digest);
    Send(NewRequest("HEAD", RegistryUrl(absl::StrCat("/blobs/", blob.digest))), nullptr,
         [self = self(), i, step](absl::StatusOr<http::Response> r) {
           if (!r.ok()) return self->Finish(self->Error(r.status(), step));
           if (r->status == 200) return self->UploadBlob(i + 1);  // The repository has it.
           if (r->status != 404) return self->Finish(self->ResponseError(*r, step));
           self->StartUpload(i);
         });
  }

  void StartUpload(size_t i) {
    const std::string step = absl::StrCat("uploading blob ", blobs_[i].digest);
    const std::string url = RegistryUrl("/blobs/uploads/");
    Send(NewRequest("POST", url), nullptr,
         [self = self(), i, step, url](absl::StatusOr<http::Response> r) {
           if (!r.ok()) return self->Finish(self->Error(r.status(), step));
           if (r->status != 202) return self->Finish(self->ResponseError(*r, step));
           const std::string location = r->Header("location");
           if (location.empty()) {
             return self->Finish(self->Error(absl::StatusCode::kUnknown, step,
                                             "the registry started an upload without a Location"));
           }
           self->PutBlob(i, ResolveUrl(url, location));
         });
  }

  // One monolithic PUT of the whole blob to the upload session at `location`.
  void PutBlob(size_t i, const std::string& location) {
    const Blob& blob = blobs_[i];
    const std::string step = absl::StrCat("uploading blob ", blob.digest);
    http::Request request = NewRequest(
        "PUT", WithQuery(location, absl::StrCat("digest=", http::UrlEncode(blob.digest))));
    request.headers.emplace_back("Content-Type", "application/octet-stream");
    Prepare prepare;
    if (blob.path.empty()) {
      request.body = blob.data;
    } else {
      prepare = [path = blob.path, digest = blob.digest,
                 limit = options().max_blob_bytes](http::Request& attempt) -> absl::Status {
        absl::StatusOr<std::string> data = ReadFile(path, limit);
        if (!data.ok()) return data.status();
        if (Sha256Digest(*data) != digest) {
          return absl::FailedPreconditionError(absl::StrCat(path, " changed while it was pushed"));
        }
        attempt.body = *std::move(data);
        return absl::OkStatus();
      };
    }
    Send(std::move(request), std::move(prepare),
         [self = self(), i, step](absl::StatusOr<http::Response> r) {
           if (!r.ok()) return self->Finish(self->Error(r.status(), step));
           if (r->status < 200 || r->status > 299) {
             return self->Finish(self->ResponseError(*r, step));
           }
           self->UploadBlob(i + 1);
         });
  }

  void PutManifest() {
    auto descriptor = [](const Blob& blob) {
      json d = {{"mediaType", blob.media_type}, {"digest", blob.digest}, {"size", blob.size}};
      if (!blob.title.empty()) d["annotations"] = {{kTitleAnnotation, blob.title}};
      return d;
    };
    json layers = json::array();
    for (size_t i = 1; i < blobs_.size(); ++i) layers.push_back(descriptor(blobs_[i]));
    json annotations = json::object();
    for (const auto& [key, value] : annotations_) annotations[key] = value;
    if (!annotations.contains(kCreatedAnnotation)) annotations[kCreatedAnnotation] = NowRfc3339();
    const json manifest = {{"schemaVersion", 2},
                           {"mediaType", kManifestMediaType},
                           {"config", descriptor(blobs_[0])},
                           {"layers", layers},
                           {"annotations", annotations}};
    std::string body = Dump(manifest);
    const std::string step = "putting the manifest";
    if (static_cast<int64_t>(body.size()) > options().max_manifest_bytes) {
      return Finish(
          Error(absl::StatusCode::kResourceExhausted, step,
                absl::StrCat("the manifest's ", body.size(), " bytes exceed the limit of ",
                             options().max_manifest_bytes)));
    }
    const std::string digest = Sha256Digest(body);
    http::Request request = NewRequest("PUT", RegistryUrl(absl::StrCat("/manifests/", ref_.tag)));
    request.headers.emplace_back("Content-Type", kManifestMediaType);
    request.body = std::move(body);
    Send(std::move(request), nullptr,
         [self = self(), step, digest](absl::StatusOr<http::Response> r) {
           if (!r.ok()) return self->Finish(self->Error(r.status(), step));
           if (r->status < 200 || r->status > 299) {
             return self->Finish(self->ResponseError(*r, step));
           }
           const std::string stored = r->Header("docker-content-digest");
           if (!stored.empty() && stored != digest) {
             return self->Finish(
                 self->Error(absl::StatusCode::kDataLoss, step,
                             absl::StrCat("the registry stored the manifest as ", Printable(stored),
                                          "; the bytes sent are ", digest)));
           }
           spdlog::info("{} done: {} layer(s), manifest {}", self->name_, self->blobs_.size() - 1,
                        digest);
           self->Finish(digest);
         });
  }

  void Finish(absl::StatusOr<std::string> result) {
    if (!done_) return;
    PushDone done = std::move(done_);
    done_ = nullptr;
    done(std::move(result));
  }

  const std::vector<std::string> files_;
  const std::map<std::string, std::string> annotations_;
  // The config, then one per file.
  std::vector<Blob> blobs_;
  PushDone done_;
};

class RegistryClient::PullOperation : public RegistryClient::Operation {
 public:
  PullOperation(RegistryClient* client, Reference ref, std::string dest_dir,
                std::optional<Credentials> creds, PullDone done)
      : Operation(client, std::move(ref), "pulling", "pull", std::move(creds)),
        dest_dir_(std::move(dest_dir)),
        done_(std::move(done)) {}

  void Start() {
    if (ref_.digest.empty()) {
      FetchManifest(ref_.tag, "", /*from_index=*/false);
    } else {
      FetchManifest(ref_.digest, ref_.digest, /*from_index=*/false);
    }
  }

 private:
  struct Layer {
    std::string digest;
    int64_t size = 0;
    // The file it becomes, in `dest_dir_`.
    std::string name;
  };

  std::shared_ptr<PullOperation> self() {
    return std::static_pointer_cast<PullOperation>(shared_from_this());
  }

  // The manifest `reference` (a tag or a digest); `expected_digest` is checked when set.
  void FetchManifest(const std::string& reference, const std::string& expected_digest,
                     bool from_index) {
    const std::string step =
        from_index ? absl::StrCat("fetching the manifest ", reference, " of the index")
                   : std::string("fetching the manifest");
    http::Request request = NewRequest("GET", RegistryUrl(absl::StrCat("/manifests/", reference)));
    request.headers.emplace_back("Accept", kManifestAccept);
    request.max_response_bytes = options().max_manifest_bytes;
    Send(std::move(request), nullptr,
         [self = self(), step, reference, expected_digest,
          from_index](absl::StatusOr<http::Response> r) {
           if (!r.ok()) return self->Finish(self->Error(r.status(), step));
           if (r->status == 404) {
             return self->Finish(
                 self->Error(absl::StatusCode::kNotFound, step,
                             absl::StrCat(self->ref_.ToString(), ": manifest unknown (",
                                          ResponseText(*r), ")")));
           }
           if (r->status != 200) return self->Finish(self->ResponseError(*r, step));
           self->OnManifest(*r, step, expected_digest, from_index);
         });
  }

  void OnManifest(const http::Response& r, const std::string& step,
                  const std::string& expected_digest, bool from_index) {
    if (static_cast<int64_t>(r.body.size()) > options().max_manifest_bytes) {
      return Finish(
          Error(absl::StatusCode::kResourceExhausted, step,
                absl::StrCat("the manifest's ", r.body.size(), " bytes exceed the limit of ",
                             options().max_manifest_bytes)));
    }
    const std::string digest = Sha256Digest(r.body);
    if (!expected_digest.empty() && digest != expected_digest) {
      return Finish(Error(absl::StatusCode::kDataLoss, step,
                          absl::StrCat("the manifest ", expected_digest, " of ", ref_.ToString(),
                                       " does not match its digest; got ", digest)));
    }
    const std::string stated = r.Header("docker-content-digest");
    if (absl::StartsWith(stated, "sha256:") && stated != digest) {
      return Finish(Error(absl::StatusCode::kDataLoss, step,
                          absl::StrCat("the registry says the manifest is ", Printable(stated),
                                       " but its bytes are ", digest)));
    }
    const json manifest = json::parse(r.body, nullptr, false);
    if (!manifest.is_object()) {
      return Finish(
          Error(absl::StatusCode::kInvalidArgument, step, "the manifest is not a JSON object"));
    }
    auto version = manifest.find("schemaVersion");
    if (version == manifest.end() || !version->is_number_integer() ||
        version->get<int64_t>() != 2) {
      return Finish(Error(absl::StatusCode::kUnimplemented, step,
                          "only schemaVersion 2 manifests are supported"));
    }
    std::string media_type = StringField(manifest, "mediaType");
    if (media_type.empty()) {
      media_type = std::string(absl::StripAsciiWhitespace(
          r.Header("content-type").substr(0, r.Header("content-type").find(';'))));
    }
    const bool is_index = media_type == kIndexMediaType ||
                          media_type == kDockerManifestListMediaType ||
                          (media_type.empty() && manifest.contains("manifests"));
    if (is_index) {
      if (from_index) {
        return Finish(Error(absl::StatusCode::kUnimplemented, step,
                            "an index inside an index is not supported"));
      }
      return PickFromIndex(manifest, step);
    }
    if (!media_type.empty() && media_type != kManifestMediaType &&
        media_type != kDockerManifestMediaType) {
      return Finish(Error(absl::StatusCode::kUnimplemented, step,
                          absl::StrCat("media type \"", Printable(media_type),
                                       "\" is not a manifest this client reads")));
    }
    Plan(manifest, "reading the manifest");
  }

  // The linux/amd64 entry of an index, else its first.
  void PickFromIndex(const json& index, const std::string& step) {
    auto entries = index.find("manifests");
    if (entries == index.end() || !entries->is_array() || entries->empty()) {
      return Finish(
          Error(absl::StatusCode::kInvalidArgument, step, "the index lists no manifests"));
    }
    const json* chosen = &(*entries)[0];
    for (const json& entry : *entries) {
      auto platform = entry.is_object() ? entry.find("platform") : entry.end();
      if (platform != entry.end() && StringField(*platform, "os") == "linux" &&
          StringField(*platform, "architecture") == "amd64") {
        chosen = &entry;
        break;
      }
    }
    const std::string digest = StringField(*chosen, "digest");
    if (!IsSha256Digest(digest)) {
      return Finish(Error(absl::StatusCode::kInvalidArgument, step,
                          absl::StrCat("the index's entry has digest \"", Printable(digest),
                                       "\" (want sha256:<64 hex>)")));
    }
    FetchManifest(digest, digest, /*from_index=*/true);
  }

  // Checks every layer before anything is written, then fetches them.
  void Plan(const json& manifest, const std::string& step) {
    auto layers = manifest.find("layers");
    if (layers == manifest.end() || !layers->is_array()) {
      return Finish(Error(absl::StatusCode::kInvalidArgument, step, "the manifest has no layers"));
    }
    std::map<std::string, std::string> digest_of_name;
    for (size_t i = 0; i < layers->size(); ++i) {
      const json& l = (*layers)[i];
      const std::string where = absl::StrCat("layer ", i);
      Layer layer;
      layer.digest = StringField(l, "digest");
      if (!IsSha256Digest(layer.digest)) {
        return Finish(Error(absl::StatusCode::kInvalidArgument, step,
                            absl::StrCat(where, " has digest \"", Printable(layer.digest),
                                         "\" (want sha256:<64 hex>)")));
      }
      auto size = l.find("size");
      if (size == l.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
        return Finish(Error(absl::StatusCode::kInvalidArgument, step,
                            absl::StrCat(where, " has no valid size")));
      }
      layer.size = size->get<int64_t>();
      if (layer.size > options().max_blob_bytes) {
        return Finish(Error(absl::StatusCode::kResourceExhausted, step,
                            absl::StrCat("blob ", layer.digest, " has ", layer.size,
                                         " bytes, over the limit of ", options().max_blob_bytes)));
      }
      auto annotations = l.find("annotations");
      const std::string title =
          annotations != l.end() ? StringField(*annotations, kTitleAnnotation) : "";
      const std::string media_type = StringField(l, "mediaType");
      if (!title.empty()) {
        if (!IsPlainFileName(title)) {
          return Finish(Error(
              absl::StatusCode::kInvalidArgument, step,
              absl::StrCat(where, "'s title \"", Printable(title), "\" is not a plain file name")));
        }
        layer.name = title;
      } else if (IsCompressed(media_type)) {
        return Finish(Error(absl::StatusCode::kUnimplemented, step,
                            absl::StrCat(where, " (", Printable(media_type),
                                         ") has no title and is compressed; extracting layers "
                                         "is not supported yet")));
      } else {
        // An untitled layer is kept whole, named by its digest (not extracted yet).
        layer.name = layer.digest.substr(sizeof("sha256:") - 1);
      }
      auto [it, added] = digest_of_name.emplace(layer.name, layer.digest);
      if (!added) {
        if (it->second == layer.digest) continue;  // The same blob twice.
        return Finish(Error(absl::StatusCode::kInvalidArgument, step,
                            absl::StrCat("two layers are titled \"", Printable(layer.name), "\"")));
      }
      layers_.push_back(std::move(layer));
    }
    std::error_code ec;
    std::filesystem::create_directories(dest_dir_, ec);
    if (ec) {
      return Finish(Error(absl::StatusCode::kInternal, "",
                          absl::StrCat("creating ", dest_dir_, ": ", ec.message())));
    }
    FetchLayer(0, "", 0);
  }

  // Layer `i` from `url` ("" for the registry's blob URL), `redirects` in.
  void FetchLayer(size_t i, std::string url, int redirects) {
    if (i == layers_.size()) {
      spdlog::info("{} done: {} file(s) in {}", name_, written_.size(), dest_dir_);
      return Finish(written_);
    }
    const Layer& layer = layers_[i];
    const std::string step = absl::StrCat("fetching blob ", layer.digest);
    if (url.empty()) url = RegistryUrl(absl::StrCat("/blobs/", layer.digest));
    if (sink_ == nullptr) {
      absl::StatusOr<std::shared_ptr<BlobSink>> sink =
          BlobSink::Create(dest_dir_, std::max(layer.size, kBlobSlackBytes));
      if (!sink.ok()) return Finish(Error(sink.status(), step));
      sink_ = *std::move(sink);
    }
    http::Request request = NewRequest("GET", url);
    request.on_body_data = [sink = sink_](std::string_view data) { return sink->Write(data); };
    Send(
        std::move(request), [sink = sink_](http::Request&) { return sink->Reset(); },
        [self = self(), i, url, redirects, step](absl::StatusOr<http::Response> r) {
          self->OnLayer(i, url, redirects, step, std::move(r));
        });
  }

  void OnLayer(size_t i, const std::string& url, int redirects, const std::string& step,
               absl::StatusOr<http::Response> r) {
    const Layer& layer = layers_[i];
    if (!sink_->write_error().ok()) return Finish(Error(sink_->write_error(), step));
    if (sink_->over_limit()) {
      return Finish(
          Error(absl::StatusCode::kDataLoss, step,
                absl::StrCat("blob ", layer.digest, " of ", ref_.ToString(), " is longer than the ",
                             layer.size, " bytes its manifest says")));
    }
    if (!r.ok()) return Finish(Error(r.status(), step));
    const int status = r->status;
    if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
      const std::string location = r->Header("location");
      if (location.empty() || redirects >= kMaxRedirects) {
        return Finish(Error(absl::StatusCode::kUnavailable, step,
                            location.empty() ? absl::StrCat("HTTP ", status, " without a Location")
                                             : std::string("too many redirects")));
      }
      return FetchLayer(i, ResolveUrl(url, location), redirects + 1);
    }
    if (status != 200) {
      http::Response failed = *std::move(r);
      failed.body = sink_->head();
      return Finish(ResponseError(failed, step));
    }
    const int64_t bytes = sink_->bytes();
    absl::StatusOr<std::string> digest = sink_->Finish();
    if (!digest.ok()) return Finish(Error(digest.status(), step));
    if (bytes != layer.size) {
      return Finish(Error(absl::StatusCode::kDataLoss, step,
                          absl::StrCat("blob ", layer.digest, " of ", ref_.ToString(), " has ",
                                       bytes, " bytes; its manifest says ", layer.size)));
    }
    if (*digest != layer.digest) {
      return Finish(Error(absl::StatusCode::kDataLoss, step,
                          absl::StrCat("blob ", layer.digest, " of ", ref_.ToString(),
                                       " does not match its digest; got ", *digest)));
    }
    const std::string target = (std::filesystem::path(dest_dir_) / layer.name).string();
    if (absl::Status moved = sink_->MoveTo(target); !moved.ok()) {
      return Finish(Error(moved, step));
    }
    written_.push_back(target);
    sink_.reset();
    FetchLayer(i + 1, "", 0);
  }

  void Finish(absl::StatusOr<std::vector<std::string>> result) {
    if (!done_) return;
    if (sink_ != nullptr) sink_->Discard();  // A partial blob.
    sink_.reset();
    if (!result.ok()) {
      for (const std::string& path : written_) unlink(path.c_str());
      written_.clear();
    }
    PullDone done = std::move(done_);
    done_ = nullptr;
    done(std::move(result));
  }

  const std::string dest_dir_;
  std::vector<Layer> layers_;
  std::vector<std::string> written_;
  // The temporary file of the layer being fetched.
  std::shared_ptr<BlobSink> sink_;
  PullDone done_;
};

RegistryClient::RegistryClient(http::HttpClient* http, ClientOptions options)
    : http_(http), options_(std::move(options)) {}

void RegistryClient::Push(const Reference& ref, const std::vector<std::string>& files,
                          const std::map<std::string, std::string>& annotations,
                          std::optional<Credentials> creds, PushDone done) {
  auto operation = std::make_shared<PushOperation>(this, ref, files, annotations, std::move(creds),
                                                   std::move(done));
  operation->Start();
}

void RegistryClient::Pull(const Reference& ref, const std::string& dest_dir,
                          std::optional<Credentials> creds, PullDone done) {
  auto operation =
      std::make_shared<PullOperation>(this, ref, dest_dir, std::move(creds), std::move(done));
  operation->Start();
}

std::string RegistryClient::CachedToken(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = tokens_.find(key);
  return it == tokens_.end() ? "" : it->second;
}

void RegistryClient::CacheToken(const std::string& key, std::string token) {
  absl::MutexLock lock(&mu_);
  tokens_[key] = std::move(token);
}

void RegistryClient::DropToken(const std::string& key, const std::string& token) {
  absl::MutexLock lock(&mu_);
  auto it = tokens_.find(key);
  if (it != tokens_.end() && it->second == token) tokens_.erase(it);
}

}  // namespace kaito::agent::oci
