#include "provisioner/azure/credentials.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "provisioner/azure/arm_json.h"

namespace kaito::provisioner::azure {
namespace {

constexpr absl::Duration kRefreshEarly = absl::Minutes(5);
constexpr absl::Duration kMinRefreshSpacing = absl::Seconds(30);

std::string Env(const std::function<const char*(const char*)>& getenv, const char* name) {
  const char* value = getenv(name);
  return value == nullptr ? "" : std::string(value);
}

std::string TrimSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

// A JSON number or a string of digits.
bool ReadSeconds(const nlohmann::json& value, int64_t* out) {
  if (value.is_number_integer()) {
    *out = value.get<int64_t>();
    return true;
  }
  if (value.is_number()) {
    *out = static_cast<int64_t>(value.get<double>());
    return true;
  }
  return value.is_string() && absl::SimpleAtoi(value.get<std::string>(), out);
}

}  // namespace

absl::StatusOr<CredentialConfig> CredentialConfigFromEnvironment(
    const std::function<const char*(const char*)>& getenv, std::string imds_endpoint,
    std::string resource) {
  CredentialConfig config;
  if (!imds_endpoint.empty()) config.imds_endpoint = TrimSlash(std::move(imds_endpoint));
  if (!resource.empty()) config.resource = std::move(resource);
  if (std::string host = Env(getenv, "AZURE_AUTHORITY_HOST"); !host.empty()) {
    config.authority_host = TrimSlash(host);
  }
  config.tenant_id = Env(getenv, "AZURE_TENANT_ID");
  config.client_id = Env(getenv, "AZURE_CLIENT_ID");
  config.client_secret = Env(getenv, "AZURE_CLIENT_SECRET");
  config.federated_token_file = Env(getenv, "AZURE_FEDERATED_TOKEN_FILE");
  auto require = [&](const std::string& value, const char* name, const char* by) -> absl::Status {
    if (!value.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(name, " is not set; it is required with ", by));
  };
  if (!config.client_secret.empty()) {
    config.kind = CredentialKind::kClientSecret;
    if (auto s = require(config.client_id, "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"); !s.ok()) {
      return s;
    }
    if (auto s = require(config.tenant_id, "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"); !s.ok()) {
      return s;
    }
    return config;
  }
  if (!config.federated_token_file.empty()) {
    config.kind = CredentialKind::kWorkloadIdentity;
    for (auto [value, name] : {std::pair{&config.client_id, "AZURE_CLIENT_ID"},
                               std::pair{&config.tenant_id, "AZURE_TENANT_ID"}}) {
      if (auto s = require(*value, name, "AZURE_FEDERATED_TOKEN_FILE"); !s.ok()) return s;
    }
    std::error_code ec;
    if (!std::filesystem::is_regular_file(config.federated_token_file, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("AZURE_FEDERATED_TOKEN_FILE: ", config.federated_token_file,
                       " is not a readable file (is the workload identity webhook set up?)"));
    }
    return config;
  }
  config.kind = CredentialKind::kManagedIdentity;
  return config;
}

std::shared_ptr<AzureCredential> AzureCredential::Create(CredentialConfig config,
                                                         http::HttpClient* http, Clock* clock) {
  return std::shared_ptr<AzureCredential>(new AzureCredential(std::move(config), http, clock));
}

std::string AzureCredential::Describe() const {
  switch (config_.kind) {
    case CredentialKind::kClientSecret:
      return absl::StrCat("client secret (tenant ", config_.tenant_id, ", client ",
                          config_.client_id, ")");
    case CredentialKind::kWorkloadIdentity:
      return absl::StrCat("workload identity (tenant ", config_.tenant_id, ", client ",
                          config_.client_id, ", token file ", config_.federated_token_file, ")");
    case CredentialKind::kManagedIdentity:
      return config_.client_id.empty()
                 ? "managed identity (system-assigned)"
                 : absl::StrCat("managed identity (client ", config_.client_id, ")");
  }
  return "";
}

int AzureCredential::requests() {
  absl::MutexLock lock(&mu_);
  return requests_;
}

int AzureCredential::failures() {
  absl::MutexLock lock(&mu_);
  return failures_;
}

void AzureCredential::GetToken(TokenDone done) {
  std::optional<AccessToken> token;
  bool refresh = false;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    if (cached_ && now < cached_->expires_on) {
      token = cached_;
      // Early refresh: in the background, one at a time, not more than every 30 s.
      refresh = now >= cached_->expires_on - kRefreshEarly && !refreshing_ &&
                now - last_refresh_ >= kMinRefreshSpacing;
    } else {
      waiters_.push_back(std::move(done));
      refresh = !refreshing_;
    }
    if (refresh) {
      refreshing_ = true;
      last_refresh_ = now;
      ++requests_;
    }
  }
  // Outside the lock: a stopping HTTP client answers inline.
  if (refresh) SendRefresh();
  if (token) std::move(done)(*std::move(token));
}

