// kaito-fake-arm against its contract (docs/fake-arm.md): every endpoint, the pool
// state machine, faults, throttling, the journal and tokens, driven over HTTP with
// cpp-httplib's client against an in-process fake on port 0. Timed transitions use delays
// of tens of milliseconds set through /_fake/config and are waited for with a deadline;
// the exact-time cases run on a FakeClock.
#include "tools/fake-arm/fake_arm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::fakearm {
namespace {

using Json = nlohmann::ordered_json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kCluster[] =
    "/subscriptions/fake-sub/resourceGroups/fake-rg/providers/Microsoft.ContainerService/"
    "managedClusters/fake-aks";
constexpr char kNodeGroup[] = "/subscriptions/fake-sub/resourceGroups/MC_fake-rg_fake-aks_eastus";
constexpr char kApi[] = "?api-version=2024-01-01";
constexpr char kComputeApi[] = "?api-version=2024-03-01";
constexpr char kA100[] = "Standard_NC24ads_A100_v4";

// One HTTP exchange as the test sees it: status 0 when no complete response came back.
struct Http {
  int status = 0;
  httplib::Error error = httplib::Error::Success;
  std::string body;
  httplib::Headers headers;

  Json json() const { return Json::parse(body, nullptr, false); }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  bool has_header(const std::string& name) const { return headers.count(name) > 0; }
  std::string code() const {
    Json j = json();
    return j.is_object() && j.contains("error") && j["error"].is_object()
               ? j["error"].value("code", "")
               : "";
  }
};

Http From(const httplib::Result& result) {
  Http h;
  if (!result) {
    h.error = result.error();
    return h;
  }
  h.status = result->status;
  h.body = result->body;
  h.headers = result->headers;
  return h;
}

// A pool body as gpu-provisioner sends it (§2.2), with `extra` merged into properties.
std::string PoolBody(const std::string& vm_size = kA100, int count = 1,
                     const Json& extra = Json::object()) {
  Json props = {{"count", count},
                {"vmSize", vm_size},
                {"type", "VirtualMachineScaleSets"},
                {"osType", "Linux"},
                {"osSKU", "Ubuntu"},
                {"osDiskSizeGB", 1024},
                {"nodeLabels", {{"kaito.sh/workspace", "ws1"}, {"karpenter.sh/nodepool", "kaito"}}},
                {"nodeTaints", Json::array({"sku=gpu:NoSchedule"})}};
  for (const auto& [key, value] : extra.items()) props[key] = value;
  return Json{{"properties", props}}.dump();
}

class FakeArmTest : public ::testing::Test {
 protected:
  void SetUp() override { StartFake(FakeArmOptions{}); }

  void StartFake(FakeArmOptions options, bool fast = true) {
    client_.reset();
    fake_ = std::make_unique<FakeArm>(std::move(options));
    ASSERT_TRUE(fake_->Start("127.0.0.1:0").ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", fake_->port());
    client_->set_read_timeout(10, 0);
    token_.clear();
    if (fast) {
      ASSERT_EQ(Control("PUT", "/_fake/config",
                        R"({"prov_delay_ms":50,"upd_delay_ms":50,"del_delay_ms":50})")
                    .status,
                200);
    }
  }

  Http Send(const std::string& method, const std::string& path, const std::string& body,
            const httplib::Headers& headers, const std::string& content_type = "application/json") {
    if (method == "GET") return From(client_->Get(path, headers));
    if (method == "POST") return From(client_->Post(path, headers, body, content_type));
    if (method == "PUT") return From(client_->Put(path, headers, body, content_type));
    if (method == "PATCH") return From(client_->Patch(path, headers, body, content_type));
    if (method == "DELETE") return From(client_->Delete(path, headers));
    ADD_FAILURE() << "no method " << method;
    return Http{};
  }
  Http Control(const std::string& method, const std::string& path, const std::string& body = "") {
    return Send(method, path, body, {});
  }

  Http TokenRequest(const std::string& form, const std::string& tenant = "fake-tenant",
                    const char* endpoint = "oauth2/v2.0/token") {
    return Send("POST", "/" + tenant + "/" + endpoint, form, {},
                "application/x-www-form-urlencoded");
  }
  static std::string SecretForm(const std::string& secret = "fake-secret") {
    return "grant_type=client_credentials&client_id=fake-client&client_secret=" + secret +
           "&scope=https%3A%2F%2Fmanagement.core.windows.net%2F%2F.default";
  }
  std::string NewToken() {
    Http r = TokenRequest(SecretForm());
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json().value("access_token", "");
  }
  const std::string& Token() {
    if (token_.empty()) token_ = NewToken();
    return token_;
  }
  Http Arm(const std::string& method, const std::string& path, const std::string& body = "",
           httplib::Headers extra = {}) {
    extra.emplace("Authorization", "Bearer " + Token());
    return Send(method, path, body, extra);
  }

  static std::string PoolPath(const std::string& pool) {
    return absl::StrCat(kCluster, "/agentPools/", pool, kApi);
  }
  Http PutPool(const std::string& pool, const std::string& body = PoolBody()) {
    return Arm("PUT", PoolPath(pool), body);
  }
  // The pool's provisioningState, or "absent" on a 404.
  std::string StateOf(const std::string& pool) {
    Http r = Arm("GET", PoolPath(pool));
    if (r.status == 404) return "absent";
    return r.json()["properties"].value("provisioningState", "?");
  }
  bool WaitForState(const std::string& pool, const std::string& state,
                    absl::Duration deadline = absl::Seconds(10)) {
    return kaito::testing::WaitFor([&] { return StateOf(pool) == state; }, deadline);
  }
  // The path and query of an absolute URL the fake handed out.
  std::string Local(const std::string& url) {
    const std::string base = absl::StrCat("http://127.0.0.1:", fake_->port());
    EXPECT_THAT(url, StartsWith(base));
    return url.substr(base.size());
  }
  Json Journal(const std::string& query = "") {
    return Control("GET", "/_fake/requests" + query).json();
  }
  int64_t AddFault(const std::string& rule) {
    Http r = Control("POST", "/_fake/faults", rule);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json().value("id", int64_t{-1});
  }

  std::unique_ptr<FakeArm> fake_;
  std::unique_ptr<httplib::Client> client_;
  std::string token_;
};

// --- Tokens ---------------------------------------------------------------------------

TEST_F(FakeArmTest, ClientSecretTokenIsV2ShapedAndCounted) {
  Http r = TokenRequest(SecretForm());
  ASSERT_EQ(r.status, 200) << r.body;
  Json body = r.json();
  EXPECT_EQ(body["token_type"], "Bearer");
  EXPECT_EQ(body["expires_in"], 3599);
  EXPECT_EQ(body["ext_expires_in"], 3599);
  EXPECT_THAT(body["access_token"].get<std::string>(), StartsWith("fake."));
  EXPECT_THAT(r.header("Content-Type"), StartsWith("application/json"));
  Json stats = Control("GET", "/_fake/tokens").json();
  EXPECT_EQ(stats["issued"], 1);
  EXPECT_EQ(stats["by_grant"]["client_secret"], 1);
  EXPECT_EQ(stats["by_grant"]["client_assertion"], 0);
}

TEST_F(FakeArmTest, TokenErrorsAreAadShaped) {
  Http wrong_secret = TokenRequest(SecretForm("nope"));
  EXPECT_EQ(wrong_secret.status, 401);
  EXPECT_EQ(wrong_secret.json()["error"], "invalid_client");
  EXPECT_EQ(wrong_secret.json()["error_codes"], Json::array({7000215}));
  EXPECT_THAT(wrong_secret.json()["error_description"].get<std::string>(),
              StartsWith("AADSTS7000215: Invalid client secret provided"));
  EXPECT_TRUE(wrong_secret.json().contains("trace_id"));

  Http wrong_tenant = TokenRequest(SecretForm(), "other-tenant");
  EXPECT_EQ(wrong_tenant.status, 400);
  EXPECT_EQ(wrong_tenant.json()["error"], "invalid_request");
  EXPECT_EQ(wrong_tenant.json()["error_codes"], Json::array({90002}));

  Http wrong_client = TokenRequest(
      "grant_type=client_credentials&client_id=someone&client_secret=fake-secret&scope=a/.default");
  EXPECT_EQ(wrong_client.status, 400);
  EXPECT_EQ(wrong_client.json()["error"], "unauthorized_client");

  Http bad_scope = TokenRequest(
      "grant_type=client_credentials&client_id=fake-client&client_secret=fake-secret&scope=user."
      "read");
  EXPECT_EQ(bad_scope.status, 400);
  EXPECT_EQ(bad_scope.json()["error"], "invalid_scope");

  Http no_credential =
      TokenRequest("grant_type=client_credentials&client_id=fake-client&scope=a/.default");
  EXPECT_EQ(no_credential.status, 400);
  EXPECT_EQ(no_credential.json()["error"], "invalid_client");
  EXPECT_EQ(no_credential.json()["error_codes"], Json::array({7000218}));

  Http wrong_grant = TokenRequest(
      "grant_type=password&client_id=fake-client&client_secret=fake-secret&scope=a/.default");
  EXPECT_EQ(wrong_grant.status, 400);
  EXPECT_EQ(wrong_grant.json()["error"], "unsupported_grant_type");

  EXPECT_EQ(Control("GET", "/_fake/tokens").json()["issued"], 0);
}

TEST_F(FakeArmTest, V1TokenEndpointWritesStrings) {
  const int64_t before = absl::ToUnixSeconds(absl::Now());
  Http r = TokenRequest(
      "grant_type=client_credentials&client_id=fake-client&client_secret=fake-secret"
      "&resource=https%3A%2F%2Fmanagement.azure.com%2F",
      "fake-tenant", "oauth2/token");
  ASSERT_EQ(r.status, 200) << r.body;
  Json body = r.json();
  EXPECT_EQ(body["expires_in"], "3599");
  EXPECT_EQ(body["resource"], "https://management.azure.com/");
  int64_t expires_on = 0;
  ASSERT_TRUE(absl::SimpleAtoi(body["expires_on"].get<std::string>(), &expires_on));
  EXPECT_GE(expires_on, before + 3599);
  EXPECT_LE(expires_on, before + 3599 + 5);
  // v1 needs resource=.
  Http missing =
      TokenRequest("grant_type=client_credentials&client_id=fake-client&client_secret=fake-secret",
                   "fake-tenant", "oauth2/token");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.json()["error"], "invalid_request");
}

TEST_F(FakeArmTest, FederatedAssertionMustMatchTheFileAsItIsNow) {
  kaito::testing::TempDir dir;
  const std::string file = dir.File("azure-identity-token");
  std::ofstream(file) << "jwt-one\n";
  FakeArmOptions options;
  options.federated_token_file = file;
  StartFake(options);
  auto assertion_form = [](const std::string& assertion) {
    return "grant_type=client_credentials&client_id=fake-client&scope=a%2F.default"
           "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
           "&client_assertion=" +
           assertion;
  };
  EXPECT_EQ(TokenRequest(assertion_form("jwt-one")).status, 200);
  Http wrong = TokenRequest(assertion_form("jwt-two"));
  EXPECT_EQ(wrong.status, 400);
  EXPECT_EQ(wrong.json()["error"], "invalid_client");
  EXPECT_EQ(wrong.json()["error_codes"], Json::array({70021}));
  // Rotated on disk: the new content is accepted at once, the old one no longer.
  std::ofstream(file, std::ios::trunc) << "jwt-two";
  EXPECT_EQ(TokenRequest(assertion_form("jwt-two")).status, 200);
  EXPECT_EQ(TokenRequest(assertion_form("jwt-one")).status, 400);
  EXPECT_EQ(Control("GET", "/_fake/tokens").json()["by_grant"]["client_assertion"], 2);
}

TEST_F(FakeArmTest, AnyAssertionWithoutATokenFile) {
  Http r = TokenRequest(
      "grant_type=client_credentials&client_id=fake-client&scope=a%2F.default"
      "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
      "&client_assertion=anything");
  EXPECT_EQ(r.status, 200) << r.body;
  Http wrong_type = TokenRequest(
      "grant_type=client_credentials&client_id=fake-client&scope=a%2F.default"
      "&client_assertion_type=other&client_assertion=anything");
  EXPECT_EQ(wrong_type.status, 400);
}

TEST_F(FakeArmTest, ImdsTokenNeedsTheMetadataHeaderAndWorksOnArm) {
  const std::string path =
      "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://"
      "management.azure.com/";
  Http no_header = Send("GET", path, "", {});
  EXPECT_EQ(no_header.status, 400);
  EXPECT_EQ(no_header.json(),
            Json({{"error", "invalid_request"},
                  {"error_description", "Required metadata header not specified"}}));
  Http r = Send("GET", path, "", {{"Metadata", "true"}});
  ASSERT_EQ(r.status, 200) << r.body;
  Json body = r.json();
  for (const char* key : {"access_token", "expires_in", "expires_on", "resource", "token_type"}) {
    EXPECT_TRUE(body[key].is_string()) << key;
  }
  EXPECT_EQ(body["expires_in"], "3599");
  EXPECT_EQ(body["resource"], "https://management.azure.com/");
  Http cluster = Send("GET", std::string(kCluster) + kApi, "",
                      {{"Authorization", "Bearer " + body["access_token"].get<std::string>()}});
  EXPECT_EQ(cluster.status, 200);
  EXPECT_EQ(Control("GET", "/_fake/tokens").json()["by_grant"]["managed_identity"], 1);
}

TEST_F(FakeArmTest, ImdsTokenChecksTheConfiguredIdentity) {
  FakeArmOptions options;
  options.managed_identity_client_id = "uami-1";
  StartFake(options);
  const std::string path =
      "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://"
      "management.azure.com/";
  EXPECT_EQ(Send("GET", path + "&client_id=uami-1", "", {{"Metadata", "true"}}).status, 200);
  EXPECT_EQ(Send("GET", path, "", {{"Metadata", "true"}}).json()["client_id"], "uami-1");
  Http other = Send("GET", path + "&client_id=uami-2", "", {{"Metadata", "true"}});
  EXPECT_EQ(other.status, 400);
  EXPECT_EQ(other.json()["error_description"], "Identity not found");
}

TEST_F(FakeArmTest, ImdsInstanceDocumentLeavesAndReplacement) {
  const httplib::Headers md = {{"Metadata", "true"}};
  Http doc = Send("GET", "/metadata/instance?api-version=2021-02-01", "", md);
  ASSERT_EQ(doc.status, 200);
  Json compute = doc.json()["compute"];
  EXPECT_EQ(compute["vmSize"], kA100);
  EXPECT_EQ(compute["location"], "eastus");
  EXPECT_EQ(compute["osType"], "Linux");
  EXPECT_EQ(compute["zone"], "");
  EXPECT_EQ(compute["subscriptionId"], "fake-sub");
  EXPECT_EQ(compute["resourceGroupName"], "MC_fake-rg_fake-aks_eastus");
  EXPECT_THAT(compute["vmScaleSetName"].get<std::string>(), StartsWith("aks-gpu-"));
  EXPECT_THAT(compute["resourceId"].get<std::string>(), HasSubstr("/virtualMachines/0"));
  EXPECT_TRUE(doc.json()["network"]["interface"].is_array());

  Http leaf =
      Send("GET", "/metadata/instance/compute/vmSize?api-version=2021-02-01&format=text", "", md);
  EXPECT_EQ(leaf.status, 200);
  EXPECT_EQ(leaf.body, kA100);
  Http ip = Send("GET",
                 "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress"
                 "?api-version=2021-02-01&format=text",
                 "", md);
  EXPECT_EQ(ip.body, "10.224.0.4");
  EXPECT_EQ(Send("GET", "/metadata/instance/compute/nope?api-version=2021-02-01", "", md).status,
            404);
  EXPECT_EQ(Send("GET", "/metadata/instance?api-version=2021-02-01", "", {}).status, 400);
  EXPECT_EQ(Send("GET", "/metadata/instance", "", md).status, 400);

  ASSERT_EQ(
      Control("PUT", "/_fake/imds", R"({"compute":{"vmSize":"Standard_NV36ads_A10_v5"}})").status,
      200);
  EXPECT_EQ(
      Send("GET", "/metadata/instance/compute/vmSize?api-version=2021-02-01&format=text", "", md)
          .body,
      "Standard_NV36ads_A10_v5");
  EXPECT_EQ(Control("PUT", "/_fake/imds", "[1,2]").status, 400);
}

// --- Common request handling ------------------------------------------------------------

TEST_F(FakeArmTest, EveryResponseCarriesArmHeaders) {
  Http get =
      Arm("GET", std::string(kCluster) + kApi, "", {{"x-ms-correlation-request-id", "corr-123"}});
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ(get.header("Content-Type"), "application/json; charset=utf-8");
  EXPECT_TRUE(std::regex_match(get.header("x-ms-request-id"),
                               std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                          "[0-9a-f]{12}")))
      << get.header("x-ms-request-id");
  EXPECT_EQ(get.header("x-ms-correlation-request-id"), "corr-123");
  EXPECT_EQ(get.header("x-ms-ratelimit-remaining-subscription-reads"), "11999");

