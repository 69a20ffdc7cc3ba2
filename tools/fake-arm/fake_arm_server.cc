#include "tools/fake-arm/fake_arm_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "tools/fake-arm/imds_document.h"

namespace kaito::fakearm {
namespace {

// The api-versions of the async-operation URLs the fake hands out, and of the swagger's
// Location example.
const std::vector<std::string>& OperationApiVersions() {
  static const auto* const kVersions = new std::vector<std::string>{"2016-03-30", "2017-08-31"};
  return *kVersions;
}

const std::vector<std::string>& ComputeApiVersions() {
  static const auto* const kVersions = new std::vector<std::string>{"2024-03-01", "2023-09-01"};
  return *kVersions;
}

bool IsGet(const std::string& method) { return method == "GET" || method == "HEAD"; }

// The code an injected status answers with when the rule names none.
std::string DefaultCode(int status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "InvalidAuthenticationToken";
    case 403:
      return "AuthorizationFailed";
    case 404:
      return "NotFound";
    case 408:
      return "RequestTimeout";
    case 409:
      return "Conflict";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalServerError";
    case 502:
      return "BadGateway";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "GatewayTimeout";
    default:
      return "InjectedFault";
  }
}

ArmError NotFoundError(const std::string& message) {
  return ArmError{404, "ResourceNotFound", message};
}

ArmError NoRoute(const httplib::Request& req) {
  return ArmError{404, "NotFound",
                  absl::StrCat("kaito-fake-arm serves no ", req.method, " ", req.path)};
}

ArmError MethodNotAllowed(const std::string& method) {
  return ArmError{
      405, "MethodNotAllowed",
      absl::StrCat("The requested resource does not support http method '", method, "'.")};
}

ArmError PoolNotFound(const std::string& pool) {
  return ArmError{404, "NotFound", "Agent Pool not found: " + pool};
}

ArmError InvalidParameter(const std::string& target, const std::string& message) {
  return ArmError{400, "InvalidParameter", message, target};
}

// The PUT body checks of §6.3 (the name is the URL's). The fake accepts the catalog's azure
// GPU sizes and the two CPU sizes system pools use, whatever the pool's mode.
std::optional<ArmError> ValidatePoolPut(const std::string& name, const std::string& text,
                                        const VmSizeTable& sizes, Json* body) {
  static const auto* const kTaint = new std::regex(
      "^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?=[^=:]*:(NoSchedule|PreferNoSchedule|NoExecute)$");
  if (!ValidPoolName(name)) {
    return InvalidParameter(
        "name", absl::StrCat("The value of parameter agentPoolProfile.name is invalid. Error "
                             "details: agent pool name '",
                             name,
                             "' must start with a lowercase letter, have max length of 12, "
                             "and only have characters a-z0-9."));
  }
  std::string parse_error;
  *body = ParseJson(text, &parse_error);
  if (body->is_discarded()) {
    return InvalidParameter("parameters",
                            absl::StrCat("The request body is not valid JSON: ", parse_error));
  }
  if (!body->is_object()) {
    return InvalidParameter("parameters", "The request body must be a JSON object.");
  }
  auto props_it = body->find("properties");
  if (props_it == body->end() || !props_it->is_object()) {
    return InvalidParameter("properties",
                            "The value of parameter properties is invalid: an agent pool needs "
                            "an object 'properties'.");
  }
  const Json& props = *props_it;
  auto field = [&](const char* key) -> const Json* {
    auto it = props.find(key);
    return it == props.end() || it->is_null() ? nullptr : &*it;
  };
  auto outside = [](const Json* v, int64_t lo, int64_t hi) {
    if (!v->is_number_integer()) return true;
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) return true;
    return v->get<int64_t>() < lo || v->get<int64_t>() > hi;
  };
  const Json* vm_size = field("vmSize");
  if (vm_size == nullptr || !vm_size->is_string() || !sizes.Known(vm_size->get<std::string>())) {
    return InvalidParameter(
        "properties.vmSize",
        absl::StrCat("The value of parameter agentPoolProfile.vmSize is invalid. Error details: "
                     "the VM size ",
                     vm_size == nullptr ? std::string("(none)") : Dump(*vm_size),
                     " is not supported in location. Please refer to https://aka.ms/aks/vm-size "
                     "for the list of supported sizes."));
  }
  if (const Json* count = field("count"); count != nullptr && outside(count, 0, 1000)) {
    return InvalidParameter("properties.count",
                            "The value of parameter agentPoolProfile.count is invalid. Error "
                            "details: count must be an integer in [0, 1000].");
  }
  if (const Json* disk = field("osDiskSizeGB"); disk != nullptr && outside(disk, 30, 2048)) {
    return InvalidParameter("properties.osDiskSizeGB",
                            "The value of parameter agentPoolProfile.osDiskSizeGB is invalid. "
                            "Error details: OS disk size must be in [30, 2048] GB.");
  }
  if (const Json* taints = field("nodeTaints")) {
    if (!taints->is_array()) {
      return InvalidParameter("properties.nodeTaints",
                              "The value of parameter agentPoolProfile.nodeTaints is invalid: "
                              "expected an array of 'key=value:Effect' strings.");
    }
    for (const Json& taint : *taints) {
      if (!taint.is_string() || !std::regex_match(taint.get<std::string>(), *kTaint)) {
        return InvalidParameter(
            "properties.nodeTaints",
            absl::StrCat("The value of parameter agentPoolProfile.nodeTaints is invalid. Error "
                         "details: taint ",
                         Dump(taint),
                         " is not in the form key=value:Effect (Effect one of NoSchedule, "
                         "PreferNoSchedule, NoExecute)."));
      }
    }
  }
  if (const Json* labels = field("nodeLabels")) {
    const bool ok = labels->is_object() && std::all_of(labels->begin(), labels->end(),
                                                       [](const Json& v) { return v.is_string(); });
    if (!ok) {
      return InvalidParameter("properties.nodeLabels",
                              "The value of parameter agentPoolProfile.nodeLabels is invalid: "
                              "expected an object of strings.");
    }
  }
  if (const Json* zones = field("availabilityZones")) {
    const bool ok = zones->is_array() && std::all_of(zones->begin(), zones->end(),
                                                     [](const Json& v) { return v.is_string(); });
    if (!ok) {
      return InvalidParameter("properties.availabilityZones",
                              "The value of parameter agentPoolProfile.availabilityZones is "
                              "invalid: expected an array of strings.");
    }
  }
  if (auto tags = body->find("tags");
      tags != body->end() && !tags->is_null() && !tags->is_object()) {
    return InvalidParameter("tags", "The value of parameter tags is invalid: expected an object.");
  }
  return std::nullopt;
}

