// AAD's token endpoints and IMDS (§3 and §4 of the reference), on the fake's token registry.
#include <httplib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tools/fake-arm/fake_arm_server.h"
#include "tools/fake-arm/imds_document.h"

namespace kaito::fakearm {
namespace {

constexpr char kJwtBearer[] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// The first value of `name` in a parsed form body; "" when absent.
std::string FormValue(const httplib::Params& form, const char* name) {
  auto it = form.find(name);
  return it == form.end() ? "" : it->second;
}

// IMDS's error body: `{"error": error, "error_description": description}`.
Reply ImdsError(int status, const std::string& error, const std::string& description) {
  return Reply::WithJson(status, Json{{"error", error}, {"error_description", description}});
}

}  // namespace

Reply FakeArmServer::AadError(const Incoming& in, int status, const std::string& error, int aadsts,
                              const std::string& description) {
  std::string correlation = in.http->get_header_value("client-request-id");
  if (correlation.empty()) correlation = uuids_.Next();
  return Reply::WithJson(
      status, AadErrorBody(error, aadsts, description, in.now.wall, uuids_.Next(), correlation));
}

Reply FakeArmServer::TokenLocked(const Incoming& in, bool v1) {
  httplib::Params form;
  httplib::detail::parse_query_text(in.http->body, form);
  if (!absl::EqualsIgnoreCase(in.route.tenant, options_.tenant_id)) {
    return AadError(in, 400, "invalid_request", 90002,
                    absl::StrCat("Tenant '", in.route.tenant,
                                 "' not found. Check to make sure you have the correct tenant ID "
                                 "and are signing into the correct cloud."));
  }
  const std::string grant_type = FormValue(form, "grant_type");
  if (grant_type.empty()) {
    return AadError(in, 400, "invalid_request", 900144,
                    "The request body must contain the following parameter: 'grant_type'.");
  }
  if (grant_type != "client_credentials") {
    return AadError(
        in, 400, "unsupported_grant_type", 70003,
        absl::StrCat("The app requested an unsupported grant type '", grant_type, "'."));
  }
  const std::string client_id = FormValue(form, "client_id");
  if (client_id.empty()) {
    return AadError(in, 400, "invalid_request", 900144,
                    "The request body must contain the following parameter: 'client_id'.");
  }
  if (client_id != options_.client_id) {
    return AadError(in, 400, "unauthorized_client", 700016,
                    absl::StrCat("Application with identifier '", client_id,
                                 "' was not found in the directory '", options_.tenant_id,
                                 "'. This can happen if the application has not been installed "
                                 "by the administrator of the tenant or consented to by any "
                                 "user in the tenant."));
  }
  const std::string scope = FormValue(form, "scope");
  const std::string resource = FormValue(form, "resource");
  if (v1 && resource.empty()) {
    return AadError(in, 400, "invalid_request", 900144,
                    "The request body must contain the following parameter: 'resource'.");
  }
  if (!v1 && scope.empty()) {
    return AadError(in, 400, "invalid_request", 900144,
                    "The request body must contain the following parameter: 'scope'.");
  }
  if (!v1 && !absl::EndsWith(scope, "/.default")) {
    return AadError(in, 400, "invalid_scope", 1002012,
                    absl::StrCat("The provided value for scope ", scope,
                                 " is not valid. Client credential flows must have a scope "
                                 "value with /.default suffixed to the resource identifier "
                                 "(application ID URI)."));
  }

  Grant grant;
  const std::string secret = FormValue(form, "client_secret");
  const std::string assertion_type = FormValue(form, "client_assertion_type");
  const std::string assertion = FormValue(form, "client_assertion");
  if (!secret.empty()) {
    if (secret != options_.client_secret) {
      return AadError(in, 401, "invalid_client", 7000215,
                      absl::StrCat("Invalid client secret provided. Ensure the secret being sent "
                                   "in the request is the client secret value, not the client "
                                   "secret ID, for a secret added to app '",
                                   options_.client_id, "'."));
    }
    grant = Grant::kClientSecret;
  } else if (!assertion.empty() || !assertion_type.empty()) {
    if (assertion_type != kJwtBearer) {
      return AadError(
          in, 400, "invalid_request", 50027,
          absl::StrCat("Invalid JWT token. client_assertion_type must be '", kJwtBearer, "'."));
    }
    if (assertion.empty()) {
      return AadError(in, 400, "invalid_request", 900144,
                      "The request body must contain the following parameter: 'client_assertion'.");
    }
    if (!options_.federated_token_file.empty()) {
      const std::string expected =
          in.federated_assertion.has_value()
              ? std::string(absl::StripTrailingAsciiWhitespace(*in.federated_assertion))
              : std::string();
      if (!in.federated_assertion.has_value() || expected.empty() ||
          (assertion != expected && assertion != *in.federated_assertion)) {
        return AadError(
            in, 400, "invalid_client", 70021,
            absl::StrCat("No matching federated identity record found for presented assertion.",
                         in.federated_error.empty()
                             ? std::string()
                             : " (kaito-fake-arm: " + in.federated_error + ")"));
      }
    }
    grant = Grant::kClientAssertion;
  } else {
    return AadError(in, 400, "invalid_client", 7000218,
                    "The request body must contain the following parameter: 'client_assertion' "
                    "or 'client_secret'.");
  }

  const int64_t ttl_s = absl::ToInt64Seconds(config_.token_ttl);
  const std::string token =
      tokens_.Issue(grant, client_id, config_.token_ttl, in.now.mono, in.now.wall, uuids_.Next());
  Reply reply;
  if (v1) {
    const int64_t now_s = absl::ToUnixSeconds(in.now.wall);
    reply = Reply::WithJson(200, Json{{"token_type", "Bearer"},
                                      {"expires_in", std::to_string(ttl_s)},
                                      {"ext_expires_in", std::to_string(ttl_s)},
                                      {"expires_on", std::to_string(now_s + ttl_s)},
                                      {"not_before", std::to_string(now_s)},
                                      {"resource", resource},
                                      {"access_token", token}});
  } else {
    reply = Reply::WithJson(200, Json{{"token_type", "Bearer"},
                                      {"expires_in", ttl_s},
                                      {"ext_expires_in", ttl_s},
                                      {"access_token", token}});
  }
  reply.SetHeader("Cache-Control", "no-store, no-cache");
  return reply;
}

Reply FakeArmServer::ImdsTokenLocked(const Incoming& in) {
  const httplib::Request& req = *in.http;
  if (!absl::EqualsIgnoreCase(req.get_header_value("Metadata"), "true")) {
    return ImdsError(400, "invalid_request", "Required metadata header not specified");
  }
  if (req.has_header("X-Forwarded-For")) {
    return ImdsError(400, "invalid_request",
                     "Requests with an X-Forwarded-For header are not accepted");
  }
  if (req.get_param_value("api-version").empty()) {
    return ImdsError(400, "invalid_request", "Required query variable 'api-version' is missing");
  }
  const std::string resource = req.get_param_value("resource");
  if (resource.empty()) {
    return ImdsError(400, "invalid_request", "Required audience parameter not specified");
  }
  const std::string client_id = req.get_param_value("client_id");
  if (!options_.managed_identity_client_id.empty() && !client_id.empty() &&
      !absl::EqualsIgnoreCase(client_id, options_.managed_identity_client_id)) {
    return ImdsError(400, "invalid_request", "Identity not found");
  }
  const std::string principal = !client_id.empty() ? client_id
                                : !options_.managed_identity_client_id.empty()
                                    ? options_.managed_identity_client_id
                                    : std::string("managed-identity");
  const int64_t ttl_s = absl::ToInt64Seconds(config_.token_ttl);
  const int64_t now_s = absl::ToUnixSeconds(in.now.wall);
  const std::string token = tokens_.Issue(Grant::kManagedIdentity, principal, config_.token_ttl,
                                          in.now.mono, in.now.wall, uuids_.Next());
  return Reply::WithJson(200, Json{{"access_token", token},
                                   {"refresh_token", ""},
                                   {"client_id", principal},
                                   {"expires_in", std::to_string(ttl_s)},
                                   {"expires_on", std::to_string(now_s + ttl_s)},
                                   {"ext_expires_in", std::to_string(ttl_s)},
                                   {"not_before", std::to_string(now_s)},
                                   {"resource", resource},
                                   {"token_type", "Bearer"}});
}

Reply FakeArmServer::ImdsInstanceLocked(const Incoming& in) {
  const httplib::Request& req = *in.http;
  if (!absl::EqualsIgnoreCase(req.get_header_value("Metadata"), "true")) {
    return Reply::WithJson(400, Json{{"error",
                                      "Bad request. Required metadata header not "
                                      "specified"}});
  }
  if (req.has_header("X-Forwarded-For")) {
    return Reply::WithJson(400,
                           Json{{"error",
                                 "Bad request. Requests with an X-Forwarded-For header are not "
                                 "accepted"}});
  }
  if (req.get_param_value("api-version").empty()) {
    return Reply::WithJson(
        400, Json{{"error",
                   "Bad request. api-version was not specified in the request. For more "
                   "information refer to aka.ms/azureimds"},
                  {"newest-versions", Json::array({"2023-07-01", "2021-12-13", "2021-02-01"})}});
  }
  const std::string format = req.has_param("format") ? req.get_param_value("format") : "json";
  const ImdsAnswer answer = ImdsLookup(imds_document_, in.route.rest, format);
  Reply reply;
  reply.status = answer.status;
  reply.body = answer.body;
  reply.content_type = answer.content_type;
  return reply;
}

Reply FakeArmServer::OpenIdConfiguration(const Incoming& in) const {
  const std::string tenant_base = absl::StrCat(in.base_url, "/", in.route.tenant);
  return Reply::WithJson(
      200, Json{{"token_endpoint", tenant_base + "/oauth2/v2.0/token"},
                {"token_endpoint_auth_methods_supported",
                 Json::array({"client_secret_post", "private_key_jwt", "client_secret_basic"})},
                {"jwks_uri", tenant_base + "/discovery/v2.0/keys"},
                {"issuer", tenant_base + "/v2.0"},
                {"authorization_endpoint", tenant_base + "/oauth2/v2.0/authorize"},
                {"tenant_region_scope", "NA"}});
}

Reply FakeArmServer::InstanceDiscovery(const Incoming& in) const {
  const std::string host = in.base_url.substr(in.base_url.find("://") + 3);
  return Reply::WithJson(
      200,
      Json{{"tenant_discovery_endpoint", absl::StrCat(in.base_url, "/", options_.tenant_id,
                                                      "/v2.0/.well-known/openid-configuration")},
           {"api-version", "1.1"},
           {"metadata", Json::array({Json{{"preferred_network", host},
                                          {"preferred_cache", host},
                                          {"aliases", Json::array({host})}}})}});
}

}  // namespace kaito::fakearm
