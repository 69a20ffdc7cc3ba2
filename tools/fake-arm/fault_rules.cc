#include "tools/fake-arm/fault_rules.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tools/fake-arm/json_fields.h"

namespace kaito::fakearm {
namespace {

// The longest delay a rule may inject (the client's timeouts are far shorter).
constexpr int64_t kMaxDelayMs = 600000;

bool KnownOpPattern(const std::string& op) {
  const auto& known = KnownOps();
  if (absl::EndsWith(op, ".*")) {
    const std::string prefix = op.substr(0, op.size() - 1);  // keeps the dot
    return std::any_of(known.begin(), known.end(),
                       [&](const std::string& k) { return absl::StartsWith(k, prefix); });
  }
  return std::find(known.begin(), known.end(), op) != known.end();
}

bool OpMatches(const std::string& pattern, const std::string& op) {
  if (absl::EndsWith(pattern, ".*")) {
    return absl::StartsWith(op, pattern.substr(0, pattern.size() - 1));
  }
  return pattern == op;
}

}  // namespace

const std::vector<std::string>& KnownOps() {
  static const auto* const kOps = new std::vector<std::string>{
      "token",     "imds.token", "imds.instance", "cluster.get", "pool.put",
      "pool.get",  "pool.list",  "pool.delete",   "op.poll",     "opresult.poll",
      "vmss.list", "vm.list",    "usages",        "other"};
  return *kOps;
}

FaultRules::FaultRules(uint64_t seed) : seed_(seed), rng_(seed) {}

absl::StatusOr<int64_t> FaultRules::Add(const Json& source, absl::Duration now) {
  Rule rule;
  JsonFields top(source, "");
  const Json* match = top.Object("match");
  const Json* action = top.Object("action");
  const Json* when = top.Object("when");
  if (absl::Status s = top.Finish(); !s.ok()) return s;

  if (match != nullptr) {
    JsonFields m(*match, "match");
    if (std::optional<std::string> op = m.String("op"); op.has_value() && *op != "any") {
      for (absl::string_view part : absl::StrSplit(*op, '|')) {
        std::string alternative(absl::StripAsciiWhitespace(part));
        if (!KnownOpPattern(alternative)) {
          m.Fail("op", absl::StrCat("unknown op \"", alternative, "\"; expected any or one of ",
                                    absl::StrJoin(KnownOps(), ", "),
                                    " (alternatives with |, prefixes such as imds.*)"));
        }
        rule.ops.push_back(std::move(alternative));
      }
    }
    auto pattern = [&](const char* key, std::optional<Pattern>* out) {
      std::optional<std::string> text = m.String(key);
      if (!text.has_value()) return;
      try {
        *out = Pattern{*text, std::regex(*text, std::regex::ECMAScript | std::regex::icase)};
      } catch (const std::regex_error& e) {
        m.Fail(key, absl::StrCat("invalid regex \"", *text, "\": ", e.what()));
      }
    };
    pattern("pool", &rule.pool);
    pattern("path", &rule.path);
    pattern("vm_size", &rule.vm_size);
    rule.spot = m.Bool("spot");
    rule.zonal = m.Bool("zonal");
    if (absl::Status s = m.Finish(); !s.ok()) return s;
  }

  if (action != nullptr) {
    JsonFields a(*action, "action");
    FaultAction& out = rule.action;
    if (std::optional<int64_t> status = a.Int("status", 100, 599)) {
      out.status = static_cast<int>(*status);
    }
    out.code = a.String("code").value_or("");
    out.message = a.String("message").value_or("");
    out.body_raw = a.String("body_raw");
    if (const Json* headers = a.Object("headers")) {
      for (const auto& [name, value] : headers->items()) {
        if (value.is_string()) {
          out.headers.emplace_back(name, value.get<std::string>());
        } else if (value.is_number()) {
          out.headers.emplace_back(name, Dump(value));
        } else {
          a.Fail("headers", absl::StrCat("header \"", name, "\": expected a string"));
        }
      }
    }
    if (std::optional<int64_t> ms = a.Int("delay_ms", 0, kMaxDelayMs)) {
      out.delay = absl::Milliseconds(*ms);
    }
    out.drop_connection = a.Bool("drop_connection").value_or(false);
    out.truncate_body = a.Bool("truncate_body").value_or(false);
    if (const Json* fail = a.Object("lro_fail")) {
      JsonFields f(*fail, "action.lro_fail");
      OperationError error;
      error.code = f.String("code").value_or("");
      error.message = f.String("message").value_or("");
      if (const Json* details = f.Array("details")) error.details = *details;
      if (error.code.empty()) f.Fail("code", "required");
      if (absl::Status s = f.Finish(); !s.ok()) return s;
      out.lro_fail = std::move(error);
    }
    out.stick_in_progress = a.Bool("stick_in_progress").value_or(false);
    if (absl::Status s = a.Finish(); !s.ok()) return s;
  }

  if (when != nullptr) {
    JsonFields w(*when, "when");
    rule.nth = std::max<int64_t>(1, w.Int("nth", 0, int64_t{1} << 40).value_or(1));
    rule.times = w.Int("times", 0, int64_t{1} << 40).value_or(0);
    rule.probability = w.Number("probability", 0, 1).value_or(0);
    rule.after = absl::Milliseconds(w.Int("after_ms", 0, int64_t{1} << 40).value_or(0));
    if (absl::Status s = w.Finish(); !s.ok()) return s;
  }

  rule.id = next_id_++;
  rule.source = source;
  rule.added = now;
  const int64_t id = rule.id;
  rules_.emplace(id, std::move(rule));
  return id;
}

Json FaultRules::List() const {
  Json out = Json::array();
  for (const auto& [id, rule] : rules_) {
    Json entry = {{"id", id}};
    for (const char* part : {"match", "action", "when"}) {
      auto it = rule.source.find(part);
      entry[part] = it != rule.source.end() ? *it : Json::object();
    }
    entry["matched"] = rule.matched;
    entry["fired"] = rule.fired;
    out.push_back(std::move(entry));
  }
  return out;
}

bool FaultRules::Remove(int64_t id) { return rules_.erase(id) > 0; }

void FaultRules::Clear() {
  rules_.clear();
  rng_.seed(seed_);
}

bool FaultRules::Matches(const Rule& rule, const RequestFacts& facts) {
  if (!rule.ops.empty() &&
      std::none_of(rule.ops.begin(), rule.ops.end(),
                   [&](const std::string& p) { return OpMatches(p, facts.op); })) {
    return false;
  }
  auto search = [](const std::optional<Pattern>& pattern, const std::string* value) {
    if (!pattern.has_value()) return true;
    return value != nullptr && std::regex_search(*value, pattern->regex);
  };
  if (!search(rule.pool, facts.pool.empty() ? nullptr : &facts.pool)) return false;
  if (!search(rule.path, &facts.path)) return false;
  if (!search(rule.vm_size, facts.vm_size.has_value() ? &*facts.vm_size : nullptr)) {
    return false;
  }
  if (rule.spot.has_value() && facts.spot != rule.spot) return false;
  if (rule.zonal.has_value() && facts.zonal != rule.zonal) return false;
  return true;
}

FaultRules::Fired FaultRules::Evaluate(const RequestFacts& facts, absl::Duration now) {
  Fired fired;
  FaultAction& merged = fired.action;
  for (auto& [id, rule] : rules_) {
    if (now - rule.added < rule.after || !Matches(rule, facts)) continue;
    ++rule.matched;
    if (rule.matched < rule.nth) continue;
    if (rule.times > 0 && rule.fired >= rule.times) continue;
    if (rule.probability > 0 &&
        std::uniform_real_distribution<double>(0.0, 1.0)(rng_) >= rule.probability) {
      continue;
    }
    ++rule.fired;
    fired.ids.push_back(id);
    const FaultAction& a = rule.action;
    if (a.status.has_value() && !merged.status.has_value()) {
      merged.status = a.status;
      merged.code = a.code;
      merged.message = a.message;
      merged.body_raw = a.body_raw;
    }
    for (const auto& [name, value] : a.headers) {
      const bool named =
          std::any_of(merged.headers.begin(), merged.headers.end(),
                      [&](const auto& h) { return absl::EqualsIgnoreCase(h.first, name); });
      if (!named) merged.headers.emplace_back(name, value);
    }
    merged.delay += a.delay;
    merged.drop_connection = merged.drop_connection || a.drop_connection;
    merged.truncate_body = merged.truncate_body || a.truncate_body;
    if (a.lro_fail.has_value() && !merged.lro_fail.has_value()) merged.lro_fail = a.lro_fail;
    merged.stick_in_progress = merged.stick_in_progress || a.stick_in_progress;
  }
  return fired;
}

}  // namespace kaito::fakearm
