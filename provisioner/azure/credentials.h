// Azure AD access tokens for ARM, in the order of Azure's default credential chain as
// configured by the standard variables: a client secret (`AZURE_CLIENT_ID`,
// `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`), workload identity (`AZURE_FEDERATED_TOKEN_FILE`
// with the client and tenant; the file is read again at every token request, so a rotated
// token is used), or managed identity through the instance metadata service
// (`AZURE_CLIENT_ID` optionally names a user-assigned identity).
//
// Tokens are cached and refreshed 5 minutes before they expire, by one request at a time
// (callers meanwhile get the cached token, or wait for the refresh when there is none).
// A secret, an assertion or a token never reaches a log line, an error or a status:
// errors carry AAD's error code and description only.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http/http_client.h"

namespace kaito::provisioner::azure {

struct AccessToken {
  std::string token;
  absl::Time expires_on;
};

// UNAVAILABLE: the token service could not be reached or failed (try again);
// UNAUTHENTICATED: it refused the credential (AAD's code and description).
using TokenDone = absl::AnyInvocable<void(absl::StatusOr<AccessToken>) &&>;

class TokenCredential {
 public:
  virtual ~TokenCredential() = default;
  // `done` may run inline (a cached token) or on the HTTP client's thread.
  virtual void GetToken(TokenDone done) = 0;
  // The token was refused (ARM said 401): the next GetToken fetches a new one.
  virtual void Invalidate(const std::string& token) = 0;
  // "client secret (client 1234...)": for logs; never a secret.
  virtual std::string Describe() const = 0;
};

enum class CredentialKind { kClientSecret, kWorkloadIdentity, kManagedIdentity };

struct CredentialConfig {
  CredentialKind kind = CredentialKind::kManagedIdentity;
  std::string tenant_id;
  std::string client_id;
  std::string client_secret;
  std::string federated_token_file;
  // AAD, e.g. https://login.microsoftonline.com (AZURE_AUTHORITY_HOST).
  std::string authority_host = "https://login.microsoftonline.com";
  // The instance metadata service (managed identity).
  std::string imds_endpoint = "http://169.254.169.254";
  // The resource the token is for: https://management.azure.com/ (scope = resource + .default).
  std::string resource = "https://management.azure.com/";
  // HTTPS trust for the token endpoints (tests with a self-signed server).
  std::string ca_file;
};

// Reads the standard variables through `getenv` (nullptr or "" = unset). INVALID_ARGUMENT
// naming the variable when a half-configured credential is found (a secret without a
// tenant, a token file that does not exist).
absl::StatusOr<CredentialConfig> CredentialConfigFromEnvironment(
    const std::function<const char*(const char*)>& getenv, std::string imds_endpoint,
    std::string resource);

class AzureCredential : public TokenCredential,
                        public std::enable_shared_from_this<AzureCredential> {
 public:
  // `http` and `clock` must outlive every callback (see the provisioner's shutdown order).
  static std::shared_ptr<AzureCredential> Create(CredentialConfig config, http::HttpClient* http,
                                                 Clock* clock);

  void GetToken(TokenDone done) override;
  void Invalidate(const std::string& token) override;
  std::string Describe() const override;

  // Token requests sent so far, and those that brought no token (tests and metrics).
  int requests();
  int failures();

 private:
  AzureCredential(CredentialConfig config, http::HttpClient* http, Clock* clock)
      : config_(std::move(config)), http_(http), clock_(clock) {}

  // Sends the token request; `refreshing_` is set.
  void SendRefresh();
  absl::StatusOr<http::Request> BuildRequest() const;
  void OnResponse(absl::StatusOr<http::Response> response);

  const CredentialConfig config_;
  http::HttpClient* const http_;
  Clock* const clock_;

  absl::Mutex mu_;
  std::optional<AccessToken> cached_ ABSL_GUARDED_BY(mu_);
  bool refreshing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_refresh_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::vector<TokenDone> waiters_ ABSL_GUARDED_BY(mu_);
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
};

// Reads a token endpoint's reply: AAD v2 (`expires_in` a number), v1 and IMDS (strings,
// `expires_on` epoch seconds). Errors as TokenDone's.
absl::StatusOr<AccessToken> ParseTokenResponse(const http::Response& response, absl::Time now);

}  // namespace kaito::provisioner::azure
