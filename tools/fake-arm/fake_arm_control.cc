// The control API (`/_fake/*`, no auth): what tests use to shape and inspect the fake.
#include <httplib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tools/fake-arm/fake_arm_server.h"
#include "tools/fake-arm/json_fields.h"

namespace kaito::fakearm {
namespace {

constexpr int64_t kMaxDelayMs = int64_t{24} * 3600 * 1000;

Reply ControlError(int status, const std::string& code, const std::string& message) {
  return Reply::Arm(ArmError{status, code, message});
}

Reply BadRequest(const absl::Status& status) {
  return ControlError(400, "InvalidRequest", std::string(status.message()));
}

// The body as JSON; an empty body reads as `{}`.
absl::StatusOr<Json> BodyJson(const httplib::Request& req) {
  if (absl::StripAsciiWhitespace(req.body).empty()) return Json::object();
  std::string error;
  Json body = ParseJson(req.body, &error);
  if (body.is_discarded()) {
    return absl::InvalidArgumentError("the request body is not valid JSON: " + error);
  }
  return body;
}

// "<html>…</html>" of a gateway error page, as a load balancer in front of ARM writes one.
std::string GatewayPage(int status, const char* reason) {
  return absl::StrCat("<html><head><title>", status, " ", reason,
                      "</title></head><body><center><h1>", status, " ", reason,
                      "</h1></center><hr><center>kaito-fake-arm</center></body></html>");
}

}  // namespace

FakeArmConfig FakeArmConfig::FromOptions(const FakeArmOptions& options) {
  FakeArmConfig config;
  config.prov_delay = options.prov_delay;
  config.upd_delay = options.upd_delay;
  config.del_delay = options.del_delay;
  config.poll_retry_after_s = options.poll_retry_after_s;
  config.token_ttl = options.token_ttl;
  config.list_page_size = options.list_page_size;
  config.latency = options.latency;
  config.quotas = options.vcpu_quota;
  return config;
}

Json FakeArmConfig::ToJson() const {
  Json quota_json = Json::object();
  for (const auto& [family, limit] : quotas) quota_json[family] = limit;
  return Json{{"prov_delay_ms", absl::ToInt64Milliseconds(prov_delay)},
              {"upd_delay_ms", absl::ToInt64Milliseconds(upd_delay)},
              {"del_delay_ms", absl::ToInt64Milliseconds(del_delay)},
              {"poll_retry_after_s", poll_retry_after_s},
              {"token_ttl_s", absl::ToInt64Seconds(token_ttl)},
              {"list_page_size", list_page_size},
              {"latency_ms", absl::ToInt64Milliseconds(latency)},
              {"quota_mode", quota_mode},
              {"quotas", quota_json},
              {"delete_creating", delete_creating},
              {"delete_absent", delete_absent}};
}

absl::Status FakeArmConfig::Apply(const Json& body) {
  FakeArmConfig next = *this;
  JsonFields f(body, "");
  auto millis = [&](const char* key, absl::Duration* out) {
    if (std::optional<int64_t> ms = f.Int(key, 0, kMaxDelayMs)) *out = absl::Milliseconds(*ms);
  };
  millis("prov_delay_ms", &next.prov_delay);
  millis("upd_delay_ms", &next.upd_delay);
  millis("del_delay_ms", &next.del_delay);
  millis("latency_ms", &next.latency);
  if (auto v = f.Int("poll_retry_after_s", 0, 3600)) next.poll_retry_after_s = *v;
  if (auto v = f.Int("token_ttl_s", 1, int64_t{366} * 86400)) next.token_ttl = absl::Seconds(*v);
  if (auto v = f.Int("list_page_size", 0, 100000)) next.list_page_size = *v;
  if (auto v = f.String("quota_mode")) {
    if (*v != "sync" && *v != "async" && *v != "off") {
      f.Fail("quota_mode", "expected sync, async or off");
    }
    next.quota_mode = *v;
  }
  if (const Json* quotas = f.Object("quotas")) {
    for (const auto& [family, limit] : quotas->items()) {
      for (auto it = next.quotas.begin(); it != next.quotas.end();) {
        it = absl::EqualsIgnoreCase(it->first, family) ? next.quotas.erase(it) : std::next(it);
      }
      if (limit.is_null()) continue;
      if (!limit.is_number_integer() || limit.get<int64_t>() < 0) {
        f.Fail("quotas", absl::StrCat("\"", family, "\": expected a vCPU limit >= 0 or null"));
        continue;
      }
      next.quotas[family] = limit.get<int64_t>();
    }
  }
  if (auto v = f.String("delete_creating")) {
    if (*v != "preempt" && *v != "conflict")
      f.Fail("delete_creating", "expected preempt or conflict");
    next.delete_creating = *v;
  }
  if (const Json* v = f.Raw("delete_absent")) {
    const std::string text = v->is_string() ? v->get<std::string>() : Dump(*v);
    if (text != "204" && text != "404") f.Fail("delete_absent", "expected \"204\" or \"404\"");
    next.delete_absent = text;
  }
  if (absl::Status s = f.Finish(); !s.ok()) return s;
  *this = std::move(next);
  return absl::OkStatus();
}

PoolPolicy FakeArmConfig::Policy() const {
  PoolPolicy policy;
  policy.create_delay = prov_delay;
  policy.update_delay = upd_delay;
  policy.delete_delay = del_delay;
  policy.quota_mode = quota_mode;
  for (const auto& [family, limit] : quotas) policy.quotas[absl::AsciiStrToLower(family)] = limit;
  policy.delete_creating_conflicts = delete_creating == "conflict";
  return policy;
}

Json FakeArmServer::StateLocked() const {
  Json pools = Json::array();
  for (const AgentPool& pool : pools_.Pools()) {
    Json op = nullptr;
    if (std::optional<PoolOperation> o = pools_.FindOperation(pool.op_id)) {
      op = Json{{"id", o->id}, {"kind", KindName(o->kind)}, {"status", StatusName(o->status)}};
    }
    pools.push_back(Json{{"name", pool.name},
                         {"provisioningState", pool.state},
                         {"properties", pool.properties},
                         {"tags", pool.tags},
                         {"created_ms", absl::ToInt64Milliseconds(pool.created - started_)},
                         {"vms", pool.vms},
                         {"op", op}});
  }
  return Json{{"pools", std::move(pools)}};
}

void FakeArmServer::ResetLocked(Moment now) {
  pools_.Reset(now);
  tokens_.Clear();
  journal_.Clear();
  faults_.Clear();
  throttle_.Disable();
}

Reply FakeArmServer::ServeControl(const Incoming& in) {
  const httplib::Request& req = *in.http;
  const std::vector<std::string>& rest = in.route.rest;
  const std::string& method = req.method;
  const std::string what = rest.empty() ? "" : absl::AsciiStrToLower(rest[0]);
  const size_t n = rest.size();
  const Moment now = Now();
  absl::StatusOr<Json> body = BodyJson(req);
  auto wrong_method = [&] {
    return ControlError(405, "MethodNotAllowed",
                        absl::StrCat("/_fake/", what, " does not take ", method));
  };
  // Every control call that reads a body needs it to be JSON.
  const bool reads_body = method == "POST" || method == "PUT";
  if (reads_body && !body.ok()) return BadRequest(body.status());

  absl::MutexLock lock(&mu_);
  pools_.Advance(now);
  if (what == "healthz" && n == 1) {
    return Reply::WithJson(200, Json{{"status", "ok"}});
  }
  if (what == "requests" && n == 1) {
    if (method == "GET") {
      return Reply::WithJson(200,
                             journal_.List(req.get_param_value("op"), req.get_param_value("pool")));
    }
    if (method == "DELETE") {
      journal_.Clear();
      return Reply::WithJson(200, Json::object());
    }
    return wrong_method();
  }
  if (what == "faults" && n == 1) {
    if (method == "POST") {
      absl::StatusOr<int64_t> id = faults_.Add(*body, now.mono);
      if (!id.ok()) return BadRequest(id.status());
      return Reply::WithJson(200, Json{{"id", *id}});
    }
    if (method == "GET") return Reply::WithJson(200, faults_.List());
    if (method == "DELETE") {
      faults_.Clear();
      return Reply::WithJson(200, Json::object());
    }
    return wrong_method();
  }
  if (what == "faults" && n == 2) {
    if (method != "DELETE") return wrong_method();
    int64_t id = 0;
    if (!absl::SimpleAtoi(rest[1], &id) || !faults_.Remove(id)) {
      return ControlError(404, "NotFound", "no fault rule " + rest[1]);
    }
    return Reply::WithJson(200, Json::object());
  }
  if (what == "presets" && n == 2) {
    if (method != "POST") return wrong_method();
    return PresetLocked(rest[1], *body, now.mono);
  }
  if (what == "throttle" && n == 1) {
    if (method == "PUT") {
      absl::StatusOr<ThrottleConfig> config = ThrottleConfig::FromJson(*body);
      if (!config.ok()) return BadRequest(config.status());
      throttle_.Configure(*config);
      return Reply::WithJson(200, config->ToJson());
    }
    if (method == "GET") {
      Json out = throttle_.enabled() ? throttle_.config()->ToJson() : Json::object();
      out["enabled"] = throttle_.enabled();
      return Reply::WithJson(200, out);
    }
    if (method == "DELETE") {
      throttle_.Disable();
      return Reply::WithJson(200, Json::object());
    }
    return wrong_method();
  }
  if (what == "config" && n == 1) {
    if (method == "PUT") {
      if (absl::Status s = config_.Apply(*body); !s.ok()) return BadRequest(s);
      return Reply::WithJson(200, config_.ToJson());
    }
    if (method == "GET") return Reply::WithJson(200, config_.ToJson());
    return wrong_method();
  }
  if (what == "state" && n == 1) {
    if (method == "GET") return Reply::WithJson(200, StateLocked());
    if (method == "DELETE") {
      ResetLocked(now);
      return Reply::WithJson(200, StateLocked());
    }
    return wrong_method();
  }
  if (what == "pools" && n == 1) {
    if (method != "POST") return wrong_method();
    JsonFields f(*body, "");
    const std::string name = f.String("name").value_or("");
    if (!ValidPoolName(name)) {
      f.Fail("name", "expected a pool name matching ^[a-z][a-z0-9]{0,11}$");
    }
    const Json* properties = f.Object("properties");
    const Json* tags = f.Object("tags");
    const std::string state = f.String("provisioningState").value_or(kSucceeded);
    if (absl::Status s = f.Finish(); !s.ok()) return BadRequest(s);
    absl::Status seeded =
        pools_.Seed(name, properties != nullptr ? *properties : Json::object(),
                    tags != nullptr ? *tags : Json(), state, config_.Policy(), now);
    if (!seeded.ok()) return BadRequest(seeded);
    return Reply::WithJson(201, pools_.PoolResource(*pools_.Find(name)));
  }
  if (what == "pools" && n == 3) {
    if (method != "POST") return wrong_method();
    return PoolActionLocked(rest[1], absl::AsciiStrToLower(rest[2]), *body, now);
  }
  if (what == "imds" && n == 1) {
    if (method == "PUT") {
      if (!body->is_object()) {
        return BadRequest(absl::InvalidArgumentError("the IMDS document must be a JSON object"));
      }
      imds_document_ = *body;
      return Reply::WithJson(200, imds_document_);
    }
    if (method == "GET") return Reply::WithJson(200, imds_document_);
    return wrong_method();
  }
  if (what == "tokens" && n == 1) {
    if (method != "GET") return wrong_method();
    return Reply::WithJson(200, tokens_.Stats());
  }
  if (what == "tokens" && n == 2 && absl::EqualsIgnoreCase(rest[1], "expire")) {
    if (method != "POST") return wrong_method();
    tokens_.ExpireAll(now.wall);
    return Reply::WithJson(200, tokens_.Stats());
  }
  return ControlError(404, "NotFound",
                      absl::StrCat("kaito-fake-arm has no control route ", method, " ", req.path));
}

Reply FakeArmServer::PoolActionLocked(const std::string& pool, const std::string& action,
                                      const Json& body, Moment now) {
  absl::Status status;
  if (action == "complete") {
    status = pools_.Complete(pool, now);
  } else if (action == "preempt") {
    status = pools_.Preempt(pool, now);
  } else if (action == "fail") {
    JsonFields f(body, "");
    OperationError error;
    error.code = f.String("code").value_or("InternalOperationError");
    error.message =
        f.String("message").value_or("The operation failed (ended by the fake's control API).");
    if (const Json* details = f.Array("details")) error.details = *details;
    if (absl::Status s = f.Finish(); !s.ok()) return BadRequest(s);
    status = pools_.Fail(pool, std::move(error), now);
  } else {
    return ControlError(404, "NotFound",
                        "no pool action \"" + action + "\" (complete, fail or preempt)");
  }
  if (absl::IsNotFound(status)) return ControlError(404, "NotFound", std::string(status.message()));
  if (!status.ok()) return ControlError(409, "Conflict", std::string(status.message()));
  return Reply::WithJson(200, StateLocked());
}

Reply FakeArmServer::PresetLocked(const std::string& name, const Json& params, absl::Duration now) {
  JsonFields f(params, "");
  std::vector<Json> rules;
  // Every preset takes an optional `times` (how often each rule fires; 0 = unlimited).
  const std::string preset = absl::AsciiStrToLower(name);
  const int64_t default_times = preset == "transient_5xx" ? 5 : 0;
  const int64_t times = f.Int("times", 0, 1000).value_or(default_times);
  auto when = [&] { return Json{{"times", times}}; };

  if (preset == "sku_unavailable") {
    std::optional<std::string> vm_size = f.String("vm_size");
    if (!vm_size.has_value()) f.Fail("vm_size", "required: a regex of VM sizes");
    const bool sync = f.Bool("sync").value_or(true);
    const std::string message =
        "The requested VM size {vm_size} is currently not available in location '{location}' "
        "for subscription '{subscription}'. Please try another size or deploy to a different "
        "location or zones. See https://aka.ms/azureskunotavailable for details.";
    Json action = sync ? Json{{"status", 400}, {"code", "SkuNotAvailable"}, {"message", message}}
                       : Json{{"lro_fail", {{"code", "SkuNotAvailable"}, {"message", message}}}};
    rules.push_back(Json{{"match", {{"op", "pool.put"}, {"vm_size", vm_size.value_or("")}}},
                         {"action", std::move(action)},
                         {"when", when()}});
  } else if (preset == "allocation_failed") {
    const std::string vm_size = f.String("vm_size").value_or(".*");
    const std::optional<bool> zonal = f.Bool("zonal");
    const std::string kind = f.String("kind").value_or(
        zonal.value_or(false) ? "ZonalAllocationFailed" : "AllocationFailed");
    std::string detail;
    if (kind == "AllocationFailed") {
      detail =
          "Allocation failed. We do not have sufficient capacity for the requested VM size "
          "{vm_size} in this region. Read more about improving likelihood of allocation "
          "success at http://aka.ms/allocation-guidance";
    } else if (kind == "ZonalAllocationFailed") {
      detail =
          "Allocation failed. We do not have sufficient capacity for the requested VM size "
          "{vm_size} in this zone. Read more about improving likelihood of allocation "
          "success at http://aka.ms/allocation-guidance";
    } else if (kind == "OverconstrainedAllocationRequest" ||
               kind == "OverconstrainedZonalAllocationRequest") {
      detail =
          "Allocation failed. VM(s) with the following constraints cannot be allocated, "
          "because the condition is too restrictive. Please remove some constraints and "
          "try again. Constraints applied are: VM Size {vm_size}";
    } else {
      f.Fail("kind",
             "expected ZonalAllocationFailed, AllocationFailed, OverconstrainedAllocationRequest "
             "or OverconstrainedZonalAllocationRequest");
    }
    Json match = {{"op", "pool.put"}, {"vm_size", vm_size}};
    if (zonal.has_value()) match["zonal"] = *zonal;
    rules.push_back(
        Json{{"match", std::move(match)},
             {"action",
              {{"lro_fail",
                {{"code", "ResourceOperationFailure"},
                 {"message",
                  "The resource operation completed with terminal provisioning state "
                  "'Failed'."},
                 {"details", Json::array({Json{{"code", kind}, {"message", detail}}})}}}}},
             {"when", when()}});
  } else if (preset == "spot_unavailable") {
    const std::string vm_size = f.String("vm_size").value_or(".*");
    const bool sync = f.Bool("sync").value_or(false);
    Json action =
        sync ? Json{{"status", 400},
                    {"code", "SkuNotAvailable"},
                    {"message",
                     "The requested VM size {vm_size} is currently not available as Spot in "
                     "location '{location}' for subscription '{subscription}'. See "
                     "https://aka.ms/azureskunotavailable for details."}}
             : Json{{"lro_fail",
                     {{"code", "AllocationFailed"},
                      {"message",
                       "Allocation failed. There is not enough Spot capacity for the requested "
                       "VM size {vm_size} in this region. Read more about improving likelihood "
                       "of allocation success at http://aka.ms/allocation-guidance"}}}};
    rules.push_back(Json{{"match", {{"op", "pool.put"}, {"spot", true}, {"vm_size", vm_size}}},
                         {"action", std::move(action)},
                         {"when", when()}});
  } else if (preset == "transient_5xx") {
    const std::string op = f.String("op").value_or("pool.put");
    const std::optional<std::string> pool = f.String("pool");
    const int64_t count = times == 0 ? 5 : times;
    for (int64_t i = 0; i < count; ++i) {
      Json action;
      switch (i % 5) {
        case 0:
          action = {{"status", 500},
                    {"code", "InternalServerError"},
                    {"message", "An internal server error occurred. Please retry the request."}};
          break;
        case 1:
          action = {{"status", 502}, {"body_raw", GatewayPage(502, "Bad Gateway")}};
          break;
        case 2:
          action = {{"status", 503},
                    {"code", "ServiceUnavailable"},
                    {"message", "The service is temporarily unavailable. Please retry."},
                    {"headers", {{"Retry-After", "1"}}}};
          break;
        case 3:
          action = {{"status", 504}, {"body_raw", GatewayPage(504, "Gateway Time-out")}};
          break;
        default:
          action = {{"status", 408},
                    {"code", "RequestTimeout"},
                    {"message", "The request timed out. Please retry."}};
          break;
      }
      Json match = {{"op", op}};
      if (pool.has_value()) match["pool"] = *pool;
      rules.push_back(Json{{"match", std::move(match)},
                           {"action", std::move(action)},
                           {"when", {{"nth", i + 1}, {"times", 1}}}});
    }
  } else if (preset == "auth_faults") {
    const std::string kind = f.String("kind").value_or("");
    const std::optional<std::string> op = f.String("op");
    auto aad = [&](int status, const char* error, int aadsts, const std::string& description) {
      return Json{{"status", status},
                  {"body_raw", Dump(AadErrorBody(error, aadsts, description, clock_->Now(),
                                                 uuids_.Next(), uuids_.Next()))}};
    };
    if (kind == "invalid_client") {
      rules.push_back(
          Json{{"match", {{"op", op.value_or("token")}}},
               {"action", aad(401, "invalid_client", 7000215,
                              "Invalid client secret provided. Ensure the secret being sent in the "
                              "request is the client secret value, not the client secret ID, for a "
                              "secret added to app '" +
                                  options_.client_id + "'.")},
               {"when", when()}});
    } else if (kind == "unauthorized_client") {
      rules.push_back(Json{{"match", {{"op", op.value_or("token")}}},
                           {"action", aad(401, "unauthorized_client", 70021,
                                          "No matching federated identity record found for "
                                          "presented assertion.")},
                           {"when", when()}});
    } else if (kind == "token_5xx") {
      rules.push_back(Json{{"match", {{"op", op.value_or("token")}}},
                           {"action", aad(503, "temporarily_unavailable", 90033,
                                          "A transient error has occurred. Please try again.")},
                           {"when", when()}});
    } else if (kind == "arm_401") {
      rules.push_back(
          Json{{"match", {{"op", op.value_or("op.poll|opresult.poll")}}},
               {"action",
                {{"status", 401},
                 {"code", "InvalidAuthenticationToken"},
                 {"message", "The access token is invalid."},
                 {"headers",
                  {{"WWW-Authenticate",
                    "Bearer authorization_uri=\"https://login.microsoftonline.com/" +
                        options_.tenant_id +
                        "\", error=\"invalid_token\", error_description=\"The access token is "
                        "invalid.\""}}}}},
               {"when", {{"times", times == 0 ? 1 : times}}}});
    } else if (kind == "arm_403") {
      rules.push_back(Json{
          {"match", {{"op", op.value_or("pool.put")}}},
          {"action",
           {{"status", 403},
            {"code", "AuthorizationFailed"},
            {"message",
             "The client '{client}' with object id '{client}' does not have authorization to "
             "perform action 'Microsoft.ContainerService/managedClusters/agentPools/write' over "
             "scope '" +
                 identity_.ClusterId() +
                 "/agentPools/{pool}' or the scope is invalid. "
                 "If access was recently granted, please refresh your credentials."}}},
          {"when", when()}});
    } else {
      f.Fail("kind", "expected invalid_client, unauthorized_client, token_5xx, arm_401 or arm_403");
    }
  } else {
    return ControlError(404, "NotFound",
                        "no preset \"" + name +
                            "\" (sku_unavailable, allocation_failed, spot_unavailable, "
                            "transient_5xx, auth_faults)");
  }
  if (absl::Status s = f.Finish(); !s.ok()) return BadRequest(s);
  Json ids = Json::array();
  for (const Json& rule : rules) {
    absl::StatusOr<int64_t> id = faults_.Add(rule, now);
    if (!id.ok()) {
      for (const Json& added : ids) faults_.Remove(added.get<int64_t>());
      return BadRequest(id.status());
    }
    ids.push_back(*id);
  }
  return Reply::WithJson(200, Json{{"ids", std::move(ids)}});
}

}  // namespace kaito::fakearm