  Http put = PutPool("gpu1");
  EXPECT_EQ(put.header("x-ms-ratelimit-remaining-subscription-writes"), "11999");
  EXPECT_FALSE(put.header("x-ms-correlation-request-id").empty());
  EXPECT_NE(put.header("x-ms-request-id"), get.header("x-ms-request-id"));
  Http del = Arm("DELETE", PoolPath("gpu1"));
  EXPECT_EQ(del.header("x-ms-ratelimit-remaining-subscription-deletes"), "11999");
  // Errors and control calls too.
  EXPECT_FALSE(Control("GET", "/_fake/healthz").header("x-ms-request-id").empty());
  EXPECT_EQ(TokenRequest(SecretForm("bad")).header("Content-Type"),
            "application/json; charset=utf-8");
}

TEST_F(FakeArmTest, BearerTokenMissingUnknownAndExpired) {
  const std::string path = std::string(kCluster) + kApi;
  Http missing = Send("GET", path, "", {});
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.code(), "InvalidAuthenticationToken");
  EXPECT_EQ(missing.header("x-ms-error-code"), "InvalidAuthenticationToken");
  EXPECT_THAT(missing.header("WWW-Authenticate"),
              StartsWith("Bearer authorization_uri=\"http://127.0.0.1:"));
  Http unknown = Send("GET", path, "", {{"Authorization", "Bearer fake.nope"}});
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(unknown.code(), "InvalidAuthenticationToken");
  EXPECT_TRUE(unknown.has_header("WWW-Authenticate"));

  const std::string old_token = Token();
  EXPECT_EQ(Arm("GET", path).status, 200);
  ASSERT_EQ(Control("POST", "/_fake/tokens/expire").status, 200);
  Http expired = Arm("GET", path);
  EXPECT_EQ(expired.status, 401);
  EXPECT_EQ(expired.code(), "ExpiredAuthenticationToken");
  EXPECT_TRUE(expired.has_header("WWW-Authenticate"));
  // A token issued after the expiry works.
  token_ = NewToken();
  EXPECT_NE(token_, old_token);
  EXPECT_EQ(Arm("GET", path).status, 200);
}

TEST_F(FakeArmTest, TokensExpireAfterTheirTtlOnTheClock) {
  FakeClock clock;
  FakeArmOptions options;
  options.clock = &clock;
  StartFake(options);
  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"token_ttl_s":400})").status, 200);
  Http token = TokenRequest(SecretForm());
  EXPECT_EQ(token.json()["expires_in"], 400);
  EXPECT_EQ(Arm("GET", std::string(kCluster) + kApi).status, 200);
  clock.Advance(absl::Seconds(399));
  EXPECT_EQ(Arm("GET", std::string(kCluster) + kApi).status, 200);
  clock.Advance(absl::Seconds(1));
  Http expired = Arm("GET", std::string(kCluster) + kApi);
  EXPECT_EQ(expired.status, 401);
  EXPECT_EQ(expired.code(), "ExpiredAuthenticationToken");
}

TEST_F(FakeArmTest, ApiVersionIsRequiredAndChecked) {
  Http missing = Arm("GET", kCluster);
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.code(), "MissingApiVersionParameter");
  EXPECT_EQ(missing.header("x-ms-error-code"), "MissingApiVersionParameter");
  Http wrong = Arm("GET", std::string(kCluster) + "?api-version=2019-01-01");
  EXPECT_EQ(wrong.status, 400);
  EXPECT_EQ(wrong.code(), "InvalidApiVersionParameter");
  // Compute takes its own versions.
  const std::string vmss =
      std::string(kNodeGroup) + "/providers/Microsoft.Compute/virtualMachineScaleSets";
  EXPECT_EQ(Arm("GET", vmss + kComputeApi).status, 200);
  EXPECT_EQ(Arm("GET", vmss + "?api-version=2023-09-01").status, 200);
  EXPECT_EQ(Arm("GET", vmss + kApi).code(), "InvalidApiVersionParameter");
}