// The query string of `target` as sent ("" without one).
std::string RawQuery(const std::string& target) {
  const size_t q = target.find('?');
  return q == std::string::npos ? "" : target.substr(q + 1);
}

std::string RawPath(const std::string& target) { return target.substr(0, target.find('?')); }

}  // namespace

Route ClassifyRoute(const std::string& method, const std::string& path) {
  Route r;
  const std::vector<std::string> seg = absl::StrSplit(path, '/', absl::SkipEmpty());
  std::vector<std::string> low;
  low.reserve(seg.size());
  for (const std::string& s : seg) low.push_back(absl::AsciiStrToLower(s));
  const size_t n = seg.size();
  auto is = [&](size_t i, const char* literal) { return i < n && low[i] == literal; };
  const bool get = IsGet(method);
  if (n == 0) return r;

  if (low[0] == "_fake") {
    r.kind = Route::kControl;
    r.op.clear();
    r.rest.assign(seg.begin() + 1, seg.end());
    return r;
  }
  if (low[0] == "metadata") {
    if (n == 4 && is(1, "identity") && is(2, "oauth2") && is(3, "token")) {
      r.kind = Route::kImdsToken;
      if (get) r.op = "imds.token";
    } else if (is(1, "instance")) {
      r.kind = Route::kImdsInstance;
      r.rest.assign(seg.begin() + 2, seg.end());
      if (get) r.op = "imds.instance";
    }
    return r;
  }
  if (low[0] == "subscriptions") {
    r.kind = Route::kArmOther;
    if (n < 2) return r;
    r.subscription = seg[1];
    if (is(2, "resourcegroups") && n >= 4) {
      r.resource_group = seg[3];
      if (is(4, "providers") && is(5, "microsoft.containerservice") && is(6, "managedclusters") &&
          n >= 8) {
        r.cluster = seg[7];
        if (n == 8) {
          r.kind = Route::kCluster;
          if (get) r.op = "cluster.get";
        } else if (is(8, "agentpools") && n == 9) {
          r.kind = Route::kPoolList;
          if (get) r.op = "pool.list";
        } else if (is(8, "agentpools") && n == 10) {
          r.kind = Route::kPool;
          r.pool = seg[9];
          if (get) r.op = "pool.get";
          if (method == "PUT") r.op = "pool.put";
          if (method == "DELETE") r.op = "pool.delete";
        }
      } else if (is(4, "providers") && is(5, "microsoft.compute") &&
                 is(6, "virtualmachinescalesets")) {
        if (n == 7) {
          r.kind = Route::kVmssList;
          if (get) r.op = "vmss.list";
        } else if (n == 9 && is(8, "virtualmachines")) {
          r.kind = Route::kVmList;
          r.vmss = seg[7];
          if (get) r.op = "vm.list";
        }
      }
    } else if (is(2, "providers") && is(4, "locations") && n >= 6) {
      r.location = seg[5];
      if (is(3, "microsoft.containerservice") && n == 8 &&
          (is(6, "operations") || is(6, "operationresults"))) {
        r.kind = is(6, "operations") ? Route::kOperation : Route::kOperationResult;
        r.operation_id = seg[7];
        if (get) r.op = r.kind == Route::kOperation ? "op.poll" : "opresult.poll";
      } else if (is(3, "microsoft.compute") && n == 7 && is(6, "usages")) {
        r.kind = Route::kUsages;
        if (get) r.op = "usages";
      }
    }
    return r;
  }
  if (n == 4 && is(1, "oauth2") && is(2, "v2.0") && is(3, "token")) {
    r.kind = Route::kTokenV2;
  } else if (n == 3 && is(1, "oauth2") && is(2, "token")) {
    r.kind = Route::kTokenV1;
  } else if (n == 4 && is(1, "v2.0") && is(2, ".well-known") && is(3, "openid-configuration")) {
    r.kind = Route::kOpenIdConfiguration;
  } else if (n == 3 && is(0, "common") && is(1, "discovery") && is(2, "instance")) {
    r.kind = Route::kInstanceDiscovery;
  } else {
    return r;
  }
  r.tenant = seg[0];
  if ((r.kind == Route::kTokenV2 || r.kind == Route::kTokenV1) && method == "POST") r.op = "token";
  return r;
}

