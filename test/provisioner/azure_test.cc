// Unit tests of the Azure provider's pieces that need no server: ARM errors and their
// classes, long-running-operation reading, Retry-After, the pool body, credentials and
// the ARM client's retry, re-authentication and rate limit (on a fake clock, with a fake
// HTTP client). The provider against a real HTTP server is test/integration/azure_test.cc.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/http/fake_http_client.h"
#include "provisioner/azure/arm_client.h"
#include "provisioner/azure/arm_error.h"
#include "provisioner/azure/azure_provider.h"
#include "provisioner/azure/credentials.h"
#include "provisioner/azure/lro.h"
#include "support/temp_dir.h"

namespace kaito::provisioner::azure {
namespace {

using http::MakeResponse;
using nlohmann::json;

std::string ErrorBody(const std::string& code, const std::string& message,
                      json details = json::array()) {
  return json{{"error", {{"code", code}, {"message", message}, {"details", details}}}}.dump();
}

TEST(ArmErrorTest, QuotaRefusalUnderOperationNotAllowedIsQuota) {
  ArmError error = ParseArmError(MakeResponse(
      409, ErrorBody("OperationNotAllowed",
                     "Operation could not be completed as it results in exceeding approved "
                     "standardNCADSA100v4Family Cores quota. Current Limit: 0")));
  ErrorClass cls = ClassifyArmError(error);
  EXPECT_EQ(cls.reason, "QuotaExceeded");
  EXPECT_FALSE(cls.retryable);
  EXPECT_TRUE(cls.offering_unavailable);
  EXPECT_FALSE(IsOperationInProgress(error));
}

TEST(ArmErrorTest, InProgressConflictIsNotQuota) {
  ArmError error = ParseArmError(MakeResponse(
      409, ErrorBody("OperationNotAllowed",
                     "Operation is not allowed because there's an in progress create node pool "
                     "operation")));
  EXPECT_TRUE(IsOperationInProgress(error));
  EXPECT_EQ(ClassifyArmError(error).reason, "OperationNotAllowed");
}

TEST(ArmErrorTest, NestedAllocationFailureDecides) {
  ArmError error = ParseArmErrorObject(
      json{{"code", "ResourceOperationFailure"},
           {"message", "The resource operation completed with terminal provisioning state"},
           {"details", {{{"code", "ZonalAllocationFailed"}, {"message", "no capacity"}}}}},
      200);
  ErrorClass cls = ClassifyArmError(error);
  EXPECT_EQ(cls.reason, "ZonalAllocationFailed");
  EXPECT_TRUE(cls.retryable);
  EXPECT_TRUE(cls.offering_unavailable);
  EXPECT_NE(error.Describe().find("ZonalAllocationFailed: no capacity"), std::string::npos);
}

TEST(ArmErrorTest, CodesAndStatuses) {
  struct Case {
    int status;
    std::string code;
    std::string reason;
    bool retryable;
  };
  for (const Case& c : std::vector<Case>{
           {400, "SkuNotAvailable", "SkuNotAvailable", false},
           {403, "AuthorizationFailed", "AuthorizationFailed", false},
           {400, "InvalidParameter", "InvalidParameter", false},
           {200, "VMExtensionProvisioningError", "VMExtensionProvisioningError", true},
           {400, "ErrCode_InsufficientVCPUQuota", "QuotaExceeded", false},
           {500, "SomethingNew", "CloudError", true},
           {400, "SomethingNew", "CloudError", false},
           {429, "SubscriptionRequestsThrottled", "Throttled", true},
       }) {
    ErrorClass cls =
        ClassifyArmError(ParseArmError(MakeResponse(c.status, ErrorBody(c.code, "m"))));
    EXPECT_EQ(cls.reason, c.reason) << c.code;
    EXPECT_EQ(cls.retryable, c.retryable) << c.code;
  }
}

TEST(ArmErrorTest, HeaderCodeWinsAndHtmlBodiesAreExcerpted) {
  ArmError error = ParseArmError(
      MakeResponse(400, ErrorBody("BodyCode", "m"), {{"x-ms-error-code", "HeaderCode"}}));
  EXPECT_EQ(error.code, "HeaderCode");
  ArmError html = ParseArmError(MakeResponse(502, "<html><body>Bad Gateway</body></html>"));
  EXPECT_EQ(html.code, "HTTP502");
  EXPECT_NE(html.message.find("Bad Gateway"), std::string::npos);
  EXPECT_EQ(ClassifyArmError(html).reason, "CloudError");
  EXPECT_TRUE(ClassifyArmError(html).retryable);
}

TEST(LroTest, PollerIsChosenFromHeadersInArmOrder) {
  const std::string pool = "https://arm/pool?api-version=2024-01-01";
  Operation async = StartOperation(
      "PUT", pool,
      MakeResponse(201, R"({"properties":{"provisioningState":"Creating"}})",
                   {{"Azure-AsyncOperation", "https://arm/op/1"}, {"Location", "https://arm/l"}}));
  EXPECT_EQ(async.kind, PollerKind::kAsyncOperation);
  EXPECT_EQ(async.poll_url, "https://arm/op/1");
  EXPECT_EQ(async.state, OperationState::kInProgress);

  Operation location =
      StartOperation("DELETE", pool, MakeResponse(202, "", {{"Location", "https://arm/l/1"}}));
  EXPECT_EQ(location.kind, PollerKind::kLocation);
  EXPECT_EQ(location.state, OperationState::kInProgress);

  Operation body = StartOperation(
      "PUT", pool, MakeResponse(200, R"({"properties":{"provisioningState":"Succeeded"}})"));
  EXPECT_EQ(body.kind, PollerKind::kBody);
  EXPECT_EQ(body.poll_url, pool);
  EXPECT_EQ(body.state, OperationState::kSucceeded);

  EXPECT_EQ(StartOperation("DELETE", pool, MakeResponse(204)).state, OperationState::kSucceeded);
}

TEST(LroTest, AsyncOperationStatusBodies) {
  Operation op;
  op.kind = PollerKind::kAsyncOperation;
  ReadPollResponse(MakeResponse(200, R"({"status":"InProgress"})"), &op);
  EXPECT_EQ(op.state, OperationState::kInProgress);
  ReadPollResponse(MakeResponse(503, "busy"), &op);
  EXPECT_EQ(op.state, OperationState::kInProgress) << "5xx on a poll keeps polling";
  ReadPollResponse(
      MakeResponse(200, R"({"status":"Failed","error":{"code":"QuotaExceeded","message":"q"}})"),
      &op);
  EXPECT_EQ(op.state, OperationState::kFailed);
  EXPECT_EQ(op.error.code, "QuotaExceeded");

  Operation no_status;
  no_status.kind = PollerKind::kAsyncOperation;
  ReadPollResponse(MakeResponse(200, R"({"name":"x"})"), &no_status);
  EXPECT_EQ(no_status.state, OperationState::kFailed);

  Operation done;
  done.kind = PollerKind::kAsyncOperation;
  ReadPollResponse(MakeResponse(200, R"({"status":"succeeded"})"), &done);
  EXPECT_EQ(done.state, OperationState::kSucceeded) << "terminal states are case-insensitive";
}

TEST(LroTest, LocationPolls) {
  Operation op;
  op.kind = PollerKind::kLocation;
  op.poll_url = "https://arm/l/1";
  ReadPollResponse(MakeResponse(202, "", {{"Location", "https://arm/l/2"}}), &op);
  EXPECT_EQ(op.state, OperationState::kInProgress);
  EXPECT_EQ(op.poll_url, "https://arm/l/2");
  ReadPollResponse(MakeResponse(429, ""), &op);
  EXPECT_EQ(op.state, OperationState::kInProgress);
  ReadPollResponse(MakeResponse(204), &op);
  EXPECT_EQ(op.state, OperationState::kSucceeded);

  Operation failed;
  failed.kind = PollerKind::kLocation;
  ReadPollResponse(MakeResponse(409, ErrorBody("OperationNotAllowed", "busy")), &failed);
  EXPECT_EQ(failed.state, OperationState::kFailed);
  EXPECT_EQ(failed.error.code, "OperationNotAllowed");
}

TEST(LroTest, RetryAfterInEveryForm) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  EXPECT_EQ(RetryAfter(MakeResponse(429, "", {{"retry-after-ms", "1500"}}), now),
            absl::Milliseconds(1500));
  EXPECT_EQ(RetryAfter(MakeResponse(429, "", {{"x-ms-retry-after-ms", "250"}}), now),
            absl::Milliseconds(250));
  EXPECT_EQ(RetryAfter(MakeResponse(429, "", {{"Retry-After", "7"}}), now), absl::Seconds(7));
  // 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT.
  EXPECT_EQ(
      RetryAfter(MakeResponse(429, "", {{"Retry-After", "Tue, 14 Nov 2023 22:13:30 GMT"}}), now),
      absl::Seconds(10));
  EXPECT_EQ(RetryAfter(MakeResponse(429, "", {{"Retry-After", "soon"}}), now), std::nullopt);
  EXPECT_EQ(RetryAfter(MakeResponse(429), now), std::nullopt);
  // The millisecond forms win over Retry-After.
  EXPECT_EQ(
      RetryAfter(MakeResponse(429, "", {{"Retry-After", "9"}, {"retry-after-ms", "10"}}), now),
      absl::Milliseconds(10));
}

TEST(PoolTest, BodyIsOnePoolOfOneNodeWithOwnershipAndTaints) {
  v1::CreateNodeRequest request;
  request.set_claim_name("ws0123456789");
  request.mutable_spec()->set_instance_type("Standard_NC24ads_A100_v4");
  request.mutable_spec()->set_disk_size_gib(1024);
  request.mutable_spec()->set_image_family("AzureLinux");
  (*request.mutable_spec()->mutable_labels())["kaito.sh/workspace"] = "ws1";
  v1::Taint* taint = request.mutable_spec()->add_taints();
  taint->set_key("sku");
  taint->set_value("gpu");
  taint->set_effect("NoSchedule");
  const json body = PoolBody(request, absl::FromUnixSeconds(1700000000));
  const json expected = json::parse(R"({"properties":{
    "count":1,"vmSize":"Standard_NC24ads_A100_v4","type":"VirtualMachineScaleSets","mode":"User",
    "osType":"Linux","osSKU":"AzureLinux","osDiskSizeGB":1024,
    "nodeLabels":{"kaito.sh/workspace":"ws1","kaito.sh/nodeclaim":"ws0123456789",
                  "karpenter.sh/nodepool":"kaito","kaito.sh/machine-type":"gpu",
                  "kaito.sh/creation-timestamp":"2023-11-14T22-13-20Z"},
    "nodeTaints":["sku=gpu:NoSchedule"],
    "tags":{"kaito-managed-by":"kaito-provisioner","kaito-nodeclaim":"ws0123456789"}}})");
  EXPECT_EQ(body, expected) << body.dump(2);
  EXPECT_TRUE(IsOwnedPool(body, "ws0123456789"));
  EXPECT_FALSE(IsOwnedPool(body, "other"));
  json user_pool = body;
  user_pool["properties"]["tags"].erase("kaito-managed-by");
  EXPECT_FALSE(IsOwnedPool(user_pool, "ws0123456789")) << "labels alone do not make a pool ours";
}