TEST_F(FakeArmTest, ConfiguredApiVersionsReplaceTheDefault) {
  FakeArmOptions options;
  options.api_versions = {"2024-02-01", "2024-05-01"};
  StartFake(options);
  EXPECT_EQ(Arm("GET", std::string(kCluster) + "?api-version=2024-05-01").status, 200);
  EXPECT_EQ(Arm("GET", std::string(kCluster) + kApi).code(), "InvalidApiVersionParameter");
}

TEST_F(FakeArmTest, UnknownScopesAre404AndPathsAreCaseInsensitive) {
  Http sub = Arm("GET",
                 "/subscriptions/other/resourceGroups/fake-rg/providers/"
                 "Microsoft.ContainerService/managedClusters/fake-aks?api-version=2024-01-01");
  EXPECT_EQ(sub.status, 404);
  EXPECT_EQ(sub.code(), "ResourceNotFound");
  Http rg = Arm("GET",
                "/subscriptions/fake-sub/resourceGroups/other/providers/"
                "Microsoft.ContainerService/managedClusters/fake-aks?api-version=2024-01-01");
  EXPECT_EQ(rg.code(), "ResourceNotFound");
  Http cluster = Arm("GET",
                     "/subscriptions/fake-sub/resourceGroups/fake-rg/providers/"
                     "Microsoft.ContainerService/managedClusters/other/agentPools"
                     "?api-version=2024-01-01");
  EXPECT_EQ(cluster.status, 404);
  EXPECT_EQ(cluster.code(), "ResourceNotFound");
  Http lower = Arm("GET",
                   "/SUBSCRIPTIONS/FAKE-SUB/resourcegroups/Fake-RG/providers/"
                   "microsoft.containerservice/managedclusters/FAKE-AKS/agentpools/NodePool1"
                   "?api-version=2024-01-01");
  EXPECT_EQ(lower.status, 200) << lower.body;
  EXPECT_EQ(lower.json()["name"], "nodepool1");
  EXPECT_EQ(Arm("GET", "/subscriptions/fake-sub/whatever?api-version=2024-01-01").status, 404);
  EXPECT_EQ(Arm("PATCH", PoolPath("nodepool1"), "{}").status, 405);
}

// --- Managed cluster and agent pools ---------------------------------------------------

TEST_F(FakeArmTest, ManagedClusterAndSeedPool) {
  Http cluster = Arm("GET", std::string(kCluster) + kApi);
  ASSERT_EQ(cluster.status, 200);
  Json c = cluster.json();
  EXPECT_EQ(c["name"], "fake-aks");
  EXPECT_EQ(c["location"], "eastus");
  EXPECT_EQ(c["type"], "Microsoft.ContainerService/ManagedClusters");
  EXPECT_EQ(c["properties"]["provisioningState"], "Succeeded");
  EXPECT_EQ(c["properties"]["kubernetesVersion"], "1.29.2");
  EXPECT_EQ(c["properties"]["nodeResourceGroup"], "MC_fake-rg_fake-aks_eastus");

  Http seed = Arm("GET", PoolPath("nodepool1"));
  ASSERT_EQ(seed.status, 200);
  Json p = seed.json();
  EXPECT_EQ(p["properties"]["mode"], "System");
  EXPECT_EQ(p["properties"]["vmSize"], "Standard_D2s_v3");
  EXPECT_EQ(p["properties"]["provisioningState"], "Succeeded");
  EXPECT_FALSE(p["properties"].contains("nodeLabels"));
}

TEST_F(FakeArmTest, PutValidationNamesTheTarget) {
  struct Case {
    std::string pool;
    std::string body;
    std::string target;
  };
  const std::vector<Case> cases = {
      {"GPU1", PoolBody(), "name"},
      {"toolongname12", PoolBody(), "name"},
      {"1gpu", PoolBody(), "name"},
      {"gpu1", PoolBody("Standard_Nope_v9"), "properties.vmSize"},
      {"gpu1", R"({"properties":{"count":1}})", "properties.vmSize"},
      {"gpu1", PoolBody(kA100, 1001), "properties.count"},
      {"gpu1", PoolBody(kA100, -1), "properties.count"},
      {"gpu1", PoolBody(kA100, 1, {{"osDiskSizeGB", 10}}), "properties.osDiskSizeGB"},
      {"gpu1", PoolBody(kA100, 1, {{"osDiskSizeGB", 4096}}), "properties.osDiskSizeGB"},
      {"gpu1", PoolBody(kA100, 1, {{"nodeTaints", {"sku=gpu"}}}), "properties.nodeTaints"},
      {"gpu1", PoolBody(kA100, 1, {{"nodeTaints", {"sku=gpu:Sometimes"}}}),
       "properties.nodeTaints"},
      {"gpu1", R"({"tags":{}})", "properties"},
      {"gpu1", "{not json", "parameters"},
      {"gpu1", "[]", "parameters"},
  };
  for (const Case& c : cases) {
    Http r = PutPool(c.pool, c.body);
    EXPECT_EQ(r.status, 400) << c.pool << " " << c.body;
    EXPECT_EQ(r.code(), "InvalidParameter") << c.body;
    EXPECT_EQ(r.json()["error"].value("target", ""), c.target) << c.body;
    EXPECT_FALSE(r.json()["error"].value("message", "").empty());
  }
  EXPECT_EQ(Arm("GET", std::string(kCluster) + "/agentPools" + kApi).json()["value"].size(), 1u);
  // The system pools' CPU sizes and a name of 12 characters are fine.
  EXPECT_EQ(PutPool("sys2", PoolBody("Standard_D2s_v3")).status, 201);
  EXPECT_EQ(PutPool("abcdefghijkl", PoolBody("standard_nc24ads_a100_v4")).status, 201);
}

TEST_F(FakeArmTest, CreateRunsTheAsyncOperationToSucceeded) {
  Http put = PutPool("gpu1", Json{{"properties", Json::parse(PoolBody())["properties"]},
                                  {"tags", {{"team", "ml"}}}}
                                 .dump());
  ASSERT_EQ(put.status, 201) << put.body;
  EXPECT_EQ(put.json()["properties"]["provisioningState"], "Creating");
  EXPECT_EQ(put.header("Retry-After"), "1");
  const std::string async = put.header("Azure-AsyncOperation");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      async, m,
      std::regex("http://127\\.0\\.0\\.1:[0-9]+/subscriptions/fake-sub/providers/"
                 "Microsoft\\.ContainerService/locations/eastus/operations/([0-9a-f-]{36})"
                 "\\?api-version=2016-03-30")))
      << async;
  const std::string op_id = m[1];

  Http poll = Arm("GET", Local(async));
  ASSERT_EQ(poll.status, 200);
  // The 50 ms may have passed already; either way the status is a valid one.
  if (poll.json()["status"] == "InProgress") {
    EXPECT_EQ(poll.header("Retry-After"), "1");
  }
  EXPECT_EQ(poll.json()["name"], op_id);
  EXPECT_FALSE(poll.json().value("startTime", "").empty());

  ASSERT_TRUE(WaitForState("gpu1", "Succeeded"));
  Http done = Arm("GET", Local(async));
  EXPECT_EQ(done.json()["status"], "Succeeded");
  EXPECT_FALSE(done.json().value("endTime", "").empty());
  EXPECT_FALSE(done.has_header("Retry-After"));

  Json pool = Arm("GET", PoolPath("gpu1")).json();
  EXPECT_EQ(pool["id"],
            "/subscriptions/fake-sub/resourcegroups/fake-rg/providers/"
            "Microsoft.ContainerService/managedClusters/fake-aks/agentPools/gpu1");
  EXPECT_EQ(pool["name"], "gpu1");
  EXPECT_EQ(pool["type"], "Microsoft.ContainerService/managedClusters/agentPools");
  EXPECT_EQ(pool["tags"], Json({{"team", "ml"}}));
  Json props = pool["properties"];
  EXPECT_EQ(props["count"], 1);
  EXPECT_EQ(props["vmSize"], kA100);
  EXPECT_EQ(props["osSKU"], "Ubuntu");
  EXPECT_EQ(props["osDiskSizeGB"], 1024);
  EXPECT_EQ(props["nodeLabels"]["kaito.sh/workspace"], "ws1");
  EXPECT_EQ(props["nodeTaints"], Json::array({"sku=gpu:NoSchedule"}));
  EXPECT_EQ(props["mode"], "User");
  EXPECT_EQ(props["maxPods"], 110);
  EXPECT_EQ(props["powerState"]["code"], "Running");
  EXPECT_FALSE(props.value("nodeImageVersion", "").empty());
  EXPECT_FALSE(props.value("currentOrchestratorVersion", "").empty());

  // The operation-result form of the same operation.
  Http result = Arm("GET", absl::StrCat("/subscriptions/fake-sub/providers/"
                                        "Microsoft.ContainerService/locations/eastus/"
                                        "operationresults/",
                                        op_id, "?api-version=2016-03-30"));
  EXPECT_EQ(result.status, 204);
}

TEST_F(FakeArmTest, ComputeViewsOfAPoolsVms) {
  ASSERT_EQ(PutPool("gpu1", PoolBody(kA100, 2)).status, 201);
  const std::string vmss_list = std::string(kNodeGroup) +
                                "/providers/Microsoft.Compute/virtualMachineScaleSets" +
                                kComputeApi;
  // While Creating, no VMs exist yet.
  Json creating = Arm("GET", vmss_list).json()["value"];
  for (const Json& v : creating) EXPECT_NE(v["tags"]["aks-managed-poolName"], "gpu1");
  ASSERT_TRUE(WaitForState("gpu1", "Succeeded"));

  Json sets = Arm("GET", vmss_list).json()["value"];
  const Json* gpu = nullptr;
  for (const Json& v : sets) {
    if (v["tags"]["aks-managed-poolName"] == "gpu1") gpu = &v;
  }
  ASSERT_NE(gpu, nullptr) << sets.dump();
  const std::string name = (*gpu)["name"];
  EXPECT_TRUE(std::regex_match(name, std::regex("aks-gpu1-[0-9]{8}-vmss"))) << name;
  EXPECT_EQ((*gpu)["sku"]["name"], kA100);
  EXPECT_EQ((*gpu)["sku"]["tier"], "Standard");
  EXPECT_EQ((*gpu)["sku"]["capacity"], 2);
  EXPECT_EQ((*gpu)["tags"]["aks-managed-orchestrator"], "Kubernetes");
  EXPECT_EQ((*gpu)["location"], "eastus");

  Http vms =
      Arm("GET", std::string(kNodeGroup) + "/providers/Microsoft.Compute/virtualMachineScaleSets/" +
                     name + "/virtualMachines" + kComputeApi);
  ASSERT_EQ(vms.status, 200);
  Json value = vms.json()["value"];
  ASSERT_EQ(value.size(), 2u);
  EXPECT_EQ(value[0]["id"],
            "/subscriptions/fake-sub/resourceGroups/mc_fake-rg_fake-aks_eastus/"
            "providers/Microsoft.Compute/virtualMachineScaleSets/" +
                name + "/virtualMachines/0");
  EXPECT_EQ(value[0]["name"], name + "_0");
  EXPECT_EQ(value[0]["instanceId"], "0");
  EXPECT_EQ(value[0]["properties"]["provisioningState"], "Succeeded");
  EXPECT_EQ(value[0]["properties"]["osProfile"]["computerName"], name + "000000");
  EXPECT_EQ(value[1]["properties"]["osProfile"]["computerName"], name + "000001");
  // The digits are a stable hash: the same pool name gives the same set name.
  ASSERT_EQ(Arm("DELETE", PoolPath("gpu1")).status, 202);
  ASSERT_TRUE(WaitForState("gpu1", "absent"));
  ASSERT_EQ(PutPool("gpu1", PoolBody(kA100, 1)).status, 201);
  ASSERT_TRUE(WaitForState("gpu1", "Succeeded"));
  EXPECT_EQ(
      Arm("GET", std::string(kNodeGroup) + "/providers/Microsoft.Compute/virtualMachineScaleSets/" +
                     name + "/virtualMachines" + kComputeApi)
          .json()["value"]
          .size(),
      1u);
  Http unknown = Arm("GET", std::string(kNodeGroup) +
                                "/providers/Microsoft.Compute/virtualMachineScaleSets/"
                                "aks-nope-00000000-vmss/virtualMachines" +
                                kComputeApi);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.code(), "ResourceNotFound");
}