void Reply::SetHeader(const std::string& name, const std::string& value) {
  for (auto& [n, v] : headers) {
    if (absl::EqualsIgnoreCase(n, name)) {
      v = value;
      return;
    }
  }
  headers.emplace_back(name, value);
}

bool Reply::HasHeader(const std::string& name) const {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return absl::EqualsIgnoreCase(h.first, name); });
}

Reply Reply::WithJson(int status, const Json& body) {
  Reply r;
  r.status = status;
  r.body = Dump(body);
  return r;
}

Reply Reply::Arm(const ArmError& error) {
  Reply r = WithJson(error.http_status, error.Body());
  r.SetHeader("x-ms-error-code", error.code);
  return r;
}

FakeArmServer::FakeArmServer(FakeArmOptions options, const presets::Catalog& catalog, Clock* clock)
    : options_(std::move(options)),
      identity_{options_.subscription_id, options_.resource_group, options_.cluster_name,
                options_.location},
      clock_(clock),
      sizes_(catalog),
      started_(clock->Monotonic()),
      config_(FakeArmConfig::FromOptions(options_)),
      pools_(identity_, &sizes_, [this] { return uuids_.Next(); }),
      faults_(options_.seed),
      imds_document_(DefaultImdsDocument(identity_)) {
  absl::MutexLock lock(&mu_);
  pools_.Reset(Now());
}

std::string FakeArmServer::base_url() const {
  return absl::StrCat(options_.tls.enabled() ? "https" : "http", "://127.0.0.1:", port_);
}

void FakeArmServer::Register(httplib::Server& http) {
  auto serve = [this](const httplib::Request& req, httplib::Response& res) { Serve(req, res); };
  http.Get(".*", serve);
  http.Post(".*", serve);
  http.Put(".*", serve);
  http.Patch(".*", serve);
  http.Delete(".*", serve);
  http.Options(".*", serve);
  // Errors cpp-httplib answers by itself (a malformed request, a body over the limit) get
  // an ARM error body too; the fake's own answers are left as they are.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request&,
                                                                     httplib::Response& res) {
    if (res.has_header("x-ms-request-id")) return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("x-ms-request-id", uuids_.Next());
    res.set_header("x-ms-error-code", "BadRequest");
    res.set_content(Dump(ArmError{res.status, "BadRequest",
                                  absl::StrCat("kaito-fake-arm could not take the request (HTTP ",
                                               res.status, ")")}
                             .Body()),
                    kJsonContentType);
    return httplib::Server::HandlerResponse::Handled;
  }));
}