TEST(PoolTest, PoolNames) {
  EXPECT_TRUE(IsValidPoolName("ws0123456789"));
  EXPECT_TRUE(IsValidPoolName("a"));
  EXPECT_FALSE(IsValidPoolName("ws01234567890"));
  EXPECT_FALSE(IsValidPoolName("1ws"));
  EXPECT_FALSE(IsValidPoolName("ws-1"));
  EXPECT_FALSE(IsValidPoolName(""));
}

std::function<const char*(const char*)> EnvOf(std::map<std::string, std::string> env) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(env));
  return [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

TEST(CredentialConfigTest, ChainOrderAndHalfConfiguredCredentials) {
  auto secret =
      CredentialConfigFromEnvironment(EnvOf({{"AZURE_CLIENT_ID", "c"},
                                             {"AZURE_CLIENT_SECRET", "s"},
                                             {"AZURE_TENANT_ID", "t"},
                                             {"AZURE_AUTHORITY_HOST", "https://login.example/"}}),
                                      "", "");
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(secret->kind, CredentialKind::kClientSecret);
  EXPECT_EQ(secret->authority_host, "https://login.example");

  auto no_tenant = CredentialConfigFromEnvironment(
      EnvOf({{"AZURE_CLIENT_ID", "c"}, {"AZURE_CLIENT_SECRET", "s"}}), "", "");
  ASSERT_FALSE(no_tenant.ok());
  EXPECT_NE(no_tenant.status().message().find("AZURE_TENANT_ID"), std::string::npos);
  EXPECT_EQ(no_tenant.status().message().find("\"s\""), std::string::npos);

  auto missing_file =
      CredentialConfigFromEnvironment(EnvOf({{"AZURE_CLIENT_ID", "c"},
                                             {"AZURE_TENANT_ID", "t"},
                                             {"AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/token"}}),
                                      "", "");
  ASSERT_FALSE(missing_file.ok());
  EXPECT_NE(missing_file.status().message().find("AZURE_FEDERATED_TOKEN_FILE"), std::string::npos);

  auto managed = CredentialConfigFromEnvironment(EnvOf({}), "http://127.0.0.1:1/", "");
  ASSERT_TRUE(managed.ok());
  EXPECT_EQ(managed->kind, CredentialKind::kManagedIdentity);
  EXPECT_EQ(managed->imds_endpoint, "http://127.0.0.1:1");
}

TEST(TokenResponseTest, V2ImdsAndErrors) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  auto v2 = ParseTokenResponse(
      MakeResponse(200, R"({"token_type":"Bearer","expires_in":3599,"access_token":"tok"})"), now);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->token, "tok");
  EXPECT_EQ(v2->expires_on, now + absl::Seconds(3599));
  auto imds = ParseTokenResponse(
      MakeResponse(200, R"({"access_token":"t2","expires_in":"3599","expires_on":"1700003600"})"),
      now);
  ASSERT_TRUE(imds.ok());
  EXPECT_EQ(imds->expires_on, absl::FromUnixSeconds(1700003600));
  auto refused = ParseTokenResponse(
      MakeResponse(
          401,
          R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"})"),
      now);
  ASSERT_TRUE(absl::IsUnauthenticated(refused.status()));
  EXPECT_NE(refused.status().message().find("AADSTS7000215"), std::string::npos);
  EXPECT_EQ(refused.status().message().find("Trace ID"), std::string::npos);
  EXPECT_TRUE(absl::IsUnavailable(ParseTokenResponse(MakeResponse(503, "x"), now).status()));
}

