// The OCI registry client against a fake registry served by `http::FakeHttpClient`: reference
// and docker config parsing, push then pull byte for byte (ORAS's layout), digest checks,
// Bearer and Basic authentication, redirects, indexes, and how failures are classified. Then
// the same round trip against a real registry (Debian's docker-registry) over libcurl.
#include "agent/oci/registry_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/http/fake_http_client.h"
#include "support/container_engine.h"
#include "support/temp_dir.h"

namespace kaito::agent::oci {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr char kUser[] = "alice";
constexpr char kPassword[] = "s3cret-Pa55";
// base64("alice:s3cret-Pa55"), computed outside this code.
constexpr char kAliceBasic[] = "Basic YWxpY2U6czNjcmV0LVBhNTU=";
constexpr char kRegistryUrl[] = "http://registry.test:5000/v2/";
constexpr char kImage[] = "registry.test:5000/adapters/phi:v1";

std::string HeaderOf(const http::Request& r, const std::string& name) {
  for (const auto& [key, value] : r.headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

std::string OciError(const std::string& code, const std::string& message) {
  return json{{"errors", json::array({{{"code", code}, {"message", message}}})}}.dump();
}

// A registry v2 API: blobs and manifests, monolithic upload sessions behind a relative
// Location with a query, optional Bearer auth (tokens from a token service at
// http://auth.test/token for `kUser`/`kPassword`) or Basic auth, and faults to inject. Blobs
// may be redirected to http://storage.test, which records the Authorization it receives.
class FakeRegistry {
 public:
  enum class Auth { kNone, kBearer, kBasic };

  http::FakeHttpClient::Handler Handler() {
    return [this](const http::Request& r) { return Handle(r); };
  }

  void PutManifest(const std::string& repo, const std::string& tag, const std::string& media_type,
                   const std::string& body) {
    manifests[repo + ":" + tag] = {media_type, body};
    manifests[repo + "@" + Sha256Digest(body)] = {media_type, body};
  }

  Auth auth = Auth::kNone;
  std::set<std::string> corrupt_blobs;
  bool redirect_blobs = false;
  // When not 0, the status of every upload's POST.
  int upload_status = 0;

  struct Manifest {
    std::string media_type;
    std::string body;
  };
  std::map<std::string, std::string> blobs;
  std::map<std::string, Manifest> manifests;
  int tokens_issued = 0;
  int uploads_started = 0;
  std::vector<std::string> storage_authorizations;

 private:
  http::Response Handle(const http::Request& r) {
    const std::string authorization = HeaderOf(r, "Authorization");
    if (absl::StartsWith(r.url, "http://auth.test/token")) return Token(r, authorization);
    if (absl::StartsWith(r.url, "http://storage.test/blob/")) {
      storage_authorizations.push_back(authorization);
      return ServeBlob(r.url.substr(sizeof("http://storage.test/blob/") - 1), false);
    }
    if (!absl::StartsWith(r.url, kRegistryUrl)) return http::MakeResponse(404);
    std::string path = r.url.substr(sizeof(kRegistryUrl) - 1);
    std::string query;
    if (size_t q = path.find('?'); q != std::string::npos) {
      query = path.substr(q + 1);
      path.erase(q);
    }
    size_t kind = path.rfind("/blobs/");
    if (kind == std::string::npos) kind = path.rfind("/manifests/");
    if (kind == std::string::npos) return http::MakeResponse(404);
    const std::string repo = path.substr(0, kind);
    if (!Authorized(authorization)) return Challenge(repo);
    const std::string rest = path.substr(kind);
    if (rest == "/blobs/uploads/" && r.method == "POST") {
      ++uploads_started;
      if (upload_status != 0) {
        return http::MakeResponse(upload_status,
                                  OciError("UNAVAILABLE", "the registry is in read-only mode"));
      }
      const std::string id = absl::StrCat("session-", ++sessions_);
      open_sessions_.insert(id);
      return http::MakeResponse(
          202, "",
          {{"Location", absl::StrCat("/v2/", repo, "/blobs/uploads/", id, "?_state=xyz")}});
    }
    if (absl::StartsWith(rest, "/blobs/uploads/") && r.method == "PUT") {
      const std::string id = rest.substr(sizeof("/blobs/uploads/") - 1);
      const std::string prefix = "_state=xyz&digest=";
      if (open_sessions_.erase(id) == 0 || !absl::StartsWith(query, prefix)) {
        return http::MakeResponse(404, OciError("BLOB_UPLOAD_UNKNOWN", "upload unknown"));
      }
      const std::string digest =
          absl::StrReplaceAll(query.substr(prefix.size()), {{"%3A", ":"}, {"%3a", ":"}});
      if (Sha256Digest(r.body) != digest) {
        return http::MakeResponse(400, OciError("DIGEST_INVALID", "digest does not match"));
      }
      blobs[digest] = r.body;
      return http::MakeResponse(201, "", {{"Docker-Content-Digest", digest}});
    }
    if (absl::StartsWith(rest, "/blobs/")) {
      const std::string digest = rest.substr(sizeof("/blobs/") - 1);
      if (r.method == "HEAD") {
        return http::MakeResponse(blobs.count(digest) > 0 ? 200 : 404);
      }
      return ServeBlob(digest, redirect_blobs);
    }
    const std::string reference = rest.substr(sizeof("/manifests/") - 1);
    const std::string key =
        absl::StrCat(repo, absl::StartsWith(reference, "sha256:") ? "@" : ":", reference);
    if (r.method == "PUT") {
      if (HeaderOf(r, "Content-Type") != kManifestMediaType) return http::MakeResponse(400);
      PutManifest(repo, reference, kManifestMediaType, r.body);
      return http::MakeResponse(201, "", {{"Docker-Content-Digest", Sha256Digest(r.body)}});
    }
    auto it = manifests.find(key);
    if (it == manifests.end()) {
      return http::MakeResponse(404, OciError("MANIFEST_UNKNOWN", "manifest unknown"));
    }
    return http::MakeResponse(200, it->second.body, {{"Content-Type", it->second.media_type}});
  }

  http::Response ServeBlob(const std::string& digest, bool redirect) {
    auto it = blobs.find(digest);
    if (it == blobs.end()) return http::MakeResponse(404, OciError("BLOB_UNKNOWN", "blob unknown"));
    if (redirect) {
      return http::MakeResponse(307, "", {{"Location", "http://storage.test/blob/" + digest}});
    }
    std::string body = it->second;
    if (corrupt_blobs.count(digest) > 0 && !body.empty()) body[0] = static_cast<char>(body[0] ^ 1);
    return http::MakeResponse(200, body);
  }

  bool Authorized(const std::string& authorization) const {
    switch (auth) {
      case Auth::kNone:
        return true;
      case Auth::kBasic:
        return authorization == kAliceBasic;
      case Auth::kBearer:
        return absl::StartsWith(authorization, "Bearer ") &&
               tokens_.count(authorization.substr(7)) > 0;
    }
    return false;
  }

  http::Response Challenge(const std::string& repo) {
    const std::string challenge =
        auth == Auth::kBasic
            ? std::string("Basic realm=\"fake registry\"")
            : absl::StrCat("Bearer realm=\"http://auth.test/token\",service=\"registry.test\",",
                           "scope=\"repository:", repo, ":pull\"");
    return http::MakeResponse(401, OciError("UNAUTHORIZED", "authentication required"),
                              {{"WWW-Authenticate", challenge}});
  }

  http::Response Token(const http::Request& r, const std::string& authorization) {
    if (authorization != kAliceBasic) {
      return http::MakeResponse(401, R"({"details":"incorrect username or password"})");
    }
    const std::string token = absl::StrCat("tok-", ++tokens_issued);
    tokens_.insert(token);
    return http::MakeResponse(200, json{{"token", token}, {"expires_in", 300}}.dump());
  }

  int sessions_ = 0;
  std::set<std::string> open_sessions_;
  std::set<std::string> tokens_;
};

ClientOptions PlainHttp() {
  ClientOptions options;
  options.plain_http = true;
  return options;
}

std::optional<Credentials> Alice(const std::string& password = kPassword) {
  return Credentials{kUser, password};
}

void WriteFile(const std::string& path, const std::string& data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Waits for `done` (at once with the fake, which answers inline).
absl::StatusOr<std::string> PushAndWait(RegistryClient& client, const std::string& image,
                                        const std::vector<std::string>& files,
                                        std::optional<Credentials> creds = std::nullopt,
                                        std::map<std::string, std::string> annotations = {}) {
  absl::StatusOr<Reference> ref = ParseReference(image);
  if (!ref.ok()) return ref.status();
  absl::Notification answered;
  absl::StatusOr<std::string> result;
  client.Push(*ref, files, annotations, std::move(creds), [&](absl::StatusOr<std::string> r) {
    result = std::move(r);
    answered.Notify();
  });
  if (!answered.WaitForNotificationWithTimeout(absl::Seconds(60))) {
    ADD_FAILURE() << "no answer";
    std::abort();  // `done` still refers to this frame.
  }
  return result;
}

absl::StatusOr<std::vector<std::string>> PullAndWait(
    RegistryClient& client, const std::string& image, const std::string& dest,
    std::optional<Credentials> creds = std::nullopt) {
  absl::StatusOr<Reference> ref = ParseReference(image);
  if (!ref.ok()) return ref.status();
  absl::Notification answered;
  absl::StatusOr<std::vector<std::string>> result;
  client.Pull(*ref, dest, std::move(creds), [&](absl::StatusOr<std::vector<std::string>> r) {
    result = std::move(r);
    answered.Notify();
  });
  if (!answered.WaitForNotificationWithTimeout(absl::Seconds(60))) {
    ADD_FAILURE() << "no answer";
    std::abort();  // `done` still refers to this frame.
  }
  return result;
}

class RegistryClientTest : public ::testing::Test {
 protected:
  // An adapter as a tuning job leaves it: weights (over several 64 KiB pieces, every byte
  // value), a config and a tar.
  std::vector<std::string> WriteAdapter(const std::string& dir, const std::string& flavor = "") {
    std::string weights;
    for (int i = 0; i < 200 * 1024; ++i) weights += static_cast<char>((i * 31 + 7) % 256);
    contents_["adapter_model.safetensors"] = weights + flavor;
    contents_["adapter_config.json"] = R"({"r": 8, "lora_alpha": 16})" + flavor;
    contents_["checkpoint.tar"] = std::string("tar bytes\0more", 14) + flavor;
    std::vector<std::string> files;
    for (const auto& [name, data] : contents_) {
      files.push_back(dir + "/" + name);
      WriteFile(files.back(), data);
    }
    return files;
  }

  absl::StatusOr<std::string> PushNow(const std::string& image,
                                      const std::vector<std::string>& files,
                                      std::optional<Credentials> creds = std::nullopt,
                                      std::map<std::string, std::string> annotations = {}) {
    return PushAndWait(client_, image, files, std::move(creds), std::move(annotations));
  }

  absl::StatusOr<std::vector<std::string>> PullNow(
      const std::string& image, const std::string& dest,
      std::optional<Credentials> creds = std::nullopt) {
    return PullAndWait(client_, image, dest, std::move(creds));
  }

  // A blob and a manifest whose one layer has `layer` (digest and size filled in).
  void PutArtifact(const std::string& tag, const std::string& data, json layer) {
    registry_.blobs[Sha256Digest(data)] = data;
    registry_.blobs[Sha256Digest("{}")] = "{}";
    layer["digest"] = Sha256Digest(data);
    layer["size"] = data.size();
    const json manifest = {
        {"schemaVersion", 2},
        {"mediaType", kManifestMediaType},
        {"config",
         {{"mediaType", kEmptyConfigMediaType}, {"digest", Sha256Digest("{}")}, {"size", 2}}},
        {"layers", json::array({layer})}};
    registry_.PutManifest("adapters/phi", tag, kManifestMediaType, manifest.dump());
  }

  int CountRequests(const std::string& url_prefix) {
    int n = 0;
    for (const http::Request& r : http_.requests()) n += absl::StartsWith(r.url, url_prefix);
    return n;
  }

  FakeRegistry registry_;
  http::FakeHttpClient http_{registry_.Handler()};
  RegistryClient client_{&http_, PlainHttp()};
  kaito::testing::TempDir dir_;
  std::map<std::string, std::string> contents_;
};

TEST(ParseReferenceTest, DockerRules) {
  const std::string digest = Sha256Digest("abc");
  struct Case {
    std::string image, registry, repository, tag, digest;
  };
  const Case cases[] = {
      {"ubuntu", "docker.io", "library/ubuntu", "latest", ""},
      {"ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", ""},
      {"kaito/adapter:1", "docker.io", "kaito/adapter", "1", ""},
      {"docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", ""},
      {"index.docker.io/kaito/x", "docker.io", "kaito/x", "latest", ""},
      {"localhost/x", "localhost", "x", "latest", ""},
      {"localhost:5000/x", "localhost:5000", "x", "latest", ""},
      {"host:5000/a/b:tag", "host:5000", "a/b", "tag", ""},
      {"mcr.microsoft.com/aks/kaito/phi-3:0.0.1", "mcr.microsoft.com", "aks/kaito/phi-3", "0.0.1",
       ""},
      {"127.0.0.1:5000/x@" + digest, "127.0.0.1:5000", "x", "", digest},
      {"reg.io/x:1@" + digest, "reg.io", "x", "1", digest},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Reference> ref = ParseReference(c.image);
    ASSERT_TRUE(ref.ok()) << c.image << ": " << ref.status();
    EXPECT_EQ(ref->registry, c.registry) << c.image;
    EXPECT_EQ(ref->repository, c.repository) << c.image;
    EXPECT_EQ(ref->tag, c.tag) << c.image;
    EXPECT_EQ(ref->digest, c.digest) << c.image;
  }
  EXPECT_EQ(ParseReference("host:5000/a/b:tag")->ToString(), "host:5000/a/b:tag");
  EXPECT_EQ(ParseReference("ubuntu")->ToString(), "docker.io/library/ubuntu:latest");
}

TEST(ParseReferenceTest, RejectsBadInput) {
  const std::string hex = Sha256Digest("abc").substr(7);
  for (const std::string& bad : {std::string(""), std::string("UPPER/x"), std::string("x:bad tag"),
                                 std::string("x@sha256:abc"), "x@sha512:" + hex + hex,
                                 "x@sha256:" + absl::AsciiStrToUpper(hex), std::string("x:"),
                                 std::string("/x"), std::string("a//b")}) {
    absl::StatusOr<Reference> ref = ParseReference(bad);
    EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(ref.status().message().empty()) << bad;
  }
  EXPECT_NE(ParseReference("x@sha256:abc").status().message().find("digest"), std::string::npos);
}

TEST(Sha256DigestTest, KnownValues) {
  EXPECT_EQ(Sha256Digest("{}"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  EXPECT_EQ(Sha256Digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CredentialsFromDockerConfigTest, AuthField) {
  // base64("bob:pw:with:colons"): the password keeps its colons.
  auto creds = CredentialsFromDockerConfig(
      R"({"auths": {"reg.io": {"auth": "Ym9iOnB3OndpdGg6Y29sb25z"}}})", "reg.io");
  ASSERT_TRUE(creds.ok()) << creds.status();
  ASSERT_TRUE(creds->has_value());
  EXPECT_EQ((*creds)->username, "bob");
  EXPECT_EQ((*creds)->password, "pw:with:colons");
}

TEST(CredentialsFromDockerConfigTest, UsernameAndPasswordFields) {
  auto creds = CredentialsFromDockerConfig(
      R"({"auths": {"reg.io:5000": {"username": "u", "password": "p"}}})", "reg.io:5000");
  ASSERT_TRUE(creds.ok()) << creds.status();
  ASSERT_TRUE(creds->has_value());
  EXPECT_EQ((*creds)->username, "u");
  EXPECT_EQ((*creds)->password, "p");
}

TEST(CredentialsFromDockerConfigTest, SchemeKeysAndDockerHub) {
  const std::string alice = R"({"auth": "YWxpY2U6czNjcmV0LVBhNTU="})";
  for (const char* key : {"https://reg.io", "http://reg.io", "https://reg.io/v2/"}) {
    auto creds = CredentialsFromDockerConfig(
        absl::StrCat(R"({"auths": {")", key, R"(": )", alice, "}}"), "reg.io");
    ASSERT_TRUE(creds.ok() && creds->has_value()) << key;
    EXPECT_EQ((*creds)->password, kPassword) << key;
  }
  auto hub = CredentialsFromDockerConfig(
      absl::StrCat(R"({"auths": {"https://index.docker.io/v1/": )", alice, "}}"), "docker.io");
  ASSERT_TRUE(hub.ok() && hub->has_value());
  EXPECT_EQ((*hub)->username, kUser);
  // An exact key wins over one that names the same host.
  auto exact = CredentialsFromDockerConfig(
      R"({"auths": {"https://reg.io/v1/": {"username": "a", "password": "1"},
                    "reg.io": {"username": "b", "password": "2"}}})",
      "reg.io");
  ASSERT_TRUE(exact.ok() && exact->has_value());
  EXPECT_EQ((*exact)->username, "b");
}

TEST(CredentialsFromDockerConfigTest, MissingIsNullopt) {
  for (const char* config :
       {R"({})", R"({"auths": {}})", R"({"auths": {"other.io": {"auth": "eDp5"}}})",
        R"({"auths": {"reg.io": {"identitytoken": "t"}}})"}) {
    auto creds = CredentialsFromDockerConfig(config, "reg.io");
    ASSERT_TRUE(creds.ok()) << config << ": " << creds.status();
    EXPECT_FALSE(creds->has_value()) << config;
  }
}

TEST(CredentialsFromDockerConfigTest, BadInputIsAnError) {
  // Not base64, and base64 without a colon ("nocolon").
  for (const char* auth : {"!!!not-base64!!!", "bm9jb2xvbg=="}) {
    auto creds = CredentialsFromDockerConfig(
        absl::StrCat(R"({"auths": {"reg.io": {"auth": ")", auth, R"("}}})"), "reg.io");
    EXPECT_EQ(creds.status().code(), absl::StatusCode::kInvalidArgument) << auth;
    EXPECT_EQ(creds.status().message().find(auth), std::string::npos) << "quotes the secret";
  }
  EXPECT_EQ(CredentialsFromDockerConfig("not json", "reg.io").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CredentialsFromDockerConfig(R"({"auths": []})", "reg.io").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RegistryClientTest, PushThenPullRoundTripsByteForByte) {
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  absl::StatusOr<std::string> digest =
      PushNow(kImage, files, std::nullopt, {{"kaito.sh/workspace", "default/phi-tuning"}});
  ASSERT_TRUE(digest.ok()) << digest.status();

  // ORAS's layout, and the digest of the exact bytes stored.
  const FakeRegistry::Manifest& stored = registry_.manifests.at("adapters/phi:v1");
  EXPECT_EQ(*digest, Sha256Digest(stored.body));
  json manifest = json::parse(stored.body);
  EXPECT_EQ(manifest["schemaVersion"], 2);
  EXPECT_EQ(manifest["mediaType"], kManifestMediaType);
  EXPECT_EQ(manifest["config"]["mediaType"], kEmptyConfigMediaType);
  EXPECT_EQ(manifest["config"]["digest"], Sha256Digest("{}"));
  EXPECT_EQ(manifest["config"]["size"], 2);
  EXPECT_EQ(manifest["annotations"]["kaito.sh/workspace"], "default/phi-tuning");
  absl::Time created;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full,
                              manifest["annotations"][kCreatedAnnotation].get<std::string>(),
                              &created, &err))
      << err;
  ASSERT_EQ(manifest["layers"].size(), 3u);
  std::map<std::string, std::string> media_types;
  for (json& layer : manifest["layers"]) {
    const std::string title = layer["annotations"][kTitleAnnotation].get<std::string>();
    media_types[title] = layer["mediaType"].get<std::string>();
    EXPECT_EQ(layer["digest"], Sha256Digest(contents_.at(title)));
    EXPECT_EQ(layer["size"], contents_.at(title).size());
  }
  EXPECT_EQ(media_types["checkpoint.tar"], kTarLayerMediaType);
  EXPECT_EQ(media_types["adapter_model.safetensors"], kFileLayerMediaType);
  EXPECT_EQ(media_types["adapter_config.json"], kFileLayerMediaType);

  const std::string dest = dir_.File("in/adapter");
  absl::StatusOr<std::vector<std::string>> written = PullNow(kImage, dest);
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_EQ(written->size(), 3u);
  for (const std::string& path : *written) {
    const std::string name = fs::path(path).filename().string();
    EXPECT_EQ(fs::path(path).parent_path().string(), dest);
    EXPECT_EQ(ReadAll(path), contents_.at(name)) << name;
  }
  // No temporary file is left behind.
  EXPECT_EQ(FilesIn(dest),
            (std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors",
                                      "checkpoint.tar"}));

  // Pushing again uploads nothing: every blob is there.
  const int uploads = registry_.uploads_started;
  ASSERT_TRUE(PushNow("registry.test:5000/adapters/phi:v2", files).ok());
  EXPECT_EQ(registry_.uploads_started, uploads);
}

TEST_F(RegistryClientTest, PullByDigestVerifiesTheManifest) {
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  absl::StatusOr<std::string> digest = PushNow(kImage, files);
  ASSERT_TRUE(digest.ok()) << digest.status();
  const std::string by_digest = absl::StrCat("registry.test:5000/adapters/phi@", *digest);
  absl::StatusOr<std::vector<std::string>> written = PullNow(by_digest, dir_.File("a"));
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->size(), 3u);
  EXPECT_EQ(CountRequests(absl::StrCat(kRegistryUrl, "adapters/phi/manifests/", *digest)), 1);

  // The registry answers another manifest for that digest.
  FakeRegistry::Manifest& stored = registry_.manifests.at("adapters/phi@" + *digest);
  stored.body.insert(stored.body.size() - 1, " ");
  written = PullNow(by_digest, dir_.File("b"));
  EXPECT_EQ(written.status().code(), absl::StatusCode::kDataLoss) << written.status();
  EXPECT_TRUE(FilesIn(dir_.File("b")).empty());
}

TEST_F(RegistryClientTest, CorruptBlobIsDataLossAndLeavesNothing) {
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  ASSERT_TRUE(PushNow(kImage, files).ok());
  const std::string weights = Sha256Digest(contents_.at("adapter_model.safetensors"));
  registry_.corrupt_blobs.insert(weights);
  const std::string dest = dir_.File("in");
  absl::StatusOr<std::vector<std::string>> written = PullNow(kImage, dest);
  ASSERT_EQ(written.status().code(), absl::StatusCode::kDataLoss) << written.status();
  const std::string message(written.status().message());
  EXPECT_NE(message.find(absl::StrCat("blob ", weights, " of ", kImage,
                                      " does not match its digest; got sha256:")),
            std::string::npos)
      << message;
  EXPECT_EQ(FilesIn(dest), std::vector<std::string>())
      << "the files written before, and the partial blob, go";
}

TEST_F(RegistryClientTest, BearerTokenIsFetchedOnceAndReused) {
  registry_.auth = FakeRegistry::Auth::kBearer;
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  ASSERT_TRUE(PushNow(kImage, files, Alice()).ok());
  EXPECT_EQ(registry_.tokens_issued, 1);
  ASSERT_EQ(CountRequests("http://auth.test/token"), 1);
  for (const http::Request& r : http_.requests()) {
    if (!absl::StartsWith(r.url, "http://auth.test/")) continue;
    EXPECT_EQ(HeaderOf(r, "Authorization"), kAliceBasic);
    EXPECT_NE(r.url.find("service=registry.test"), std::string::npos) << r.url;
    EXPECT_NE(r.url.find("scope=repository%3Aadapters%2Fphi%3Apull%2Cpush"), std::string::npos)
        << r.url;
  }
  // Only the first request went without the token.
  int without = 0;
  for (const http::Request& r : http_.requests()) {
    if (absl::StartsWith(r.url, kRegistryUrl)) without += HeaderOf(r, "Authorization").empty();
  }
  EXPECT_EQ(without, 1);

  // A second push reuses the cached token: no challenge, no token request.
  const size_t before = http_.requests().size();
  ASSERT_TRUE(PushNow("registry.test:5000/adapters/phi:v2", files, Alice()).ok());
  EXPECT_EQ(registry_.tokens_issued, 1);
  for (size_t i = before; i < http_.requests().size(); ++i) {
    EXPECT_EQ(HeaderOf(http_.requests()[i], "Authorization"), "Bearer tok-1");
  }

  // Pulling asks for another scope: one more token, then reused.
  ASSERT_TRUE(PullNow(kImage, dir_.File("a"), Alice()).ok());
  ASSERT_TRUE(PullNow(kImage, dir_.File("b"), Alice()).ok());
  EXPECT_EQ(registry_.tokens_issued, 2);
}

TEST_F(RegistryClientTest, WrongPasswordOrNoCredentialsIsUnauthenticated) {
  registry_.auth = FakeRegistry::Auth::kBearer;
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  absl::StatusOr<std::string> pushed = PushNow(kImage, files, Alice("wrong-password"));
  EXPECT_EQ(pushed.status().code(), absl::StatusCode::kUnauthenticated) << pushed.status();
  EXPECT_NE(pushed.status().message().find("uploading blob sha256:"), std::string::npos);
  EXPECT_EQ(pushed.status().message().find("wrong-password"), std::string::npos);
  absl::StatusOr<std::vector<std::string>> pulled = PullNow(kImage, dir_.File("in"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnauthenticated) << pulled.status();
  EXPECT_EQ(registry_.tokens_issued, 0);
}

TEST_F(RegistryClientTest, BasicChallengeIsAnsweredWithTheCredentials) {
  registry_.auth = FakeRegistry::Auth::kBasic;
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  ASSERT_TRUE(PushNow(kImage, files, Alice()).ok());
  absl::StatusOr<std::vector<std::string>> pulled = PullNow(kImage, dir_.File("in"), Alice());
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->size(), 3u);

  pulled = PullNow(kImage, dir_.File("x"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnauthenticated) << pulled.status();
  pulled = PullNow(kImage, dir_.File("y"), Alice("wrong-password"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnauthenticated) << pulled.status();
}

TEST_F(RegistryClientTest, MissingManifestIsNotFound) {
  absl::StatusOr<std::vector<std::string>> pulled =
      PullNow("registry.test:5000/adapters/none:1", dir_.File("in"));
  ASSERT_EQ(pulled.status().code(), absl::StatusCode::kNotFound) << pulled.status();
  EXPECT_NE(pulled.status().message().find("registry.test:5000/adapters/none:1: manifest unknown"),
            std::string::npos)
      << pulled.status();
  EXPECT_FALSE(fs::exists(dir_.File("in")));
}

TEST_F(RegistryClientTest, TitlesThatLeaveTheDirectoryAreRejected) {
  const std::string dest = dir_.File("pull/dest");
  for (const char* title : {"../evil", "sub/evil", "..", "/etc/evil"}) {
    PutArtifact("bad", "evil bytes",
                {{"mediaType", kFileLayerMediaType}, {"annotations", {{kTitleAnnotation, title}}}});
    absl::StatusOr<std::vector<std::string>> pulled =
        PullNow("registry.test:5000/adapters/phi:bad", dest);
    EXPECT_EQ(pulled.status().code(), absl::StatusCode::kInvalidArgument) << title;
    EXPECT_NE(pulled.status().message().find("not a plain file name"), std::string::npos)
        << pulled.status();
  }
  EXPECT_FALSE(fs::exists(dir_.File("pull/evil")));
  EXPECT_FALSE(fs::exists(dir_.File("pull/dest/sub")));
  EXPECT_TRUE(FilesIn(dest).empty());
  EXPECT_EQ(CountRequests(absl::StrCat(kRegistryUrl, "adapters/phi/blobs/")), 0)
      << "titles are checked before anything is fetched";
}

TEST_F(RegistryClientTest, UntitledLayersAreNamedByDigestUnlessCompressed) {
  const std::string data = "an untitled layer";
  PutArtifact("plain", data, {{"mediaType", kTarLayerMediaType}});
  absl::StatusOr<std::vector<std::string>> pulled =
      PullNow("registry.test:5000/adapters/phi:plain", dir_.File("a"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  ASSERT_EQ(pulled->size(), 1u);
  EXPECT_EQ(fs::path(pulled->at(0)).filename().string(), Sha256Digest(data).substr(7));
  EXPECT_EQ(ReadAll(pulled->at(0)), data);

  PutArtifact("gz", data, {{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"}});
  pulled = PullNow("registry.test:5000/adapters/phi:gz", dir_.File("b"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kUnimplemented) << pulled.status();
}

TEST_F(RegistryClientTest, RedirectedBlobsGoWithoutTheRegistryToken) {
  registry_.auth = FakeRegistry::Auth::kBearer;
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  ASSERT_TRUE(PushNow(kImage, files, Alice()).ok());
  registry_.redirect_blobs = true;
  absl::StatusOr<std::vector<std::string>> pulled = PullNow(kImage, dir_.File("in"), Alice());
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  for (const std::string& path : *pulled) {
    EXPECT_EQ(ReadAll(path), contents_.at(fs::path(path).filename().string()));
  }
  ASSERT_EQ(registry_.storage_authorizations.size(), 3u);
  for (const std::string& authorization : registry_.storage_authorizations) {
    EXPECT_EQ(authorization, "");
  }
}

TEST_F(RegistryClientTest, IndexPicksLinuxAmd64) {
  ASSERT_TRUE(
      PushNow("registry.test:5000/adapters/phi:arm", WriteAdapter(dir_.File("arm"), "arm")).ok());
  absl::StatusOr<std::string> amd64 =
      PushNow("registry.test:5000/adapters/phi:amd", WriteAdapter(dir_.File("amd"), "amd"));
  ASSERT_TRUE(amd64.ok());
  const std::string arm64 = Sha256Digest(registry_.manifests.at("adapters/phi:arm").body);
  auto entry = [](const std::string& digest, const char* arch) {
    return json{{"mediaType", kManifestMediaType},
                {"digest", digest},
                {"size", 1},
                {"platform", {{"os", "linux"}, {"architecture", arch}}}};
  };
  const json index = {{"schemaVersion", 2},
                      {"mediaType", kIndexMediaType},
                      {"manifests", json::array({entry(arm64, "arm64"), entry(*amd64, "amd64")})}};
  registry_.PutManifest("adapters/phi", "multi", kIndexMediaType, index.dump());
  absl::StatusOr<std::vector<std::string>> pulled =
      PullNow("registry.test:5000/adapters/phi:multi", dir_.File("in"));
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(ReadAll(dir_.File("in/adapter_config.json")), contents_.at("adapter_config.json"));
  EXPECT_TRUE(absl::EndsWith(contents_.at("adapter_config.json"), "amd"));
}

TEST_F(RegistryClientTest, RegistryErrorsKeepTheirCodeAndNameTheStep) {
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  registry_.upload_status = 503;
  absl::StatusOr<std::string> pushed = PushNow(kImage, files);
  ASSERT_EQ(pushed.status().code(), absl::StatusCode::kUnavailable) << pushed.status();
  const std::string message(pushed.status().message());
  EXPECT_TRUE(
      absl::StartsWith(message, absl::StrCat("pushing ", kImage, ": uploading blob sha256:")))
      << message;
  EXPECT_NE(message.find("UNAVAILABLE: the registry is in read-only mode"), std::string::npos)
      << message;
  registry_.upload_status = 429;
  EXPECT_EQ(PushNow(kImage, files).status().code(), absl::StatusCode::kUnavailable);
  registry_.upload_status = 403;
  EXPECT_EQ(PushNow(kImage, files).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(RegistryClientTest, TransportErrorsKeepTheClientsCode) {
  http_.set_handler([](const http::Request&) -> absl::StatusOr<http::Response> {
    return absl::DeadlineExceededError("Timeout was reached");
  });
  absl::StatusOr<std::vector<std::string>> pulled = PullNow(kImage, dir_.File("in"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(absl::StartsWith(pulled.status().message(),
                               absl::StrCat("pulling ", kImage, ": fetching the manifest: ")))
      << pulled.status();
}

TEST_F(RegistryClientTest, BadPushArgumentsAreInvalid) {
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  EXPECT_EQ(PushNow(kImage, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PushNow(kImage, {"relative/file"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PushNow(kImage, {dir_.File("missing")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  WriteFile(dir_.File("other/adapter_config.json"), "{}");
  EXPECT_EQ(PushNow(kImage, {files[0], dir_.File("other/adapter_config.json")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PushNow(absl::StrCat("registry.test:5000/adapters/phi@", Sha256Digest("x")), files)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(http_.requests().empty());
}

TEST_F(RegistryClientTest, BlobsOverTheLimitAreRefused) {
  ClientOptions options = PlainHttp();
  options.max_blob_bytes = 1000;
  RegistryClient small(&http_, options);
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  absl::StatusOr<std::string> pushed = PushAndWait(small, kImage, files);
  EXPECT_EQ(pushed.status().code(), absl::StatusCode::kResourceExhausted) << pushed.status();

  ASSERT_TRUE(PushNow(kImage, files).ok());
  absl::StatusOr<std::vector<std::string>> pulled = PullAndWait(small, kImage, dir_.File("in"));
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kResourceExhausted) << pulled.status();
}

TEST_F(RegistryClientTest, NoErrorMessageCarriesTheSecrets) {
  const std::vector<std::string> files = WriteAdapter(dir_.File("out"));
  std::vector<absl::Status> failures;
  registry_.auth = FakeRegistry::Auth::kBearer;
  failures.push_back(PushNow(kImage, files, Alice("hunter2-wrong")).status());
  failures.push_back(PullNow(kImage, dir_.File("a"), Alice("hunter2-wrong")).status());
  // With a valid token: errors after authentication.
  failures.push_back(
      PullNow("registry.test:5000/adapters/none:1", dir_.File("b"), Alice()).status());
  registry_.upload_status = 503;
  failures.push_back(PushNow(kImage, files, Alice()).status());
  registry_.auth = FakeRegistry::Auth::kBasic;
  failures.push_back(PullNow(kImage, dir_.File("c"), Alice("hunter2-wrong")).status());
  failures.push_back(PushNow(kImage, files, Alice()).status());
  for (const absl::Status& status : failures) {
    ASSERT_FALSE(status.ok());
    const std::string message(status.message());
    for (const std::string& secret : {std::string("hunter2-wrong"), std::string(kPassword),
                                      std::string("YWxpY2U6"), std::string("tok-")}) {
      EXPECT_EQ(message.find(secret), std::string::npos) << message;
    }
  }
}

// Against a real registry (Debian's docker-registry, distribution 2.8) over the libcurl
// client: what the fake stands for, with Basic authentication from an htpasswd file.
class RealRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // bcrypt of kPassword (cost 4), made once outside this code.
    const std::string htpasswd = dir_.File("htpasswd");
    WriteFile(htpasswd, "alice:$2b$04$fID6uiq2gs6IhJXtAfcxWOtMSLbStj1DhW0bjSReC0nshWDewL8TG\n");
    auto registry = kaito::testing::LocalRegistry::Start(dir_.File("registry"), htpasswd);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
  }

  kaito::testing::TempDir dir_;
  std::unique_ptr<kaito::testing::LocalRegistry> registry_;
  http::CurlHttpClient http_;
  RegistryClient client_{&http_, PlainHttp()};
};

TEST_F(RealRegistryTest, PushThenPullWithBasicAuth) {
  std::map<std::string, std::string> contents = {
      {"adapter_config.json", R"({"r": 8})"},
      {"adapter_model.safetensors", std::string(300000, 'w')}};
  std::vector<std::string> files;
  for (const auto& [name, data] : contents) {
    files.push_back(dir_.File("out/" + name));
    WriteFile(files.back(), data);
  }
  const std::string image = registry_->host() + "/kaito/adapter:v1";
  absl::StatusOr<std::string> digest =
      PushAndWait(client_, image, files, Alice(), {{"kaito.sh/workspace", "phi"}});
  ASSERT_TRUE(digest.ok()) << digest.status();
  // Again: every blob is there already.
  ASSERT_TRUE(PushAndWait(client_, image, files, Alice(), {{"kaito.sh/workspace", "phi"}}).ok());

  for (const std::string& ref : {image, registry_->host() + "/kaito/adapter@" + *digest}) {
    const std::string dest = dir_.File("in-" + std::to_string(ref.size()));
    absl::StatusOr<std::vector<std::string>> pulled = PullAndWait(client_, ref, dest, Alice());
    ASSERT_TRUE(pulled.ok()) << ref << ": " << pulled.status();
    ASSERT_EQ(pulled->size(), 2u);
    for (const auto& [name, data] : contents) EXPECT_EQ(ReadAll(dest + "/" + name), data) << name;
  }

  EXPECT_EQ(PullAndWait(client_, image, dir_.File("anonymous")).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(PullAndWait(client_, image, dir_.File("wrong"), Alice("nope")).status().code(),
            absl::StatusCode::kUnauthenticated);
  absl::StatusOr<std::vector<std::string>> missing =
      PullAndWait(client_, registry_->host() + "/kaito/adapter:v9", dir_.File("missing"), Alice());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();

  // A blob damaged in the registry's storage.
  const std::string hex = Sha256Digest(contents.at("adapter_model.safetensors")).substr(7);
  const std::string stored =
      absl::StrCat(dir_.File("registry"), "/data/docker/registry/v2/blobs/sha256/",
                   hex.substr(0, 2), "/", hex, "/data");
  ASSERT_TRUE(fs::exists(stored)) << stored;
  WriteFile(stored, std::string(300000, 'x'));
  absl::StatusOr<std::vector<std::string>> damaged =
      PullAndWait(client_, image, dir_.File("damaged"), Alice());
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss) << damaged.status();
  EXPECT_TRUE(FilesIn(dir_.File("damaged")).empty());
}

}  // namespace
}  // namespace kaito::agent::oci