TEST_F(FakeArmTest, PutWhileInProgressIs409AndUpdateScales) {
  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"prov_delay_ms":60000})").status, 200);
  ASSERT_EQ(PutPool("gpu1").status, 201);
  Http again = PutPool("gpu1");
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.code(), "OperationNotAllowed");
  EXPECT_THAT(again.json()["error"]["message"].get<std::string>(),
              HasSubstr("Operation is not allowed because there's an in progress create node "
                        "pool operation"));
  ASSERT_EQ(Control("POST", "/_fake/pools/gpu1/complete").status, 200);
  EXPECT_EQ(StateOf("gpu1"), "Succeeded");

  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"upd_delay_ms":50})").status, 200);
  Http update = PutPool("gpu1", PoolBody(kA100, 2));
  ASSERT_EQ(update.status, 200) << update.body;
  EXPECT_EQ(update.json()["properties"]["provisioningState"], "Updating");
  EXPECT_EQ(update.json()["properties"]["count"], 2);
  EXPECT_THAT(update.header("Azure-AsyncOperation"), HasSubstr("/operations/"));
  ASSERT_TRUE(WaitForState("gpu1", "Succeeded"));
  Json state = Control("GET", "/_fake/state").json();
  for (const Json& pool : state["pools"]) {
    if (pool["name"] == "gpu1") {
      EXPECT_EQ(pool["vms"], 2);
      EXPECT_EQ(pool["op"]["kind"], "update");
      EXPECT_EQ(pool["op"]["status"], "Succeeded");
    }
  }
}

TEST_F(FakeArmTest, DeleteRunsToAbsentThrough202AndLocation) {
  ASSERT_EQ(PutPool("gpu1").status, 201);
  ASSERT_TRUE(WaitForState("gpu1", "Succeeded"));
  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"del_delay_ms":60000})").status, 200);
  Http del = Arm("DELETE", PoolPath("gpu1"));
  ASSERT_EQ(del.status, 202);
  EXPECT_EQ(del.header("Retry-After"), "1");
  const std::string location = del.header("Location");
  EXPECT_TRUE(std::regex_match(
      location, std::regex("http://127\\.0\\.0\\.1:[0-9]+/subscriptions/fake-sub/providers/"
                           "Microsoft\\.ContainerService/locations/eastus/operationresults/"
                           "[0-9a-f-]{36}\\?api-version=2016-03-30")))
      << location;
  EXPECT_EQ(StateOf("gpu1"), "Deleting");
  Http running = Arm("GET", Local(location));
  EXPECT_EQ(running.status, 202);
  EXPECT_EQ(running.header("Retry-After"), "1");
  // Deleting again answers with the same operation.
  Http again = Arm("DELETE", PoolPath("gpu1"));
  EXPECT_EQ(again.status, 202);
  EXPECT_EQ(again.header("Location"), location);
  // A PUT meanwhile is refused.
  EXPECT_THAT(PutPool("gpu1").json()["error"]["message"].get<std::string>(),
              HasSubstr("in progress delete node pool operation"));

  ASSERT_EQ(Control("POST", "/_fake/pools/gpu1/complete").status, 200);
  Http gone = Arm("GET", PoolPath("gpu1"));
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.code(), "NotFound");
  EXPECT_EQ(gone.json()["error"]["message"], "Agent Pool not found: gpu1");
  EXPECT_EQ(Arm("GET", Local(location)).status, 204);

  // Absent: 204 by default, 404 when configured.
  EXPECT_EQ(Arm("DELETE", PoolPath("gpu1")).status, 204);
  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"delete_absent":"404"})").status, 200);
  Http absent = Arm("DELETE", PoolPath("gpu1"));
  EXPECT_EQ(absent.status, 404);
  EXPECT_EQ(absent.code(), "NotFound");
}

TEST_F(FakeArmTest, DeleteWhileCreatingPreemptsOrConflicts) {
  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"prov_delay_ms":60000})").status, 200);
  Http put = PutPool("gpu1");
  ASSERT_EQ(put.status, 201);
  Http del = Arm("DELETE", PoolPath("gpu1"));
  ASSERT_EQ(del.status, 202);
  Json create = Arm("GET", Local(put.header("Azure-AsyncOperation"))).json();
  EXPECT_EQ(create["status"], "Canceled");
  EXPECT_EQ(create["error"]["code"], "AKSOperationPreemptedByDelete");
  ASSERT_TRUE(WaitForState("gpu1", "absent"));

  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"delete_creating":"conflict"})").status, 200);
  ASSERT_EQ(PutPool("gpu2").status, 201);
  Http conflict = Arm("DELETE", PoolPath("gpu2"));
  EXPECT_EQ(conflict.status, 409);
  EXPECT_EQ(conflict.code(), "OperationNotAllowed");
  EXPECT_EQ(StateOf("gpu2"), "Creating");
}

TEST_F(FakeArmTest, ListPagesWithAbsoluteNextLinks) {
  for (const char* pool : {"gpu1", "gpu2", "gpu3"}) ASSERT_EQ(PutPool(pool).status, 201);
  Json all = Arm("GET", std::string(kCluster) + "/agentPools" + kApi).json();
  EXPECT_EQ(all["value"].size(), 4u);
  EXPECT_FALSE(all.contains("nextLink"));

  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"list_page_size":3})").status, 200);
  std::vector<std::string> names;
  std::string next = std::string(kCluster) + "/agentPools" + kApi;
  int pages = 0;
  while (!next.empty() && pages < 10) {
    Http page = Arm("GET", next);
    ASSERT_EQ(page.status, 200) << page.body;
    ++pages;
    const Json body = page.json();
    for (const Json& p : body["value"]) names.push_back(p["name"]);
    const std::string link = body.value("nextLink", "");
    if (!link.empty()) {
      EXPECT_THAT(link, HasSubstr("api-version=2024-01-01"));
      EXPECT_THAT(link, HasSubstr("$skipToken=3"));
      next = Local(link);
    } else {
      next.clear();
    }
  }
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(names, (std::vector<std::string>{"gpu1", "gpu2", "gpu3", "nodepool1"}));
}

// --- Quota -------------------------------------------------------------------------------

TEST_F(FakeArmTest, UsagesCountPoolsAndSyncQuotaRefuses) {
  ASSERT_EQ(
      Control("PUT", "/_fake/config", R"({"quotas":{"standardNCADSA100v4Family":24}})").status,
      200);
  ASSERT_EQ(PutPool("gpu1").status, 201);
  const std::string usages =
      "/subscriptions/fake-sub/providers/Microsoft.Compute/locations/"
      "eastus/usages" +
      std::string(kComputeApi);
  Json value = Arm("GET", usages).json()["value"];
  ASSERT_FALSE(value.empty());
  bool found = false;
  for (const Json& u : value) {
    if (u["name"]["value"] == "standardNCADSA100v4Family") {
      found = true;
      EXPECT_EQ(u["name"]["localizedValue"], "Standard NCADS_A100_v4 Family vCPUs");
      EXPECT_EQ(u["currentValue"], 24);
      EXPECT_EQ(u["limit"], 24);
      EXPECT_EQ(u["unit"], "Count");
    }
  }
  EXPECT_TRUE(found);
  const Json& cores = value.back();
  EXPECT_EQ(cores["name"]["value"], "cores");
  EXPECT_EQ(cores["name"]["localizedValue"], "Total Regional vCPUs");
  EXPECT_EQ(cores["currentValue"], 26);  // nodepool1's 2 + 24
  EXPECT_EQ(cores["limit"], 1000);

  Http over = PutPool("gpu2");
  EXPECT_EQ(over.status, 409);
  EXPECT_EQ(over.code(), "OperationNotAllowed");
  const std::string message = over.json()["error"]["message"];
  EXPECT_THAT(message, HasSubstr("exceeding approved standardNCADSA100v4Family Cores quota"));
  EXPECT_THAT(message, HasSubstr("Location: eastus, Current Limit: 24, Current Usage: 24, "
                                 "Additional Required: 24, (Minimum) New Limit Required: 48."));
  EXPECT_THAT(message, HasSubstr("Submit a request for Quota increase"));
  EXPECT_EQ(StateOf("gpu2"), "absent");
  // Re-PUT of the same pool at the same size needs nothing more.
  ASSERT_TRUE(WaitForState("gpu1", "Succeeded"));
  EXPECT_EQ(PutPool("gpu1").status, 200);
}

TEST_F(FakeArmTest, RegionalCoresQuota) {
  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"quotas":{"cores":20}})").status, 200);
  Http over = PutPool("gpu1");
  EXPECT_EQ(over.status, 409);
  EXPECT_THAT(over.json()["error"]["message"].get<std::string>(),
              HasSubstr("exceeding approved Total Regional Cores quota"));
  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"quota_mode":"off"})").status, 200);
  EXPECT_EQ(PutPool("gpu1").status, 201);
}