// A token endpoint that hands out tok1, tok2, ... with `ttl`.
http::FakeHttpClient::Handler TokenEndpoint(std::shared_ptr<int> issued, int ttl = 3600) {
  return [issued, ttl](const http::Request& r) -> absl::StatusOr<http::Response> {
    ++*issued;
    return MakeResponse(
        200, json{{"access_token", "tok" + std::to_string(*issued)}, {"expires_in", ttl}}.dump());
  };
}

CredentialConfig SecretConfig() {
  CredentialConfig config;
  config.kind = CredentialKind::kClientSecret;
  config.tenant_id = "tenant";
  config.client_id = "client";
  config.client_secret = "s3cr3t-value";
  config.authority_host = "http://aad";
  return config;
}

std::string GetTokenNow(TokenCredential& credential) {
  std::string token = "<none>";
  credential.GetToken([&](absl::StatusOr<AccessToken> t) { token = t.ok() ? t->token : "error"; });
  return token;
}

TEST(CredentialTest, CachesRefreshesEarlyAndOnlyOnce) {
  FakeClock clock;
  auto issued = std::make_shared<int>(0);
  http::FakeHttpClient http(TokenEndpoint(issued));
  auto credential = AzureCredential::Create(SecretConfig(), &http, &clock);
  EXPECT_EQ(GetTokenNow(*credential), "tok1");
  EXPECT_EQ(GetTokenNow(*credential), "tok1");
  EXPECT_EQ(*issued, 1);
  ASSERT_EQ(http.requests().size(), 1u);
  const http::Request request = http.requests().at(0);
  EXPECT_EQ(request.url, "http://aad/tenant/oauth2/v2.0/token");
  EXPECT_NE(request.body.find("grant_type=client_credentials"), std::string::npos);
  EXPECT_NE(request.body.find("scope=https%3A%2F%2Fmanagement.azure.com%2F.default"),
            std::string::npos);
  // Inside the last five minutes: the cached token still serves, one refresh goes out.
  clock.Advance(absl::Minutes(56));
  EXPECT_EQ(GetTokenNow(*credential), "tok1");
  EXPECT_EQ(*issued, 2);
  EXPECT_EQ(GetTokenNow(*credential), "tok2");
  EXPECT_EQ(*issued, 2);
  // A refused token is dropped; the next call fetches.
  credential->Invalidate("tok2");
  EXPECT_EQ(GetTokenNow(*credential), "tok3");
}

