// An OCI distribution (registry v2 API) client for the node agent: it pushes a tuning job's
// output adapter as an OCI artifact and pulls artifacts (adapters, tuning input images) into a
// directory, verifying the sha256 digest of every blob it reads and of every manifest a digest
// names (or the registry's Docker-Content-Digest states).
//
// Artifacts follow ORAS's convention (Kaito pushes with `oras push`), so that `oras pull`
// restores what this client pushes and the other way round: every file is one layer, of media
// type `application/vnd.oci.image.layer.v1.tar` when its name ends in `.tar` and
// `application/octet-stream` otherwise, whose `org.opencontainers.image.title` annotation is
// the file's base name; the config is the empty descriptor (`{}`, media type
// `application/vnd.oci.empty.v1+json`).
//
// Asynchronous: every operation returns at once and reports through its `done`, which runs
// exactly once, on the HttpClient's thread (or inline, on the caller's, when the operation
// fails before its first request or the HttpClient answers inline). No thread waits for the
// network. Local file IO (hashing and reading the files to push, writing pulled blobs) is done
// inline by the step that needs it, on the thread that runs that step (the caller's for the
// first, the HttpClient's after): a caller that must not wait on disk calls from a worker.
//
// Error codes, as retry policy (every message names the operation, the reference and the
// step, e.g. "pushing 127.0.0.1:5000/x:1: uploading blob sha256:...: ..."; none ever carries
// a password or a token):
//   INVALID_ARGUMENT   a bad reference, file list or docker config; an artifact this client
//                      will not write (a layer title that is not a plain file name, two
//                      layers of one title, a malformed manifest);
//   UNAUTHENTICATED    the registry (or its token service) refused the credentials, or wants
//                      credentials that were not given;
//   PERMISSION_DENIED  the registry answered 403;
//   NOT_FOUND          the manifest (or a blob) does not exist;
//   DATA_LOSS          a manifest or blob whose bytes do not match its digest or size;
//   RESOURCE_EXHAUSTED a manifest or blob over `ClientOptions`' limits;
//   UNIMPLEMENTED      what this client does not read yet (schema 1 manifests, untitled
//                      compressed layers);
//   UNAVAILABLE        the registry answered 429 or 5xx (its OCI error code and message are in
//                      the status message), or the connection failed;
//   FAILED_PRECONDITION a file changed while it was pushed;
//   INTERNAL           the local file system failed (RESOURCE_EXHAUSTED when it is full);
//   otherwise          the HttpClient's code for a transport error (DEADLINE_EXCEEDED, ...).
// The caller retries UNAVAILABLE and DEADLINE_EXCEEDED with backoff; the others are terminal.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/http/http_client.h"