TEST_F(FakeArmTest, AsyncQuotaFailsTheOperationAndLeavesAFailedPool) {
  FakeArmOptions options;
  options.vcpu_quota = {{"standardNCADSA100v4Family", 0}};
  StartFake(options);
  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"quota_mode":"async"})").status, 200);
  Http put = PutPool("gpu1");
  ASSERT_EQ(put.status, 201) << put.body;
  ASSERT_TRUE(WaitForState("gpu1", "Failed"));
  Json op = Arm("GET", Local(put.header("Azure-AsyncOperation"))).json();
  EXPECT_EQ(op["status"], "Failed");
  EXPECT_EQ(op["error"]["code"], "QuotaExceeded");
  EXPECT_THAT(op["error"]["message"].get<std::string>(), HasSubstr("Current Limit: 0"));
  EXPECT_EQ(Arm("GET", PoolPath("gpu1")).json()["properties"]["count"], 0);
  Json sets = Arm("GET", std::string(kNodeGroup) +
                             "/providers/Microsoft.Compute/virtualMachineScaleSets" + kComputeApi)
                  .json()["value"];
  for (const Json& v : sets) EXPECT_NE(v["tags"]["aks-managed-poolName"], "gpu1");
}

// --- Faults ------------------------------------------------------------------------------

TEST_F(FakeArmTest, StatusFaultAnswersWithoutStateChangeAndCountsTimes) {
  const int64_t id =
      AddFault(R"({"match":{"op":"pool.put"},"action":{"status":503,"code":"ServiceUnavailable",)"
               R"("message":"try later","headers":{"Retry-After":"2"}},"when":{"times":2}})");
  for (int i = 0; i < 2; ++i) {
    Http r = PutPool("gpu1");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.code(), "ServiceUnavailable");
    EXPECT_EQ(r.json()["error"]["message"], "try later");
    EXPECT_EQ(r.header("Retry-After"), "2");
    EXPECT_EQ(r.header("x-ms-error-code"), "ServiceUnavailable");
    EXPECT_EQ(StateOf("gpu1"), "absent");
  }
  EXPECT_EQ(PutPool("gpu1").status, 201);
  Json rules = Control("GET", "/_fake/faults").json();
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]["id"], id);
  EXPECT_EQ(rules[0]["matched"], 3);
  EXPECT_EQ(rules[0]["fired"], 2);
  Json puts = Journal("?op=pool.put");
  ASSERT_EQ(puts.size(), 3u);
  EXPECT_EQ(puts[0]["status"], 503);
  EXPECT_EQ(puts[0]["faults"], Json::array({id}));
  EXPECT_EQ(puts[2]["status"], 201);
  EXPECT_EQ(puts[2]["faults"], Json::array());
}

TEST_F(FakeArmTest, NthAndRemoval) {
  const int64_t id =
      AddFault(R"({"match":{"op":"pool.get"},"action":{"status":500},"when":{"nth":2,"times":1}})");
  EXPECT_EQ(Arm("GET", PoolPath("nodepool1")).status, 200);
  Http second = Arm("GET", PoolPath("nodepool1"));
  EXPECT_EQ(second.status, 500);
  EXPECT_EQ(second.code(), "InternalServerError");
  EXPECT_EQ(Arm("GET", PoolPath("nodepool1")).status, 200);

  const int64_t other = AddFault(R"({"match":{"op":"any"},"action":{"status":418}})");
  EXPECT_EQ(Arm("GET", std::string(kCluster) + kApi).status, 418);
  EXPECT_EQ(Control("DELETE", absl::StrCat("/_fake/faults/", other)).status, 200);
  EXPECT_EQ(Arm("GET", std::string(kCluster) + kApi).status, 200);
  EXPECT_EQ(Control("DELETE", "/_fake/faults/999").status, 404);
  EXPECT_EQ(Control("DELETE", "/_fake/faults").status, 200);
  EXPECT_EQ(Control("GET", "/_fake/faults").json().size(), 0u);
  (void)id;
}

TEST_F(FakeArmTest, BodyRawHtmlAndTokenFaults) {
  AddFault(
      R"({"match":{"op":"token"},"action":{"status":502,"body_raw":"<html>bad gateway</html>"},)"
      R"("when":{"times":1}})");
  Http r = TokenRequest(SecretForm());
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(r.body, "<html>bad gateway</html>");
  EXPECT_THAT(r.header("Content-Type"), StartsWith("text/html"));
  EXPECT_EQ(TokenRequest(SecretForm()).status, 200);
}

TEST_F(FakeArmTest, MatchByPoolPathVmSizeSpotAndZonal) {
  AddFault(R"({"match":{"op":"pool.put","pool":"^gpu2$"},"action":{"status":409}})");
  AddFault(R"({"match":{"op":"pool.put","vm_size":"A10_v5"},"action":{"status":410}})");
  AddFault(R"({"match":{"op":"pool.put","spot":true},"action":{"status":411}})");
  AddFault(R"({"match":{"op":"pool.put","zonal":true},"action":{"status":412}})");
  AddFault(R"({"match":{"op":"pool.get","path":"agentpools/gpu9"},"action":{"status":413}})");
  EXPECT_EQ(PutPool("gpu1").status, 201);
  EXPECT_EQ(PutPool("gpu2").status, 409);
  EXPECT_EQ(PutPool("gpu22").status, 201);
  EXPECT_EQ(PutPool("gpu3", PoolBody("Standard_NV36ads_A10_v5")).status, 410);
  EXPECT_EQ(PutPool("gpu4", PoolBody(kA100, 1, {{"scaleSetPriority", "Spot"}})).status, 411);
  EXPECT_EQ(PutPool("gpu5", PoolBody(kA100, 1, {{"availabilityZones", {"1"}}})).status, 412);
  EXPECT_EQ(PutPool("gpu6", PoolBody(kA100, 1, {{"availabilityZones", Json::array()}})).status,
            201);
  EXPECT_EQ(Arm("GET", PoolPath("gpu9")).status, 413);
  EXPECT_EQ(Arm("GET", PoolPath("gpu1")).status, 200);
}

TEST_F(FakeArmTest, DelayAndLatencyAreAddedAndJournaled) {
  AddFault(R"({"match":{"op":"cluster.get"},"action":{"delay_ms":150},"when":{"times":1}})");
  const absl::Time start = absl::Now();
  EXPECT_EQ(Arm("GET", std::string(kCluster) + kApi).status, 200);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
  Json entry = Journal("?op=cluster.get")[0];
  EXPECT_GE(entry["latency_ms"].get<int64_t>(), 150);

  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"latency_ms":400})").status, 200);
  const absl::Time again = absl::Now();
  EXPECT_EQ(Arm("GET", PoolPath("nodepool1")).status, 200);
  EXPECT_GE(absl::Now() - again, absl::Milliseconds(400));
  // The control API is not slowed down.
  const absl::Time control = absl::Now();
  EXPECT_EQ(Control("GET", "/_fake/healthz").status, 200);
  EXPECT_LT(absl::Now() - control, absl::Milliseconds(300));
}

TEST_F(FakeArmTest, AfterMsStartsARuleLater) {
  AddFault(R"({"match":{"op":"cluster.get"},"action":{"status":503},"when":{"after_ms":100}})");
  const absl::Time added = absl::Now();
  const int first = Arm("GET", std::string(kCluster) + kApi).status;
  if (absl::Now() - added < absl::Milliseconds(90)) {
    EXPECT_EQ(first, 200);
  }
  EXPECT_TRUE(kaito::testing::WaitFor(
      [&] { return Arm("GET", std::string(kCluster) + kApi).status == 503; }, absl::Seconds(5)));
  EXPECT_GE(absl::Now() - added, absl::Milliseconds(100));
}

TEST_F(FakeArmTest, ProbabilityIsSeededAndDeterministic) {
  auto run = [&](uint64_t seed) {
    FakeArmOptions options;
    options.seed = seed;
    StartFake(options);
    AddFault(
        R"({"match":{"op":"cluster.get"},"action":{"status":500},"when":{"probability":0.5}})");
    std::string pattern;
    for (int i = 0; i < 40; ++i) {
      pattern += Arm("GET", std::string(kCluster) + kApi).status == 500 ? 'x' : '.';
    }
    return pattern;
  };
  const std::string a = run(7);
  const std::string b = run(7);
  EXPECT_EQ(a, b);
  EXPECT_NE(a.find('x'), std::string::npos);
  EXPECT_NE(a.find('.'), std::string::npos);
}

TEST_F(FakeArmTest, DropConnectionSendsHeadersOnlyAfterTheStateChanged) {
  AddFault(R"({"match":{"op":"pool.put"},"action":{"drop_connection":true},"when":{"times":1}})");
  Http r = PutPool("gpu1");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.error, httplib::Error::Read);
  // The request itself took effect: a retried PUT sees the create in progress or done.
  EXPECT_NE(StateOf("gpu1"), "absent");
  Json puts = Journal("?op=pool.put");
  ASSERT_EQ(puts.size(), 1u);
  EXPECT_EQ(puts[0]["status"], 201);

  // With a DELETE's empty 202 body, one byte is declared and none sent.
  ASSERT_TRUE(WaitForState("gpu1", "Succeeded"));
  AddFault(
      R"({"match":{"op":"pool.delete"},"action":{"drop_connection":true},"when":{"times":1}})");
  EXPECT_EQ(Arm("DELETE", PoolPath("gpu1")).status, 0);
  EXPECT_NE(StateOf("gpu1"), "Succeeded");
}

TEST_F(FakeArmTest, TruncateBodySendsTheFirstHalf) {
  const std::string full = Arm("GET", PoolPath("nodepool1")).body;
  ASSERT_FALSE(full.empty());
  AddFault(R"({"match":{"op":"pool.get"},"action":{"truncate_body":true},"when":{"times":1}})");
  std::string received;
  httplib::Headers headers = {{"Authorization", "Bearer " + Token()}};
  httplib::Result result =
      client_->Get(PoolPath("nodepool1"), headers, [&](const char* data, size_t length) {
        received.append(data, length);
        return true;
      });
  EXPECT_FALSE(result);
  EXPECT_EQ(result.error(), httplib::Error::Read);
  EXPECT_EQ(received, full.substr(0, full.size() / 2));
  EXPECT_EQ(Arm("GET", PoolPath("nodepool1")).body.size(), full.size());
}