TEST(CredentialTest, ErrorsNeverCarryTheSecret) {
  FakeClock clock;
  http::FakeHttpClient http([](const http::Request&) -> absl::StatusOr<http::Response> {
    return MakeResponse(
        401,
        R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."})");
  });
  auto credential = AzureCredential::Create(SecretConfig(), &http, &clock);
  absl::Status status;
  credential->GetToken([&](absl::StatusOr<AccessToken> t) { status = t.status(); });
  EXPECT_TRUE(absl::IsUnauthenticated(status));
  EXPECT_EQ(std::string(status.message()).find("s3cr3t"), std::string::npos);
  EXPECT_EQ(credential->Describe().find("s3cr3t"), std::string::npos);
}

TEST(CredentialTest, WorkloadIdentityReadsTheRotatedFile) {
  FakeClock clock;
  auto issued = std::make_shared<int>(0);
  http::FakeHttpClient http(TokenEndpoint(issued, 60));
  kaito::testing::TempDir dir;
  const std::string file = dir.path() + "/token";
  std::ofstream(file) << "assertion-one\n";
  CredentialConfig config = SecretConfig();
  config.kind = CredentialKind::kWorkloadIdentity;
  config.client_secret.clear();
  config.federated_token_file = file;
  auto credential = AzureCredential::Create(config, &http, &clock);
  EXPECT_EQ(GetTokenNow(*credential), "tok1");
  std::ofstream(file) << "assertion-two\n";
  clock.Advance(absl::Seconds(61));
  EXPECT_EQ(GetTokenNow(*credential), "tok2");
  ASSERT_EQ(http.requests().size(), 2u);
  EXPECT_NE(http.requests()[0].body.find("client_assertion=assertion-one"), std::string::npos);
  EXPECT_NE(http.requests()[1].body.find("client_assertion=assertion-two"), std::string::npos);
  EXPECT_NE(http.requests()[1].body.find("jwt-bearer"), std::string::npos);
}