void FakeArmServer::Serve(const httplib::Request& req, httplib::Response& res) {
  const absl::Time arrived = absl::Now();  // Real time: latency includes real sleeps.
  Incoming in;
  in.http = &req;
  in.route = ClassifyRoute(req.method, req.path);
  {
    std::string host = req.get_header_value("Host");
    const bool usable = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
      return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == ':' ||
             c == '-' || c == '[' || c == ']';
    });
    in.base_url = absl::StrCat(options_.tls.enabled() ? "https" : "http", "://",
                               usable ? host : absl::StrCat("127.0.0.1:", port_));
  }
  const RequestClass request_class = ClassOf(req.method);
  const std::string remaining_header = RemainingHeader(request_class);
  FaultAction action;
  std::vector<int64_t> fired;
  std::optional<uint64_t> seq;
  absl::Duration latency = absl::ZeroDuration();
  Reply reply;
  try {
    if (in.route.kind == Route::kControl) {
      reply = ServeControl(in);
    } else {
      if ((in.route.kind == Route::kTokenV2 || in.route.kind == Route::kTokenV1) &&
          !options_.federated_token_file.empty()) {
        // Re-read at each request (outside the lock): a rotated token is seen at once.
        std::ifstream file(options_.federated_token_file, std::ios::binary);
        std::stringstream content;
        if (file.is_open() && (content << file.rdbuf() || file.peek() == EOF)) {
          in.federated_assertion = content.str();
        } else {
          in.federated_error = "cannot read " + options_.federated_token_file;
        }
      }
      absl::MutexLock lock(&mu_);
      in.now = Now();
      pools_.Advance(in.now);
      FactsLocked(in);
      JournalEntry entry;
      entry.t_ms = absl::ToInt64Milliseconds(in.now.mono - started_);
      entry.method = req.method;
      entry.path = req.path;
      entry.query = RawQuery(req.target);
      entry.op = in.route.op;
      entry.pool = in.facts.pool;
      for (const auto& [name, value] : req.headers) {
        if (name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
            name == "LOCAL_PORT") {
          continue;
        }
        const std::string key = absl::AsciiStrToLower(name);
        const std::string shown = key == "authorization" ? RedactAuthorization(value) : value;
        if (entry.headers.contains(key)) {
          entry.headers[key] = entry.headers[key].get<std::string>() + ", " + shown;
        } else {
          entry.headers[key] = shown;
        }
      }
      entry.body = req.body;
      seq = journal_.Begin(std::move(entry));
      FaultRules::Fired matched = faults_.Evaluate(in.facts, in.now.mono);
      action = std::move(matched.action);
      fired = std::move(matched.ids);
      latency = config_.latency;
      reply = action.status.has_value() ? FaultReply(in, action) : ServeLocked(in, action);
      if (!reply.HasHeader(remaining_header)) {
        reply.SetHeader(remaining_header, std::to_string(throttle_.Remaining(
                                              in.principal, request_class, in.now.mono)));
      }
    }
  } catch (const std::exception& e) {
    // A bug of the fake, not of the client: answered, never a crash.
    reply = Reply::Arm(
        ArmError{500, "InternalServerError", absl::StrCat("kaito-fake-arm failed: ", e.what())});
  }
  if (const absl::Duration wait = action.delay + latency; wait > absl::ZeroDuration()) {
    absl::SleepFor(wait);
  }
  for (const auto& [name, value] : action.headers) reply.SetHeader(name, value);
  reply.SetHeader("x-ms-request-id", uuids_.Next());
  const std::string correlation = req.get_header_value("x-ms-correlation-request-id");
  reply.SetHeader("x-ms-correlation-request-id", correlation.empty() ? uuids_.Next() : correlation);
  if (!reply.HasHeader(remaining_header)) {
    reply.SetHeader(remaining_header, std::to_string(kUnthrottledRemaining));
  }
  Write(reply, action, req.method, res);
  const int64_t latency_ms = absl::ToInt64Milliseconds(absl::Now() - arrived);
  if (seq.has_value()) {
    absl::MutexLock lock(&mu_);
    journal_.Finish(*seq, reply.status, latency_ms, std::move(fired));
  }
  spdlog::debug("kaito-fake-arm: {} {} -> {} ({} ms{})", req.method, req.path, reply.status,
                latency_ms,
                action.drop_connection ? ", connection dropped"
                : action.truncate_body ? ", body truncated"
                                       : "");
}

void FakeArmServer::Write(const Reply& reply, const FaultAction& action, const std::string& method,
                          httplib::Response& res) {
  res.status = reply.status;
  for (const auto& [name, value] : reply.headers) res.set_header(name, value);
  const bool bodiless = reply.status == 204 || reply.status == 304 || reply.status < 200;
  const bool broken = action.drop_connection || action.truncate_body;
  if (broken && !bodiless && method != "HEAD") {
    // The headers go out with the full length declared; the provider then sends nothing
    // (drop) or the first half of the body (truncate) and fails, which makes cpp-httplib
    // close the connection: the client reads a short body and then EOF.
    const size_t declared = std::max<size_t>(reply.body.size(), 1);
    const size_t kept = action.drop_connection ? 0 : reply.body.size() / 2;
    auto sent = std::make_shared<std::string>(reply.body.substr(0, kept));
    res.set_content_provider(declared, reply.content_type,
                             [sent](size_t offset, size_t, httplib::DataSink& sink) {
                               if (offset < sent->size()) {
                                 return sink.write(sent->data() + offset, sent->size() - offset);
                               }
                               return false;
                             });
    return;
  }
  if (broken) res.set_header("Connection", "close");
  if (!reply.body.empty()) {
    res.set_content(reply.body, reply.content_type);
  } else {
    res.set_header("Content-Type", reply.content_type);
  }
}

void FakeArmServer::FactsLocked(Incoming& in) {
  const Route& route = in.route;
  RequestFacts& facts = in.facts;
  facts.op = route.op;
  facts.path = in.http->path;
  facts.pool = route.pool;
  if (route.kind == Route::kOperation || route.kind == Route::kOperationResult) {
    if (std::optional<PoolOperation> op = pools_.FindOperation(route.operation_id)) {
      facts.pool = op->pool;
    }
  } else if (route.kind == Route::kVmList) {
    // aks-{pool}-{digits}-vmss
    const std::vector<std::string> parts = absl::StrSplit(route.vmss, '-');
    if (parts.size() == 4 && absl::EqualsIgnoreCase(parts[0], "aks")) facts.pool = parts[1];
  }
  if (route.op == "pool.put") {
    facts.spot = false;
    facts.zonal = false;
    const Json body = ParseJson(in.http->body);
    if (body.is_object() && body.contains("properties") && body["properties"].is_object()) {
      const Json& props = body["properties"];
      if (props.contains("vmSize") && props["vmSize"].is_string()) {
        facts.vm_size = props["vmSize"].get<std::string>();
      }
      facts.spot = props.contains("scaleSetPriority") && props["scaleSetPriority"] == "Spot";
      facts.zonal = props.contains("availabilityZones") && props["availabilityZones"].is_array() &&
                    !props["availabilityZones"].empty();
    }
  } else if (!facts.pool.empty()) {
    if (std::optional<AgentPool> pool = pools_.Find(facts.pool); pool && !pool->VmSize().empty()) {
      facts.vm_size = pool->VmSize();
    }
  }
  const std::string authorization = in.http->get_header_value("Authorization");
  if (absl::StartsWithIgnoreCase(authorization, "Bearer ")) {
    const std::string token(absl::StripAsciiWhitespace(authorization.substr(7)));
    TokenRegistry::Check check = tokens_.Lookup(token, in.now.mono);
    if (check.result != TokenRegistry::Check::kUnknown) in.principal = check.client;
  }
}