void AzureCredential::Invalidate(const std::string& token) {
  absl::MutexLock lock(&mu_);
  if (cached_ && cached_->token == token) cached_.reset();
}

void AzureCredential::SendRefresh() {
  absl::StatusOr<http::Request> request = BuildRequest();
  if (!request.ok()) return OnResponse(request.status());
  http_->Send(*std::move(request),
              [self = shared_from_this()](absl::StatusOr<http::Response> response) {
                self->OnResponse(std::move(response));
              });
}

absl::StatusOr<http::Request> AzureCredential::BuildRequest() const {
  http::Request request;
  request.timeout = absl::Seconds(30);
  request.ca_file = config_.ca_file;
  if (config_.kind == CredentialKind::kManagedIdentity) {
    request.method = "GET";
    request.url = absl::StrCat(config_.imds_endpoint,
                               "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=",
                               http::UrlEncode(config_.resource));
    if (!config_.client_id.empty()) {
      absl::StrAppend(&request.url, "&client_id=", http::UrlEncode(config_.client_id));
    }
    request.headers.push_back({"Metadata", "true"});
    request.no_proxy = true;
    return request;
  }
  std::vector<std::pair<std::string, std::string>> form = {
      {"grant_type", "client_credentials"},
      {"client_id", config_.client_id},
      {"scope", TrimSlash(config_.resource) + "/.default"}};
  if (config_.kind == CredentialKind::kClientSecret) {
    form.push_back({"client_secret", config_.client_secret});
  } else {
    std::ifstream in(config_.federated_token_file);
    std::stringstream assertion;
    assertion << in.rdbuf();
    std::string text(absl::StripAsciiWhitespace(assertion.str()));
    if (!in || text.empty()) {
      return absl::UnauthenticatedError(
          absl::StrCat("cannot read the federated token file ", config_.federated_token_file));
    }
    form.push_back(
        {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"});
    form.push_back({"client_assertion", text});
  }
  request.method = "POST";
  request.url = absl::StrCat(config_.authority_host, "/", config_.tenant_id, "/oauth2/v2.0/token");
  request.headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
  request.body = http::FormEncode(form);
  return request;
}

absl::StatusOr<AccessToken> ParseTokenResponse(const http::Response& response, absl::Time now) {
  const nlohmann::json body = ParseJson(response.body);
  if (response.status != 200) {
    std::string what = absl::StrCat("token request failed with HTTP ", response.status);
    const std::string error = JsonString(body, "error");
    const std::string description = JsonString(body, "error_description");
    if (!error.empty()) absl::StrAppend(&what, ": ", error);
    if (!description.empty()) {
      // AAD's first line names the problem; the rest is trace and correlation ids.
      absl::StrAppend(&what, ": ", description.substr(0, description.find_first_of("\r\n")));
    }
    if (response.status >= 500 || response.status == 429 || response.status == 404 ||
        response.status == 410 || response.status == 408) {
      return absl::UnavailableError(what);
    }
    return absl::UnauthenticatedError(what);
  }
  AccessToken token;
  token.token = JsonString(body, "access_token");
  if (token.token.empty()) {
    return absl::UnavailableError("the token endpoint's reply has no access_token");
  }
  int64_t seconds = 0;
  if (ReadSeconds(JsonMember(body, "expires_on"), &seconds) && seconds > 0) {
    token.expires_on = absl::FromUnixSeconds(seconds);
  } else if (ReadSeconds(JsonMember(body, "expires_in"), &seconds) && seconds > 0) {
    token.expires_on = now + absl::Seconds(seconds);
  } else {
    return absl::UnavailableError("the token endpoint's reply has no expires_in");
  }
  return token;
}

void AzureCredential::OnResponse(absl::StatusOr<http::Response> response) {
  absl::StatusOr<AccessToken> token =
      response.ok() ? ParseTokenResponse(*response, clock_->Now())
                    : absl::StatusOr<AccessToken>(absl::UnavailableError(
                          absl::StrCat("token endpoint: ", response.status().message())));
  if (!response.ok() && absl::IsUnauthenticated(response.status())) token = response.status();
  std::vector<TokenDone> waiters;
  {
    absl::MutexLock lock(&mu_);
    refreshing_ = false;
    if (token.ok()) cached_ = *token;
    if (!token.ok()) ++failures_;
    waiters.swap(waiters_);
  }
  for (TokenDone& done : waiters) std::move(done)(token);
}

}  // namespace kaito::provisioner::azure