TEST(CredentialTest, ManagedIdentityAsksImdsWithTheMetadataHeader) {
  FakeClock clock;
  http::FakeHttpClient http([](const http::Request&) -> absl::StatusOr<http::Response> {
    return MakeResponse(200, R"({"access_token":"mi","expires_in":"3599"})");
  });
  CredentialConfig config;
  config.imds_endpoint = "http://imds";
  config.client_id = "uami";
  auto credential = AzureCredential::Create(config, &http, &clock);
  EXPECT_EQ(GetTokenNow(*credential), "mi");
  const http::Request request = http.requests().at(0);
  EXPECT_EQ(request.url,
            "http://imds/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
            "https%3A%2F%2Fmanagement.azure.com%2F&client_id=uami");
  EXPECT_TRUE(request.no_proxy);
  EXPECT_EQ(request.headers.at(0), (std::pair<std::string, std::string>{"Metadata", "true"}));
}

// A credential that counts and never fails.
class CountingCredential : public TokenCredential {
 public:
  void GetToken(TokenDone done) override {
    std::move(done)(AccessToken{"t" + std::to_string(generation_), absl::InfiniteFuture()});
  }
  void Invalidate(const std::string& token) override {
    ++invalidations_;
    ++generation_;
  }
  std::string Describe() const override { return "counting"; }
  int invalidations_ = 0;
  int generation_ = 1;
};

struct ArmFixture {
  explicit ArmFixture(ArmClientOptions options = {}) {
    options.retry_delay = absl::Seconds(1);
    client = ArmClient::Create(options, &http, &clock, credential);
  }
  // Sends one GET and returns the final status (-1 while unfinished, 0 for an error).
  std::shared_ptr<int> Get() {
    auto result = std::make_shared<int>(-1);
    client->Send("GET", "http://arm/x", "",
                 [result](absl::StatusOr<http::Response> r) { *result = r.ok() ? r->status : 0; });
    return result;
  }
  FakeClock clock;
  http::FakeHttpClient http;
  std::shared_ptr<CountingCredential> credential = std::make_shared<CountingCredential>();
  std::shared_ptr<ArmClient> client;
};

TEST(ArmClientTest, RetryAfterIsHonouredThenTheAnswerArrives) {
  ArmFixture f;
  int calls = 0;
  f.http.set_handler([&](const http::Request& r) -> absl::StatusOr<http::Response> {
    if (++calls == 1) return MakeResponse(503, "", {{"Retry-After", "3"}});
    return MakeResponse(200, "{}");
  });
  auto result = f.Get();
  EXPECT_EQ(*result, -1);
  f.clock.Advance(absl::Milliseconds(2999));
  EXPECT_EQ(calls, 1) << "no retry before Retry-After";
  f.clock.Advance(absl::Milliseconds(1));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(*result, 200);
  EXPECT_EQ(f.client->stats().retries, 1);
  const http::Request sent = f.http.requests().at(0);
  EXPECT_EQ(sent.headers.at(0),
            (std::pair<std::string, std::string>{"Authorization", "Bearer t1"}));
}