std::string FakeArmServer::Expand(const std::string& text, const Incoming& in) const {
  return absl::StrReplaceAll(text, {{"{pool}", in.facts.pool},
                                    {"{vm_size}", in.facts.vm_size.value_or("")},
                                    {"{location}", identity_.location},
                                    {"{subscription}", identity_.subscription},
                                    {"{client}", in.principal}});
}

Reply FakeArmServer::FaultReply(const Incoming& in, const FaultAction& action) const {
  const int status = *action.status;
  if (action.body_raw.has_value()) {
    Reply r;
    r.status = status;
    r.body = *action.body_raw;
    if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(r.body), "<")) {
      r.content_type = "text/html";
    }
    return r;
  }
  return Reply::Arm(ArmError{status, action.code.empty() ? DefaultCode(status) : action.code,
                             action.message.empty()
                                 ? absl::StrCat("kaito-fake-arm injected HTTP ", status)
                                 : Expand(action.message, in)});
}

OperationFaults FakeArmServer::FaultsFor(const FaultAction& action, const Incoming& in) const {
  OperationFaults faults;
  faults.stick = action.stick_in_progress;
  if (action.lro_fail.has_value()) {
    OperationError error = *action.lro_fail;
    error.message = Expand(error.message, in);
    for (Json& detail : error.details) {
      if (detail.is_object() && detail.contains("message") && detail["message"].is_string()) {
        detail["message"] = Expand(detail["message"].get<std::string>(), in);
      }
    }
    faults.fail = std::move(error);
  }
  return faults;
}

Reply FakeArmServer::ServeLocked(Incoming& in, const FaultAction& action) {
  const Route& route = in.route;
  const bool known = route.kind != Route::kUnknown && route.kind != Route::kArmOther;
  const bool arm = route.kind >= Route::kCluster && route.kind <= Route::kArmOther;
  if (!arm && known && route.op == "other" && route.kind != Route::kOpenIdConfiguration &&
      route.kind != Route::kInstanceDiscovery) {
    return Reply::Arm(MethodNotAllowed(in.http->method));
  }
  switch (route.kind) {
    case Route::kTokenV2:
      return TokenLocked(in, /*v1=*/false);
    case Route::kTokenV1:
      return TokenLocked(in, /*v1=*/true);
    case Route::kOpenIdConfiguration:
      return OpenIdConfiguration(in);
    case Route::kInstanceDiscovery:
      return InstanceDiscovery(in);
    case Route::kImdsToken:
      return ImdsTokenLocked(in);
    case Route::kImdsInstance:
      return ImdsInstanceLocked(in);
    case Route::kUnknown:
    case Route::kControl:
      return Reply::Arm(NoRoute(*in.http));
    default:
      return ServeArmLocked(in, action);
  }
}

std::optional<Reply> FakeArmServer::AuthenticateLocked(Incoming& in) {
  const std::string authorization = in.http->get_header_value("Authorization");
  std::string code = "InvalidAuthenticationToken";
  std::string message;
  std::string description = "The access token is missing or invalid.";
  if (authorization.empty()) {
    message = "Authentication failed. The 'Authorization' header is missing.";
  } else if (!absl::StartsWithIgnoreCase(authorization, "Bearer ")) {
    message =
        "Authentication failed. The 'Authorization' header is provided in an invalid "
        "format.";
  } else {
    const std::string token(absl::StripAsciiWhitespace(authorization.substr(7)));
    const TokenRegistry::Check check = tokens_.Lookup(token, in.now.mono);
    if (check.result == TokenRegistry::Check::kValid) {
      in.principal = check.client;
      return std::nullopt;
    }
    if (check.result == TokenRegistry::Check::kExpired) {
      code = "ExpiredAuthenticationToken";
      description = "The access token expired.";
      message = absl::StrCat("The access token expiry UTC time '", Rfc3339(check.expiry),
                             "' is earlier than current UTC time '", Rfc3339(in.now.wall), "'.");
    } else {
      message = "The access token is invalid.";
    }
  }
  Reply reply = Reply::Arm(ArmError{401, code, message});
  reply.SetHeader(
      "WWW-Authenticate",
      absl::StrCat("Bearer authorization_uri=\"", in.base_url, "/", options_.tenant_id,
                   "\", error=\"invalid_token\", error_description=\"", description, "\""));
  return reply;
}