TEST_F(FakeArmTest, LroFailEndsTheCreateFailed) {
  AddFault(
      R"({"match":{"op":"pool.put","pool":"gpu1"},"action":{"lro_fail":{"code":"ResourceOperationFailure",)"
      R"("message":"pool {pool} of {vm_size} failed","details":[{"code":"ZonalAllocationFailed","message":"no {vm_size}"}]}}})");
  Http put = PutPool("gpu1");
  ASSERT_EQ(put.status, 201);
  ASSERT_TRUE(WaitForState("gpu1", "Failed"));
  Json op = Arm("GET", Local(put.header("Azure-AsyncOperation"))).json();
  EXPECT_EQ(op["status"], "Failed");
  EXPECT_EQ(op["error"]["code"], "ResourceOperationFailure");
  EXPECT_EQ(op["error"]["message"], std::string("pool gpu1 of ") + kA100 + " failed");
  EXPECT_EQ(op["error"]["details"][0]["code"], "ZonalAllocationFailed");
  EXPECT_EQ(op["error"]["details"][0]["message"], std::string("no ") + kA100);
  EXPECT_EQ(Arm("GET", PoolPath("gpu1")).json()["properties"]["count"], 0);
  // A re-PUT of the failed pool is an update that can succeed.
  ASSERT_EQ(Control("DELETE", "/_fake/faults").status, 200);
  Http retry = PutPool("gpu1");
  EXPECT_EQ(retry.status, 200);
  ASSERT_TRUE(WaitForState("gpu1", "Succeeded"));
  EXPECT_EQ(Arm("GET", PoolPath("gpu1")).json()["properties"]["count"], 1);
}

TEST_F(FakeArmTest, LroFailOnDeleteAnswersTheResultWith409) {
  ASSERT_EQ(PutPool("gpu1").status, 201);
  ASSERT_TRUE(WaitForState("gpu1", "Succeeded"));
  AddFault(
      R"({"match":{"op":"pool.delete"},"action":{"lro_fail":{"code":"InternalOperationError","message":"boom"}}})");
  Http del = Arm("DELETE", PoolPath("gpu1"));
  ASSERT_EQ(del.status, 202);
  ASSERT_TRUE(WaitForState("gpu1", "Failed"));
  Http result = Arm("GET", Local(del.header("Location")));
  EXPECT_EQ(result.status, 409);
  EXPECT_EQ(result.code(), "InternalOperationError");
  EXPECT_EQ(result.header("x-ms-error-code"), "InternalOperationError");
  EXPECT_EQ(result.json()["error"]["message"], "boom");
}

TEST_F(FakeArmTest, StickInProgressHoldsUntilTheControlApiEndsIt) {
  AddFault(R"({"match":{"op":"pool.put","pool":"^stuck"},"action":{"stick_in_progress":true}})");
  Http stuck = PutPool("stuck1");
  ASSERT_EQ(stuck.status, 201);
  ASSERT_EQ(PutPool("free1").status, 201);
  // free1 was created after stuck1 with the same delay: once it is done, stuck1 would be.
  ASSERT_TRUE(WaitForState("free1", "Succeeded"));
  EXPECT_EQ(StateOf("stuck1"), "Creating");
  EXPECT_EQ(Arm("GET", Local(stuck.header("Azure-AsyncOperation"))).json()["status"], "InProgress");
  ASSERT_EQ(Control("POST", "/_fake/pools/stuck1/complete").status, 200);
  EXPECT_EQ(StateOf("stuck1"), "Succeeded");
  EXPECT_EQ(Control("POST", "/_fake/pools/stuck1/complete").status, 409);

  ASSERT_EQ(PutPool("stuck2").status, 201);
  ASSERT_EQ(Control("POST", "/_fake/pools/stuck2/fail",
                    R"({"code":"VMExtensionProvisioningError","message":"cse failed"})")
                .status,
            200);
  EXPECT_EQ(StateOf("stuck2"), "Failed");
  Json state = Control("GET", "/_fake/state").json();
  for (const Json& pool : state["pools"]) {
    if (pool["name"] == "stuck2") {
      EXPECT_EQ(pool["op"]["status"], "Failed");
    }
  }
  ASSERT_EQ(PutPool("stuck3").status, 201);
  ASSERT_EQ(Control("POST", "/_fake/pools/stuck3/preempt").status, 200);
  EXPECT_EQ(StateOf("stuck3"), "Canceled");
  EXPECT_EQ(Control("POST", "/_fake/pools/nopool/complete").status, 404);
}

TEST_F(FakeArmTest, FaultRulesAreValidated) {
  EXPECT_EQ(Control("POST", "/_fake/faults", "{not json").status, 400);
  Http unknown_op = Control("POST", "/_fake/faults", R"({"match":{"op":"pool.patch"}})");
  EXPECT_EQ(unknown_op.status, 400);
  EXPECT_THAT(unknown_op.json()["error"]["message"].get<std::string>(), HasSubstr("pool.patch"));
  EXPECT_EQ(Control("POST", "/_fake/faults", R"({"match":{"pool":"("}})").status, 400);
  EXPECT_EQ(Control("POST", "/_fake/faults", R"({"action":{"status":"503"}})").status, 400);
  Http typo = Control("POST", "/_fake/faults", R"({"action":{"stauts":503}})");
  EXPECT_EQ(typo.status, 400);
  EXPECT_THAT(typo.json()["error"]["message"].get<std::string>(), HasSubstr("stauts"));
  EXPECT_EQ(Control("POST", "/_fake/faults", R"({"when":{"probability":2}})").status, 400);
  EXPECT_EQ(Control("POST", "/_fake/faults", R"({"match":{"op":"imds.*|token"}})").status, 200);
}

// --- Presets -----------------------------------------------------------------------------

TEST_F(FakeArmTest, SkuUnavailablePresetSyncAndAsync) {
  Http ids = Control("POST", "/_fake/presets/sku_unavailable", R"({"vm_size":"A10_v5"})");
  ASSERT_EQ(ids.status, 200) << ids.body;
  EXPECT_EQ(ids.json()["ids"].size(), 1u);
  Http r = PutPool("gpu1", PoolBody("Standard_NV36ads_A10_v5"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.code(), "SkuNotAvailable");
  EXPECT_THAT(r.json()["error"]["message"].get<std::string>(),
              HasSubstr("Standard_NV36ads_A10_v5"));
  EXPECT_EQ(PutPool("gpu2").status, 201);

  ASSERT_EQ(Control("DELETE", "/_fake/faults").status, 200);
  ASSERT_EQ(
      Control("POST", "/_fake/presets/sku_unavailable", R"({"vm_size":"A10","sync":false})").status,
      200);
  Http put = PutPool("gpu3", PoolBody("Standard_NV36ads_A10_v5"));
  ASSERT_EQ(put.status, 201);
  ASSERT_TRUE(WaitForState("gpu3", "Failed"));
  EXPECT_EQ(Arm("GET", Local(put.header("Azure-AsyncOperation"))).json()["error"]["code"],
            "SkuNotAvailable");
  EXPECT_EQ(Control("POST", "/_fake/presets/sku_unavailable", "{}").status, 400);
  EXPECT_EQ(Control("POST", "/_fake/presets/nope", "{}").status, 404);
}

TEST_F(FakeArmTest, AllocationAndSpotPresets) {
  ASSERT_EQ(Control("POST", "/_fake/presets/allocation_failed",
                    R"({"vm_size":"A100","zonal":true,"kind":"ZonalAllocationFailed"})")
                .status,
            200);
  ASSERT_EQ(Control("POST", "/_fake/presets/spot_unavailable", R"({"vm_size":"H100"})").status,
            200);
  Http zonal = PutPool("zonal1", PoolBody(kA100, 1, {{"availabilityZones", {"1", "2"}}}));
  Http regional = PutPool("regional1");
  Http spot = PutPool("spot1", PoolBody("Standard_NC40ads_H100_v5", 1,
                                        {{"scaleSetPriority", "Spot"},
                                         {"scaleSetEvictionPolicy", "Delete"},
                                         {"spotMaxPrice", -1}}));
  Http regular = PutPool("regular1", PoolBody("Standard_NC40ads_H100_v5"));
  for (const Http* r : {&zonal, &regional, &spot, &regular}) ASSERT_EQ(r->status, 201);
  ASSERT_TRUE(WaitForState("zonal1", "Failed"));
  ASSERT_TRUE(WaitForState("spot1", "Failed"));
  ASSERT_TRUE(WaitForState("regional1", "Succeeded"));
  ASSERT_TRUE(WaitForState("regular1", "Succeeded"));
  Json zerr = Arm("GET", Local(zonal.header("Azure-AsyncOperation"))).json()["error"];
  EXPECT_EQ(zerr["code"], "ResourceOperationFailure");
  EXPECT_EQ(zerr["details"][0]["code"], "ZonalAllocationFailed");
  EXPECT_THAT(zerr["details"][0]["message"].get<std::string>(), HasSubstr(kA100));
  Json serr = Arm("GET", Local(spot.header("Azure-AsyncOperation"))).json()["error"];
  EXPECT_EQ(serr["code"], "AllocationFailed");
  // The spot fields are stored as sent.
  Json props = Arm("GET", PoolPath("spot1")).json()["properties"];
  EXPECT_EQ(props["scaleSetPriority"], "Spot");
  EXPECT_EQ(props["scaleSetEvictionPolicy"], "Delete");
  EXPECT_EQ(props["spotMaxPrice"], -1);
}

TEST_F(FakeArmTest, Transient5xxPresetCycles) {
  Http ids = Control("POST", "/_fake/presets/transient_5xx", R"({"op":"pool.get","times":6})");
  ASSERT_EQ(ids.status, 200);
  EXPECT_EQ(ids.json()["ids"].size(), 6u);
  std::vector<int> statuses;
  std::vector<std::string> types;
  for (int i = 0; i < 7; ++i) {
    Http r = Arm("GET", PoolPath("nodepool1"));
    statuses.push_back(r.status);
    types.push_back(r.header("Content-Type"));
    if (r.status == 503) {
      EXPECT_EQ(r.header("Retry-After"), "1");
    }
  }
  EXPECT_EQ(statuses, (std::vector<int>{500, 502, 503, 504, 408, 500, 200}));
  EXPECT_THAT(types[1], StartsWith("text/html"));
  EXPECT_THAT(types[3], StartsWith("text/html"));
  EXPECT_THAT(types[0], StartsWith("application/json"));
}

TEST_F(FakeArmTest, AuthFaultPresets) {
  ASSERT_EQ(Control("POST", "/_fake/presets/auth_faults", R"({"kind":"invalid_client","times":1})")
                .status,
            200);
  Http token = TokenRequest(SecretForm());
  EXPECT_EQ(token.status, 401);
  EXPECT_EQ(token.json()["error"], "invalid_client");
  EXPECT_EQ(token.json()["error_codes"], Json::array({7000215}));
  EXPECT_EQ(TokenRequest(SecretForm()).status, 200);

  ASSERT_EQ(Control("POST", "/_fake/presets/auth_faults", R"({"kind":"arm_401"})").status, 200);
  ASSERT_EQ(Control("POST", "/_fake/presets/auth_faults", R"({"kind":"arm_403"})").status, 200);
  Http forbidden = PutPool("gpu1");
  EXPECT_EQ(forbidden.status, 403);
  EXPECT_EQ(forbidden.code(), "AuthorizationFailed");
  EXPECT_THAT(forbidden.json()["error"]["message"].get<std::string>(),
              HasSubstr("The client 'fake-client'"));
  ASSERT_EQ(Control("DELETE", "/_fake/faults").status, 200);
  ASSERT_EQ(Control("POST", "/_fake/presets/auth_faults", R"({"kind":"arm_401"})").status, 200);
  Http put = PutPool("gpu1");
  ASSERT_EQ(put.status, 201);
  Http poll = Arm("GET", Local(put.header("Azure-AsyncOperation")));
  EXPECT_EQ(poll.status, 401);
  EXPECT_EQ(poll.code(), "InvalidAuthenticationToken");
  EXPECT_TRUE(poll.has_header("WWW-Authenticate"));
  EXPECT_EQ(Arm("GET", Local(put.header("Azure-AsyncOperation"))).status, 200);
  EXPECT_EQ(Control("POST", "/_fake/presets/auth_faults", R"({"kind":"nope"})").status, 400);
}

// --- Throttling --------------------------------------------------------------------------

TEST_F(FakeArmTest, ThrottleSecondsFormPerClassBuckets) {
  ASSERT_EQ(
      Control("PUT", "/_fake/throttle", R"({"capacity":2,"refill_per_s":0,"retry_after_s":3})")
          .status,
      200);
  const std::string path = std::string(kCluster) + kApi;
  Http first = Arm("GET", path);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.header("x-ms-ratelimit-remaining-subscription-reads"), "1");
  EXPECT_EQ(Arm("GET", path).header("x-ms-ratelimit-remaining-subscription-reads"), "0");
  Http throttled = Arm("GET", path);
  EXPECT_EQ(throttled.status, 429);
  EXPECT_EQ(throttled.code(), "SubscriptionRequestsThrottled");
  EXPECT_EQ(throttled.header("Retry-After"), "3");
  EXPECT_EQ(throttled.json()["error"]["message"],
            "Number of 'read' requests for subscription 'fake-sub' actor 'fake-client' "
            "exceeded. Please try again after '3' seconds or switch to another subscription.");
  // Writes have their own bucket.
  Http put = PutPool("gpu1");
  EXPECT_EQ(put.status, 201);
  EXPECT_EQ(put.header("x-ms-ratelimit-remaining-subscription-writes"), "1");
  ASSERT_EQ(Control("DELETE", "/_fake/throttle").status, 200);
  EXPECT_EQ(Arm("GET", path).status, 200);
}

TEST_F(FakeArmTest, ThrottleDateAndMsForms) {
  const std::string path = std::string(kCluster) + kApi;
  ASSERT_EQ(
      Control("PUT", "/_fake/throttle",
              R"({"capacity":1,"refill_per_s":0,"retry_after_form":"date","retry_after_s":120})")
          .status,
      200);
  EXPECT_EQ(Arm("GET", path).status, 200);
  Http dated = Arm("GET", path);
  ASSERT_EQ(dated.status, 429);
  absl::Time when;
  std::string err;
  ASSERT_TRUE(absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", dated.header("Retry-After"),
                              absl::UTCTimeZone(), &when, &err))
      << dated.header("Retry-After") << " " << err;
  EXPECT_NEAR(absl::ToDoubleSeconds(when - absl::Now()), 120, 3);

  ASSERT_EQ(Control("PUT", "/_fake/throttle",
                    R"({"capacity":1,"refill_per_s":0,"retry_after_form":"ms","retry_after_s":2})")
                .status,
            200);
  EXPECT_EQ(Arm("GET", path).status, 200);
  Http ms = Arm("GET", path);
  ASSERT_EQ(ms.status, 429);
  EXPECT_EQ(ms.header("retry-after-ms"), "2000");
  EXPECT_EQ(ms.header("x-ms-retry-after-ms"), "2000");
  EXPECT_FALSE(ms.has_header("Retry-After"));
  EXPECT_EQ(
      Control("PUT", "/_fake/throttle", R"({"capacity":1,"retry_after_form":"weeks"})").status,
      400);
}