namespace kaito::agent::oci {

inline constexpr char kManifestMediaType[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kIndexMediaType[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kDockerManifestMediaType[] =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerManifestListMediaType[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kEmptyConfigMediaType[] = "application/vnd.oci.empty.v1+json";
inline constexpr char kTarLayerMediaType[] = "application/vnd.oci.image.layer.v1.tar";
inline constexpr char kFileLayerMediaType[] = "application/octet-stream";
// The file name a layer is restored to (ORAS's convention).
inline constexpr char kTitleAnnotation[] = "org.opencontainers.image.title";
// When the artifact was pushed, RFC 3339 in UTC.
inline constexpr char kCreatedAnnotation[] = "org.opencontainers.image.created";

// An image or artifact reference, as Docker reads one.
struct Reference {
  // As written, or "docker.io" when the reference names none ("index.docker.io" is read as
  // "docker.io"). Its API is then served by "registry-1.docker.io".
  std::string registry;
  // With "library/" before a one-component name on docker.io.
  std::string repository;
  // "latest" when the reference has neither a tag nor a digest; "" with a digest only.
  std::string tag;
  // "sha256:<64 lower-case hex>", or "".
  std::string digest;

  // `registry/repository[:tag][@digest]`.
  std::string ToString() const;
};

// Docker's rules: the first path component is a registry when it holds '.' or ':' or is
// "localhost" (and more components follow); else the registry is docker.io. The grammar is
// `CheckImageReference`'s (common/image_reference.h); digests must be sha256. INVALID_ARGUMENT
// says what is wrong.
absl::StatusOr<Reference> ParseReference(const std::string& image);

struct Credentials {
  std::string username;
  std::string password;
};

// The credentials for `registry` (as in `Reference::registry`) in a docker config file
// (`~/.docker/config.json`, or a Kubernetes dockerconfigjson secret):
// `{"auths": {KEY: {"auth": base64("user:pass")} | {"username": ..., "password": ...}}}`.
// A KEY matches when it is the registry with or without an `http://` or `https://` scheme and
// a path (so "https://index.docker.io/v1/" matches docker.io); an exact key wins. nullopt when
// no entry matches or the entry has neither form (an `identitytoken` is not supported).
// INVALID_ARGUMENT for a config that is not JSON or an `auth` that is not base64 of
// `user:pass` (the message never quotes the value).
absl::StatusOr<std::optional<Credentials>> CredentialsFromDockerConfig(
    const std::string& config_json, const std::string& registry);

// "sha256:<hex>" of `data`.
std::string Sha256Digest(const std::string& data);

struct ClientOptions {
  // http:// instead of https:// (a local test registry). Also allows a token service that is
  // not https.
  bool plain_http = false;
  // PEM bundle of the CAs trusted for https (empty: the system's).
  std::string ca_file;
  // Of each HTTP request, a whole blob's transfer included.
  absl::Duration timeout = absl::Minutes(10);
  int64_t max_manifest_bytes = 4 << 20;
  int64_t max_blob_bytes = 64ll << 30;
};

// Thread-safe: operations may start on any thread and run concurrently. Each operation's
// state belongs to that operation alone (its steps run one after the other, each started by
// the previous one's completion); the only shared state is the cache of bearer tokens, keyed
// by registry, scope and credentials, behind `mu_` (never held across a request). A cached
// token the registry refuses is fetched again, once. Credentials and tokens go only to the
// registry's own origin and its token service: never to a redirect's or an upload Location's
// other host. The token service must be https unless `plain_http`.
//
// `http` and the client must outlive every operation in flight (destroying the HttpClient
// first completes them, with CANCELLED).
class RegistryClient {
 public:
  using PushDone = absl::AnyInvocable<void(absl::StatusOr<std::string>)>;
  using PullDone = absl::AnyInvocable<void(absl::StatusOr<std::vector<std::string>>)>;

  RegistryClient(http::HttpClient* http, ClientOptions options);
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // Pushes `files` (absolute paths of regular files with distinct base names) as the layers of
  // one artifact and tags its manifest `ref.tag` (a reference with a digest only is refused).
  // The manifest's annotations are `annotations` plus `org.opencontainers.image.created` (now,
  // unless `annotations` has it). Blobs the repository already has are not uploaded again;
  // each file is read into memory once to upload it (up to `max_blob_bytes`). `done` gets the
  // manifest's digest (the sha256 of the exact bytes sent).
  void Push(const Reference& ref, const std::vector<std::string>& files,
            const std::map<std::string, std::string>& annotations, std::optional<Credentials> creds,
            PushDone done);

  // Pulls the artifact `ref` (an OCI or Docker v2 manifest; from an index, the linux/amd64
  // entry or else the first) into `dest_dir` (created if missing): each layer is streamed to a
  // temporary file in `dest_dir` while it is hashed, verified, then renamed to its title, or,
  // for an untitled layer, to its digest's hex (untitled tar layers are not extracted yet;
  // untitled compressed layers are UNIMPLEMENTED). An existing file of that name is replaced.
  // Every title is checked before anything is written: one that is not a plain file name
  // ('/', ".", "..") is INVALID_ARGUMENT. On failure the files this call wrote are removed.
  // `done` gets the paths written, in layer order.
  void Pull(const Reference& ref, const std::string& dest_dir, std::optional<Credentials> creds,
            PullDone done);

 private:
  class Operation;
  class PushOperation;
  class PullOperation;

  // The cached bearer token for `key`, or "".
  std::string CachedToken(const std::string& key);
  void CacheToken(const std::string& key, std::string token);
  // Forgets `token` under `key` if it is still the one cached.
  void DropToken(const std::string& key, const std::string& token);

  http::HttpClient* const http_;
  const ClientOptions options_;
  absl::Mutex mu_;
  std::map<std::string, std::string> tokens_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::agent::oci