Reply FakeArmServer::ServeArmLocked(Incoming& in, const FaultAction& action) {
  if (std::optional<Reply> denied = AuthenticateLocked(in)) return *denied;
  const Route& route = in.route;
  const RequestClass request_class = ClassOf(in.http->method);
  const Throttle::Decision decision = throttle_.Take(in.principal, request_class, in.now.mono);
  auto answer = [&]() -> Reply {
    if (!decision.allowed) {
      const int64_t wait = decision.retry_after_s;
      Reply r = Reply::Arm(
          ArmError{429, "SubscriptionRequestsThrottled",
                   absl::StrCat("Number of '", ClassName(request_class),
                                "' requests for subscription '", identity_.subscription,
                                "' actor '", in.principal, "' exceeded. Please try again after '",
                                wait, "' seconds or switch to another subscription.")});
      const std::string& form = throttle_.config()->retry_after_form;
      if (form == "date") {
        r.SetHeader("Retry-After", HttpDate(in.now.wall + absl::Seconds(wait)));
      } else if (form == "ms") {
        r.SetHeader("retry-after-ms", std::to_string(wait * 1000));
        r.SetHeader("x-ms-retry-after-ms", std::to_string(wait * 1000));
      } else {
        r.SetHeader("Retry-After", std::to_string(wait));
      }
      return r;
    }
    if (route.kind == Route::kArmOther) {
      return Reply::Arm(NoRoute(*in.http));
    }
    if (route.op == "other") {
      return Reply::Arm(MethodNotAllowed(in.http->method));
    }
    std::vector<std::string> versions = options_.api_versions;
    if (route.kind == Route::kOperation || route.kind == Route::kOperationResult) {
      versions.insert(versions.end(), OperationApiVersions().begin(), OperationApiVersions().end());
    } else if (route.kind == Route::kVmssList || route.kind == Route::kVmList ||
               route.kind == Route::kUsages) {
      versions = ComputeApiVersions();
    }
    if (!in.http->has_param("api-version")) {
      return Reply::Arm(ArmError{400, "MissingApiVersionParameter",
                                 "The api-version query parameter (?api-version=) is required "
                                 "for all requests."});
    }
    const std::string version = in.http->get_param_value("api-version");
    if (std::find(versions.begin(), versions.end(), version) == versions.end()) {
      return Reply::Arm(ArmError{
          400, "InvalidApiVersionParameter",
          absl::StrCat("The api-version '", version, "' is invalid. The supported versions are '",
                       absl::StrJoin(versions, ","), "'.")});
    }
    if (!absl::EqualsIgnoreCase(route.subscription, identity_.subscription)) {
      return Reply::Arm(NotFoundError(
          absl::StrCat("The subscription '", route.subscription, "' could not be found.")));
    }
    switch (route.kind) {
      case Route::kCluster:
      case Route::kPoolList:
      case Route::kPool:
        if (!absl::EqualsIgnoreCase(route.resource_group, identity_.resource_group)) {
          return Reply::Arm(NotFoundError(
              absl::StrCat("Resource group '", route.resource_group, "' could not be found.")));
        }
        if (!absl::EqualsIgnoreCase(route.cluster, identity_.cluster)) {
          return Reply::Arm(NotFoundError(
              absl::StrCat("The Resource 'Microsoft.ContainerService/managedClusters/",
                           route.cluster, "' under resource group '", route.resource_group,
                           "' was not found. For more details please go to "
                           "https://aka.ms/ARMResourceNotFoundFix")));
        }
        break;
      case Route::kVmssList:
      case Route::kVmList:
        if (!absl::EqualsIgnoreCase(route.resource_group, identity_.NodeResourceGroup())) {
          return Reply::Arm(NotFoundError(
              absl::StrCat("Resource group '", route.resource_group, "' could not be found.")));
        }
        break;
      case Route::kUsages:
        if (!absl::EqualsIgnoreCase(route.location, identity_.location)) {
          return Reply::Arm(
              NotFoundError(absl::StrCat("kaito-fake-arm models location '", identity_.location,
                                         "' only, not '", route.location, "'.")));
        }
        break;
      default:
        break;
    }
    switch (route.kind) {
      case Route::kCluster:
        return ClusterLocked(in);
      case Route::kPoolList:
        return PoolListLocked(in);
      case Route::kPool:
        if (route.op == "pool.put") return PoolPutLocked(in, action);
        if (route.op == "pool.delete") return PoolDeleteLocked(in, action);
        return PoolGetLocked(in);
      case Route::kOperation:
        return OperationLocked(in, /*result_form=*/false);
      case Route::kOperationResult:
        return OperationLocked(in, /*result_form=*/true);
      case Route::kVmssList:
        return VmssListLocked(in);
      case Route::kVmList:
        return VmListLocked(in);
      case Route::kUsages:
        return UsagesLocked(in);
      default:
        return Reply::Arm(NoRoute(*in.http));
    }
  };
  Reply reply = answer();
  reply.SetHeader(RemainingHeader(request_class), std::to_string(decision.remaining));
  return reply;
}

