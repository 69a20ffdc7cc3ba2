#include "tools/fake-arm/throttle.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "tools/fake-arm/json_fields.h"

namespace kaito::fakearm {

RequestClass ClassOf(const std::string& method) {
  if (method == "GET" || method == "HEAD") return RequestClass::kRead;
  if (method == "DELETE") return RequestClass::kDelete;
  return RequestClass::kWrite;
}

const char* ClassName(RequestClass c) {
  switch (c) {
    case RequestClass::kRead:
      return "read";
    case RequestClass::kWrite:
      return "write";
    case RequestClass::kDelete:
      return "delete";
  }
  return "read";
}

std::string RemainingHeader(RequestClass c) {
  return absl::StrCat("x-ms-ratelimit-remaining-subscription-", ClassName(c), "s");
}

absl::StatusOr<ThrottleConfig> ThrottleConfig::FromJson(const Json& body) {
  ThrottleConfig config;
  JsonFields f(body, "");
  std::optional<double> capacity = f.Number("capacity", 1, 1e9);
  if (!capacity.has_value()) f.Fail("capacity", "required: a number of at least 1");
  config.capacity = capacity.value_or(1);
  config.refill_per_s = f.Number("refill_per_s", 0, 1e9).value_or(0);
  config.retry_after_form = f.String("retry_after_form").value_or("seconds");
  if (config.retry_after_form != "seconds" && config.retry_after_form != "date" &&
      config.retry_after_form != "ms") {
    f.Fail("retry_after_form", "expected seconds, date or ms");
  }
  config.retry_after_s = f.Int("retry_after_s", 0, 86400);
  if (absl::Status s = f.Finish(); !s.ok()) return s;
  return config;
}

Json ThrottleConfig::ToJson() const {
  Json out = {{"capacity", capacity},
              {"refill_per_s", refill_per_s},
              {"retry_after_form", retry_after_form}};
  out["retry_after_s"] = retry_after_s.has_value() ? Json(*retry_after_s) : Json(nullptr);
  return out;
}

void Throttle::Configure(const ThrottleConfig& config) {
  config_ = config;
  buckets_.clear();
}

void Throttle::Disable() {
  config_.reset();
  buckets_.clear();
}

Throttle::Bucket& Throttle::Refilled(const std::string& principal, RequestClass c,
                                     absl::Duration now) {
  auto [it, inserted] = buckets_.try_emplace({principal, c});
  Bucket& bucket = it->second;
  if (inserted) {
    bucket.tokens = config_->capacity;
  } else {
    const double elapsed = absl::ToDoubleSeconds(now - bucket.updated);
    bucket.tokens =
        std::min(config_->capacity, bucket.tokens + std::max(0.0, elapsed) * config_->refill_per_s);
  }
  bucket.updated = now;
  return bucket;
}

Throttle::Decision Throttle::Take(const std::string& principal, RequestClass c,
                                  absl::Duration now) {
  Decision decision;
  if (!config_.has_value()) return decision;
  Bucket& bucket = Refilled(principal, c, now);
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    decision.remaining = static_cast<int64_t>(std::floor(bucket.tokens));
    return decision;
  }
  decision.allowed = false;
  decision.remaining = 0;
  if (config_->retry_after_s.has_value()) {
    decision.retry_after_s = *config_->retry_after_s;
  } else if (config_->refill_per_s > 0) {
    decision.retry_after_s = std::max<int64_t>(
        1, static_cast<int64_t>(std::ceil((1 - bucket.tokens) / config_->refill_per_s)));
  } else {
    decision.retry_after_s = 60;
  }
  return decision;
}

int64_t Throttle::Remaining(const std::string& principal, RequestClass c, absl::Duration now) {
  if (!config_.has_value()) return kUnthrottledRemaining;
  return static_cast<int64_t>(std::floor(Refilled(principal, c, now).tokens));
}

}  // namespace kaito::fakearm