TEST_F(FakeArmTest, ThrottleRefillsAndIsPerPrincipal) {
  ASSERT_EQ(Control("PUT", "/_fake/throttle", R"({"capacity":1,"refill_per_s":20})").status, 200);
  const std::string path = std::string(kCluster) + kApi;
  EXPECT_EQ(Arm("GET", path).status, 200);
  Http throttled = Arm("GET", path);
  if (throttled.status == 429) {
    EXPECT_EQ(throttled.header("Retry-After"), "1");
  }
  EXPECT_TRUE(
      kaito::testing::WaitFor([&] { return Arm("GET", path).status == 200; }, absl::Seconds(5)));
  // Another principal (a managed identity) has a full bucket of its own.
  ASSERT_EQ(Control("PUT", "/_fake/throttle", R"({"capacity":1,"refill_per_s":0})").status, 200);
  EXPECT_EQ(Arm("GET", path).status, 200);
  EXPECT_EQ(Arm("GET", path).status, 429);
  Http mi = Send("GET",
                 "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://"
                 "management.azure.com/&client_id=uami",
                 "", {{"Metadata", "true"}});
  Http other = Send("GET", path, "",
                    {{"Authorization", "Bearer " + mi.json()["access_token"].get<std::string>()}});
  EXPECT_EQ(other.status, 200);
}

// --- Journal, state, config --------------------------------------------------------------

TEST_F(FakeArmTest, JournalRecordsRequestsWithHashedTokens) {
  ASSERT_EQ(PutPool("gpu1").status, 201);
  EXPECT_EQ(Arm("GET", PoolPath("gpu1")).status, 200);
  EXPECT_EQ(Arm("GET", PoolPath("nodepool1")).status, 200);
  Json all = Journal();
  ASSERT_GE(all.size(), 4u);  // token, put, get, get
  EXPECT_EQ(all[0]["op"], "token");
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_GT(all[i]["seq"].get<int64_t>(), all[i - 1]["seq"].get<int64_t>());
    EXPECT_GE(all[i]["t_ms"].get<int64_t>(), all[i - 1]["t_ms"].get<int64_t>());
  }
  Json puts = Journal("?op=pool.put");
  ASSERT_EQ(puts.size(), 1u);
  const Json& put = puts[0];
  EXPECT_EQ(put["method"], "PUT");
  EXPECT_EQ(put["path"], std::string(kCluster) + "/agentPools/gpu1");
  EXPECT_EQ(put["query"], "api-version=2024-01-01");
  EXPECT_EQ(put["pool"], "gpu1");
  EXPECT_EQ(put["status"], 201);
  EXPECT_EQ(Json::parse(put["body"].get<std::string>()), Json::parse(PoolBody()));
  const std::string auth = put["headers"]["authorization"];
  EXPECT_TRUE(std::regex_match(auth, std::regex("Bearer sha256:[0-9a-f]{12}"))) << auth;
  EXPECT_EQ(put["headers"]["content-type"], "application/json");
  EXPECT_EQ(put.dump().find(Token()), std::string::npos);
  EXPECT_EQ(Journal("?pool=gpu1").size(), 2u);
  EXPECT_EQ(Journal("?op=pool.get&pool=nodepool1").size(), 1u);
  // Polls carry their operation's pool; control calls are not journaled.
  Http poll = Arm("GET", Local(PutPool("gpu2").header("Azure-AsyncOperation")));
  ASSERT_EQ(poll.status, 200);
  Json polls = Journal("?op=op.poll");
  ASSERT_EQ(polls.size(), 1u);
  EXPECT_EQ(polls[0]["pool"], "gpu2");
  for (const Json& e : Journal())
    EXPECT_THAT(e["path"].get<std::string>(), ::testing::Not(StartsWith("/_fake")));
  ASSERT_EQ(Control("DELETE", "/_fake/requests").status, 200);
  EXPECT_EQ(Journal().size(), 0u);
}

TEST_F(FakeArmTest, StateSeedAndReset) {
  Http seeded =
      Control("POST", "/_fake/pools",
              R"({"name":"orphan1","properties":{"count":1,"vmSize":"Standard_NC24ads_A100_v4",)"
              R"("nodeLabels":{"kaito.sh/workspace":"gone"}},"provisioningState":"Succeeded"})");
  ASSERT_EQ(seeded.status, 201) << seeded.body;
  EXPECT_EQ(
      Arm("GET", PoolPath("orphan1")).json()["properties"]["nodeLabels"]["kaito.sh/workspace"],
      "gone");
  EXPECT_EQ(Control("POST", "/_fake/pools", R"({"name":"Bad_Name"})").status, 400);
  EXPECT_EQ(Control("POST", "/_fake/pools", R"({"name":"x1","provisioningState":"Weird"})").status,
            400);
  ASSERT_EQ(
      Control(
          "POST", "/_fake/pools",
          R"({"name":"mid1","properties":{"vmSize":"Standard_NC24ads_A100_v4"},"provisioningState":"Creating"})")
          .status,
      201);
  EXPECT_EQ(StateOf("mid1"), "Creating");
  ASSERT_TRUE(WaitForState("mid1", "Succeeded"));

  Json state = Control("GET", "/_fake/state").json();
  std::set<std::string> names;
  for (const Json& pool : state["pools"]) {
    names.insert(pool["name"]);
    EXPECT_TRUE(pool.contains("created_ms"));
    EXPECT_TRUE(pool.contains("properties"));
  }
  EXPECT_EQ(names, (std::set<std::string>{"mid1", "nodepool1", "orphan1"}));
  AddFault(R"({"match":{"op":"usages"},"action":{"status":500}})");
  ASSERT_EQ(Control("PUT", "/_fake/throttle", R"({"capacity":5})").status, 200);

  Http reset = Control("DELETE", "/_fake/state");
  ASSERT_EQ(reset.status, 200);
  ASSERT_EQ(reset.json()["pools"].size(), 1u);
  EXPECT_EQ(reset.json()["pools"][0]["name"], "nodepool1");
  EXPECT_EQ(Control("GET", "/_fake/faults").json().size(), 0u);
  EXPECT_EQ(Journal().size(), 0u);
  EXPECT_EQ(Control("GET", "/_fake/tokens").json()["issued"], 0);
  EXPECT_EQ(Control("GET", "/_fake/throttle").json()["enabled"], false);
  // Tokens are forgotten too.
  EXPECT_EQ(Arm("GET", PoolPath("nodepool1")).status, 401);
}