std::string FakeArmServer::OperationUrl(const Incoming& in, const char* kind,
                                        const std::string& id) const {
  return absl::StrCat(in.base_url, "/subscriptions/", identity_.subscription,
                      "/providers/Microsoft.ContainerService/locations/", identity_.location, "/",
                      kind, "/", id, "?api-version=2016-03-30");
}

void FakeArmServer::AddRetryAfterLocked(Reply& reply) const {
  if (config_.poll_retry_after_s > 0) {
    reply.SetHeader("Retry-After", std::to_string(config_.poll_retry_after_s));
  }
}

Reply FakeArmServer::ClusterLocked(const Incoming& in) const {
  return Reply::WithJson(200, Json{{"id", identity_.ClusterId()},
                                   {"name", identity_.cluster},
                                   {"location", identity_.location},
                                   {"type", "Microsoft.ContainerService/ManagedClusters"},
                                   {"properties",
                                    {{"provisioningState", "Succeeded"},
                                     {"kubernetesVersion", "1.29.2"},
                                     {"currentKubernetesVersion", "1.29.2"},
                                     {"nodeResourceGroup", identity_.NodeResourceGroup()},
                                     {"powerState", {{"code", "Running"}}}}}});
}

Reply FakeArmServer::PoolPutLocked(Incoming& in, const FaultAction& action) {
  Json body;
  if (std::optional<ArmError> invalid =
          ValidatePoolPut(in.route.pool, in.http->body, sizes_, &body)) {
    return Reply::Arm(*invalid);
  }
  Json properties = body["properties"];
  Json tags = body.contains("tags") ? body["tags"] : Json();
  AgentPoolModel::PutResult result =
      pools_.Put(in.route.pool, std::move(properties), std::move(tags), FaultsFor(action, in),
                 config_.Policy(), in.now);
  if (result.error.has_value()) return Reply::Arm(*result.error);
  Reply reply = Reply::WithJson(result.http_status, pools_.PoolResource(result.pool));
  reply.SetHeader("Azure-AsyncOperation", OperationUrl(in, "operations", result.op.id));
  AddRetryAfterLocked(reply);
  return reply;
}

Reply FakeArmServer::PoolGetLocked(const Incoming& in) {
  std::optional<AgentPool> pool = pools_.Find(in.route.pool);
  if (!pool.has_value()) {
    return Reply::Arm(PoolNotFound(in.route.pool));
  }
  return Reply::WithJson(200, pools_.PoolResource(*pool));
}

Reply FakeArmServer::PoolListLocked(const Incoming& in) {
  const std::vector<AgentPool> pools = pools_.Pools();
  size_t start = 0;
  if (in.http->has_param("$skipToken") &&
      !absl::SimpleAtoi(in.http->get_param_value("$skipToken"), &start)) {
    return Reply::Arm(InvalidParameter("$skipToken",
                                       "The value of parameter $skipToken is "
                                       "invalid."));
  }
  const size_t page = static_cast<size_t>(std::max<int64_t>(0, config_.list_page_size));
  const size_t end = page > 0 ? std::min(pools.size(), start + page) : pools.size();
  Json value = Json::array();
  for (size_t i = start; i < end; ++i) value.push_back(pools_.PoolResource(pools[i]));
  Json out = {{"value", std::move(value)}};
  if (page > 0 && end < pools.size()) {
    std::vector<std::string> kept;
    for (absl::string_view part :
         absl::StrSplit(RawQuery(in.http->target), '&', absl::SkipEmpty())) {
      if (!absl::StartsWithIgnoreCase(part, "$skipToken=") &&
          !absl::StartsWithIgnoreCase(part, "%24skipToken=")) {
        kept.emplace_back(part);
      }
    }
    kept.push_back(absl::StrCat("$skipToken=", end));
    out["nextLink"] =
        absl::StrCat(in.base_url, RawPath(in.http->target), "?", absl::StrJoin(kept, "&"));
  }
  return Reply::WithJson(200, out);
}

Reply FakeArmServer::PoolDeleteLocked(Incoming& in, const FaultAction& action) {
  AgentPoolModel::DeleteResult result =
      pools_.Delete(in.route.pool, FaultsFor(action, in), config_.Policy(), in.now);
  switch (result.outcome) {
    case AgentPoolModel::DeleteResult::kAbsent:
      if (config_.delete_absent == "404") {
        return Reply::Arm(PoolNotFound(in.route.pool));
      } else {
        Reply r;
        r.status = 204;
        return r;
      }
    case AgentPoolModel::DeleteResult::kRejected:
      return Reply::Arm(*result.error);
    case AgentPoolModel::DeleteResult::kAccepted:
      break;
  }
  Reply reply;
  reply.status = 202;
  reply.SetHeader("Location", OperationUrl(in, "operationresults", result.op.id));
  AddRetryAfterLocked(reply);
  return reply;
}