TEST(ArmClientTest, RetryAfterBeyondTheCapEndsTheRetries) {
  ArmFixture f;
  f.http.set_handler([](const http::Request&) -> absl::StatusOr<http::Response> {
    return MakeResponse(429, "", {{"Retry-After", "120"}});
  });
  auto result = f.Get();
  EXPECT_EQ(*result, 429);
  EXPECT_EQ(f.http.requests().size(), 1u);
}

TEST(ArmClientTest, BackoffGrowsAndRetriesAreBounded) {
  ArmClientOptions options;
  options.max_retries = 3;
  ArmFixture f(options);
  std::vector<absl::Duration> at;
  f.http.set_handler([&](const http::Request&) -> absl::StatusOr<http::Response> {
    at.push_back(f.clock.Monotonic());
    return absl::UnavailableError("connection reset");
  });
  auto result = f.Get();
  for (int i = 0; i < 300 && *result == -1; ++i) f.clock.Advance(absl::Milliseconds(100));
  EXPECT_EQ(*result, 0);
  ASSERT_EQ(at.size(), 4u) << "one try and three retries";
  // (2^n - 1) x 1 s x [0.8, 1.3): 1, 3, 7 s give or take the jitter.
  const absl::Duration first = at[1] - at[0], second = at[2] - at[1], third = at[3] - at[2];
  EXPECT_GE(first, absl::Milliseconds(700));
  EXPECT_LE(first, absl::Milliseconds(1400));
  EXPECT_GE(second, absl::Milliseconds(2300));
  EXPECT_LE(second, absl::Milliseconds(4000));
  EXPECT_GE(third, absl::Milliseconds(5500));
  EXPECT_LE(third, absl::Milliseconds(9200));
}

TEST(ArmClientTest, A401RefreshesTheTokenOnceAndRetries) {
  ArmFixture f;
  std::vector<std::string> tokens;
  f.http.set_handler([&](const http::Request& r) -> absl::StatusOr<http::Response> {
    tokens.push_back(r.headers.at(0).second);
    return MakeResponse(tokens.size() == 1 ? 401 : 200, "");
  });
  EXPECT_EQ(*f.Get(), 200);
  EXPECT_EQ(tokens, (std::vector<std::string>{"Bearer t1", "Bearer t2"}));
  EXPECT_EQ(f.credential->invalidations_, 1);

  // A second 401 in a row is the answer (no loop).
  tokens.clear();
  f.http.set_handler([&](const http::Request& r) -> absl::StatusOr<http::Response> {
    tokens.push_back(r.headers.at(0).second);
    return MakeResponse(401, "");
  });
  EXPECT_EQ(*f.Get(), 401);
  EXPECT_EQ(tokens.size(), 2u);
}

TEST(ArmClientTest, RateLimitQueuesABurst) {
  ArmClientOptions options;
  options.requests_per_second = 2;
  options.burst = 3;
  ArmFixture f(options);
  f.http.set_handler(
      [](const http::Request&) -> absl::StatusOr<http::Response> { return MakeResponse(200, ""); });
  std::vector<std::shared_ptr<int>> results;
  for (int i = 0; i < 5; ++i) results.push_back(f.Get());
  EXPECT_EQ(f.http.requests().size(), 3u) << "the burst goes at once";
  EXPECT_EQ(f.client->stats().queued, 2);
  f.clock.Advance(absl::Milliseconds(500));
  EXPECT_EQ(f.http.requests().size(), 4u);
  f.clock.Advance(absl::Milliseconds(500));
  EXPECT_EQ(f.http.requests().size(), 5u);
  for (auto& r : results) EXPECT_EQ(*r, 200);
}

TEST(ArmClientTest, StopCancelsWaitingRetries) {
  ArmFixture f;
  f.http.set_handler(
      [](const http::Request&) -> absl::StatusOr<http::Response> { return MakeResponse(503, ""); });
  auto result = f.Get();
  EXPECT_EQ(*result, -1);
  f.client->Stop();
  EXPECT_EQ(*result, 0);
  EXPECT_EQ(f.clock.pending_timers(), 0u);
  EXPECT_EQ(*f.Get(), 0) << "a stopped client sends nothing";
  EXPECT_EQ(f.http.requests().size(), 1u);
}

}  // namespace
}  // namespace kaito::provisioner::azure