TEST_F(FakeArmTest, ConfigRoundTripsAndRejectsBadFields) {
  Json config = Control("GET", "/_fake/config").json();
  EXPECT_EQ(config["prov_delay_ms"], 50);
  EXPECT_EQ(config["poll_retry_after_s"], 1);
  EXPECT_EQ(config["token_ttl_s"], 3599);
  EXPECT_EQ(config["quota_mode"], "sync");
  EXPECT_EQ(config["delete_creating"], "preempt");
  EXPECT_EQ(config["delete_absent"], "204");
  Http set = Control("PUT", "/_fake/config",
                     R"({"poll_retry_after_s":0,"quotas":{"cores":10},"delete_absent":404})");
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(set.json()["delete_absent"], "404");
  EXPECT_EQ(set.json()["quotas"]["cores"], 10);
  // Retry-After 0 omits the header.
  Http put = PutPool("gpu1", PoolBody("Standard_D2s_v3"));
  ASSERT_EQ(put.status, 201);
  EXPECT_FALSE(put.has_header("Retry-After"));
  ASSERT_EQ(Control("PUT", "/_fake/config", R"({"quotas":{"cores":null}})").status, 200);
  EXPECT_FALSE(Control("GET", "/_fake/config").json()["quotas"].contains("cores"));

  for (const char* bad :
       {R"({"prov_delay_ms":-1})", R"({"quota_mode":"maybe"})", R"({"delete_creating":"ignore"})",
        R"({"nonsense":1})", R"({"token_ttl_s":"long"})", "{broken"}) {
    Http r = Control("PUT", "/_fake/config", bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_FALSE(r.json()["error"].value("message", "").empty()) << bad;
  }
  EXPECT_EQ(Control("GET", "/_fake/config").json()["quota_mode"], "sync");
}

TEST_F(FakeArmTest, StateMachineRunsOnAFakeClock) {
  FakeClock clock;
  FakeArmOptions options;
  options.clock = &clock;
  options.prov_delay = absl::Seconds(300);
  options.del_delay = absl::Seconds(60);
  StartFake(options, /*fast=*/false);
  Http put = PutPool("gpu1");
  ASSERT_EQ(put.status, 201);
  clock.Advance(absl::Seconds(299));
  EXPECT_EQ(StateOf("gpu1"), "Creating");
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(StateOf("gpu1"), "Succeeded");
  Json op = Arm("GET", Local(put.header("Azure-AsyncOperation"))).json();
  absl::Time start, end;
  std::string err;
  ASSERT_TRUE(
      absl::ParseTime(absl::RFC3339_full, op["startTime"].get<std::string>(), &start, &err));
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, op["endTime"].get<std::string>(), &end, &err));
  EXPECT_EQ(end - start, absl::Seconds(300));
  ASSERT_EQ(Arm("DELETE", PoolPath("gpu1")).status, 202);
  clock.Advance(absl::Seconds(59));
  EXPECT_EQ(StateOf("gpu1"), "Deleting");
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(StateOf("gpu1"), "absent");
  Json journal = Journal("?op=pool.delete");
  ASSERT_EQ(journal.size(), 1u);
  EXPECT_EQ(journal[0]["t_ms"], 300000);
}

TEST_F(FakeArmTest, BadInputNeverBreaksTheServer) {
  EXPECT_EQ(Send("GET", "/nothing/here", "", {}).status, 404);
  EXPECT_EQ(Send("GET", "/nothing/here", "", {}).code(), "NotFound");
  EXPECT_EQ(Control("GET", "/_fake/nothing").status, 404);
  EXPECT_EQ(Control("PUT", "/_fake/healthz").status, 200);
  EXPECT_EQ(Control("GET", "/_fake/faults/1").status, 405);
  EXPECT_EQ(Control("POST", "/_fake/throttle", "{}").status, 405);
  EXPECT_EQ(Control("POST", "/_fake/pools/nodepool1/explode").status, 404);
  // Invalid UTF-8 in a body is journaled without breaking the journal.
  Http garbage = PutPool("gpu1", std::string("{\"properties\":{\"vmSize\":\"\xff\xfe\"}}"));
  EXPECT_EQ(garbage.status, 400);
  EXPECT_EQ(garbage.code(), "InvalidParameter");
  Http journal = Control("GET", "/_fake/requests?op=pool.put");
  EXPECT_EQ(journal.status, 200);
  EXPECT_EQ(journal.json().size(), 1u);
  EXPECT_EQ(Arm("GET", std::string(kCluster) + "/agentPools" + kApi + "&$skipToken=abc").status,
            400);
  EXPECT_EQ(TokenRequest("%%%&&&==").status, 400);
  EXPECT_EQ(Control("GET", "/_fake/healthz").status, 200);
}

TEST_F(FakeArmTest, DeeplyNestedJsonIsRefused) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  Http put =
      PutPool("gpu1", R"({"properties":{"vmSize":"Standard_NC24ads_A100_v4","x":)" + deep + "}}");
  EXPECT_EQ(put.status, 400);
  EXPECT_EQ(put.code(), "InvalidParameter");
  EXPECT_THAT(put.json()["error"]["message"].get<std::string>(), HasSubstr("nests deeper"));
  Http rule = Control("POST", "/_fake/faults",
                      R"({"action":{"lro_fail":{"code":"X","details":)" + deep + "}}}");
  EXPECT_EQ(rule.status, 400);
  // Moderately nested JSON is fine and comes back as stored.
  Json nested = Json::array();
  for (int i = 0; i < 50; ++i) nested = Json::array({nested});
  ASSERT_EQ(PutPool("gpu1", PoolBody(kA100, 1, {{"extra", nested}})).status, 201);
  EXPECT_EQ(Arm("GET", PoolPath("gpu1")).json()["properties"]["extra"], nested);
}

TEST_F(FakeArmTest, RandomRequestsAreAllAnswered) {
  std::mt19937 rng(42);
  const std::vector<std::string> methods = {"GET", "PUT", "POST", "DELETE", "PATCH"};
  const std::vector<std::string> paths = {
      PoolPath("gpu1"),
      PoolPath("Bad!"),
      std::string(kCluster) + "/agentPools" + kApi,
      std::string(kCluster) + kApi,
      "/subscriptions/fake-sub/providers/Microsoft.ContainerService/locations/eastus/operations/"
      "x?api-version=2016-03-30",
      "/subscriptions/fake-sub/providers/Microsoft.Compute/locations/eastus/usages" +
          std::string(kComputeApi),
      std::string(kNodeGroup) + "/providers/Microsoft.Compute/virtualMachineScaleSets" +
          kComputeApi,
      "/subscriptions//resourceGroups//providers",
      "/_fake/faults",
      "/_fake/config",
      "/_fake/presets/transient_5xx",
      "/_fake/presets/allocation_failed",
      "/_fake/pools",
      "/_fake/pools/gpu1/fail",
      "/_fake/throttle",
      "/_fake/imds",
      "/_fake/state",
      "/fake-tenant/oauth2/v2.0/token",
      "/metadata/instance/compute?api-version=1",
      "/metadata/identity/oauth2/token",
      "/",
      "/%00/%ff",
  };
  const std::vector<std::string> bodies = {
      "",
      "{}",
      "[]",
      "null",
      "42",
      R"({"properties":5})",
      PoolBody(),
      PoolBody("Standard_D2s_v3", 3),
      R"({"match":{"op":"any"},"action":{"status":600}})",
      R"({"match":{"op":"pool.get"},"action":{"status":503},"when":{"times":2}})",
      "\xff\xfe\x00",
      R"({"quotas":{"x":"y"}})",
      R"({"quotas":{"cores":30}})",
      R"({"name":"gpu1","properties":[]})",
      R"({"name":"gpu1","properties":{"count":2},"provisioningState":"Deleting"})",
      "grant_type=client_credentials&client_id=fake-client",
      R"({"capacity":0})",
      R"({"capacity":1000,"refill_per_s":1000})",
      std::string(5000, '{'),
      R"({"kind":"Overconstrained"})",
  };
  for (int i = 0; i < 400; ++i) {
    const std::string& method = methods[rng() % methods.size()];
    const std::string& path = paths[rng() % paths.size()];
    const std::string& body = bodies[rng() % bodies.size()];
    Http r = Arm(method, path, body);
    ASSERT_GT(r.status, 0) << method << " " << path << " " << body;
    EXPECT_LT(r.status, 600);
    EXPECT_FALSE(r.header("x-ms-request-id").empty()) << method << " " << path;
    if (!r.body.empty() && absl::StartsWith(r.header("Content-Type"), "application/json")) {
      EXPECT_FALSE(r.json().is_discarded()) << method << " " << path << " -> " << r.body;
    }
  }
  EXPECT_EQ(Control("GET", "/_fake/healthz").status, 200);
  EXPECT_EQ(Control("GET", "/_fake/requests").status, 200);
  EXPECT_EQ(Control("GET", "/_fake/state").status, 200);
}

TEST_F(FakeArmTest, UnknownOperationsAre404) {
  Http op = Arm("GET",
                "/subscriptions/fake-sub/providers/Microsoft.ContainerService/locations/eastus/"
                "operations/00000000-0000-4000-8000-000000000000?api-version=2016-03-30");
  EXPECT_EQ(op.status, 404);
  Http result = Arm("GET",
                    "/subscriptions/fake-sub/providers/Microsoft.ContainerService/locations/"
                    "eastus/operationresults/nope?api-version=2016-03-30");
  EXPECT_EQ(result.status, 404);
  EXPECT_EQ(
      Arm("GET", "/subscriptions/fake-sub/providers/Microsoft.Compute/locations/westus/usages" +
                     std::string(kComputeApi))
          .status,
      404);
}

TEST_F(FakeArmTest, DiscoveryDocumentsPointBackHere) {
  Http openid = Send("GET", "/fake-tenant/v2.0/.well-known/openid-configuration", "", {});
  ASSERT_EQ(openid.status, 200);
  EXPECT_EQ(openid.json()["token_endpoint"],
            absl::StrCat("http://127.0.0.1:", fake_->port(), "/fake-tenant/oauth2/v2.0/token"));
  EXPECT_EQ(fake_->base_url(), absl::StrCat("http://127.0.0.1:", fake_->port()));
  Http instance = Send("GET", "/common/discovery/instance?api-version=1.1", "", {});
  EXPECT_EQ(instance.status, 200);
  EXPECT_THAT(instance.json()["tenant_discovery_endpoint"].get<std::string>(),
              HasSubstr("/fake-tenant/v2.0/.well-known/openid-configuration"));
}

}  // namespace
}  // namespace kaito::fakearm