Reply FakeArmServer::OperationLocked(const Incoming& in, bool result_form) {
  std::optional<PoolOperation> op = pools_.FindOperation(in.route.operation_id);
  if (!op.has_value() || !absl::EqualsIgnoreCase(in.route.location, identity_.location)) {
    return Reply::Arm(
        ArmError{404, "NotFound",
                 absl::StrCat("The operation '", in.route.operation_id, "' was not found.")});
  }
  const bool running = op->status == OperationStatus::kInProgress;
  if (!result_form) {
    Json body = {{"id", absl::StrCat("/subscriptions/", identity_.subscription,
                                     "/providers/Microsoft.ContainerService/locations/",
                                     identity_.location, "/operations/", op->id)},
                 {"name", op->id},
                 {"status", StatusName(op->status)},
                 {"startTime", Rfc3339(op->start_wall)}};
    if (!running) {
      body["endTime"] = Rfc3339(op->end_wall);
      body["percentComplete"] = 100;
    }
    if (op->error.has_value()) body["error"] = op->error->ToJson();
    Reply reply = Reply::WithJson(200, body);
    if (running) AddRetryAfterLocked(reply);
    return reply;
  }
  Reply reply;
  if (running) {
    reply.status = 202;
    reply.SetHeader("Location", OperationUrl(in, "operationresults", op->id));
    AddRetryAfterLocked(reply);
    return reply;
  }
  if (op->status == OperationStatus::kSucceeded) {
    reply.status = 204;
    return reply;
  }
  const OperationError error = op->error.value_or(OperationError{"InternalOperationError", ""});
  return Reply::Arm(ArmError{409, error.code, error.message, "", error.details});
}

Reply FakeArmServer::VmssListLocked(const Incoming& in) {
  Json value = Json::array();
  for (const AgentPool& pool : pools_.Pools()) {
    if (!AgentPoolModel::HasVms(pool)) continue;
    const std::string vmss = AgentPoolModel::VmssName(pool.name);
    value.push_back(Json{
        {"id", absl::StrCat(identity_.NodeResourceGroupId(),
                            "/providers/Microsoft.Compute/virtualMachineScaleSets/", vmss)},
        {"name", vmss},
        {"location", identity_.location},
        {"sku",
         {{"name", sizes_.Canonical(pool.VmSize())}, {"tier", "Standard"}, {"capacity", pool.vms}}},
        {"tags", {{"aks-managed-poolName", pool.name}, {"aks-managed-orchestrator", "Kubernetes"}}},
        {"properties", {{"provisioningState", "Succeeded"}}}});
  }
  return Reply::WithJson(200, Json{{"value", std::move(value)}});
}

Reply FakeArmServer::VmListLocked(const Incoming& in) {
  for (const AgentPool& pool : pools_.Pools()) {
    const std::string vmss = AgentPoolModel::VmssName(pool.name);
    if (!AgentPoolModel::HasVms(pool) || !absl::EqualsIgnoreCase(vmss, in.route.vmss)) continue;
    const std::string vmss_id =
        absl::StrCat(identity_.NodeResourceGroupId(),
                     "/providers/Microsoft.Compute/virtualMachineScaleSets/", vmss);
    const std::string size = sizes_.Canonical(pool.VmSize());
    Json value = Json::array();
    for (int i = 0; i < pool.vms; ++i) {
      value.push_back(
          Json{{"id", absl::StrCat(vmss_id, "/virtualMachines/", i)},
               {"name", absl::StrCat(vmss, "_", i)},
               {"instanceId", std::to_string(i)},
               {"location", identity_.location},
               {"sku", {{"name", size}, {"tier", "Standard"}}},
               {"properties",
                {{"provisioningState", "Succeeded"},
                 {"latestModelApplied", true},
                 {"hardwareProfile", {{"vmSize", size}}},
                 {"osProfile", {{"computerName", vmss + Base36(static_cast<uint64_t>(i), 6)}}}}}});
    }
    return Reply::WithJson(200, Json{{"value", std::move(value)}});
  }
  return Reply::Arm(NotFoundError(absl::StrCat(
      "The Resource 'Microsoft.Compute/virtualMachineScaleSets/", in.route.vmss,
      "' under resource group '", in.route.resource_group,
      "' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")));
}

Reply FakeArmServer::UsagesLocked(const Incoming& in) {
  const PoolPolicy policy = config_.Policy();
  std::vector<QuotaFamily> families = sizes_.families();
  for (const auto& [name, limit] : config_.quotas) {
    const bool listed = absl::EqualsIgnoreCase(name, "cores") ||
                        std::any_of(families.begin(), families.end(), [&](const QuotaFamily& f) {
                          return absl::EqualsIgnoreCase(f.name, name);
                        });
    if (!listed) families.push_back({name, name + " vCPUs"});
  }
  Json value = Json::array();
  auto usage = [](const std::string& name, const std::string& localized, int64_t used,
                  int64_t limit) {
    return Json{{"name", {{"value", name}, {"localizedValue", localized}}},
                {"currentValue", used},
                {"limit", limit},
                {"unit", "Count"}};
  };
  for (const QuotaFamily& family : families) {
    value.push_back(usage(family.name, family.localized_name, pools_.FamilyUsage(family.name),
                          policy.QuotaLimit(family.name)));
  }
  value.push_back(
      usage("cores", "Total Regional vCPUs", pools_.TotalUsage(), policy.QuotaLimit("cores")));
  return Reply::WithJson(200, Json{{"value", std::move(value)}});
}

}  // namespace kaito::fakearm
