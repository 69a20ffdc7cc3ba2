// ARM's request throttling as kaito-fake-arm models it (`/_fake/throttle`): a token bucket
// per (principal, read|write|delete), refilled continuously, off until configured. Not
// thread-safe: its owner (`FakeArmServer`) guards it with its one mutex.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/fake-arm/arm_wire.h"

namespace kaito::fakearm {

// The budget a request draws from: GET = read (polls included), DELETE = delete, any
// other method = write.
enum class RequestClass { kRead, kWrite, kDelete };
RequestClass ClassOf(const std::string& method);
// "read" | "write" | "delete".
const char* ClassName(RequestClass c);
// "x-ms-ratelimit-remaining-subscription-reads" (…-writes, …-deletes).
std::string RemainingHeader(RequestClass c);

// What the remaining-budget headers say when throttling is off.
inline constexpr int64_t kUnthrottledRemaining = 11999;

struct ThrottleConfig {
  double capacity = 0;      // Tokens a full bucket holds (and starts with); at least 1.
  double refill_per_s = 0;  // Tokens added per second.
  std::string retry_after_form = "seconds";  // seconds | date | ms
  // The wait a 429 asks for; when absent, the time until one token is back (rounded up,
  // at least 1 s; 60 s when nothing refills).
  std::optional<int64_t> retry_after_s;

  // Parses `{"capacity","refill_per_s","retry_after_form","retry_after_s"}`.
  static absl::StatusOr<ThrottleConfig> FromJson(const Json& body);
  Json ToJson() const;
};

class Throttle {
 public:
  // Turns throttling on with full buckets (or changes it, refilling every bucket).
  void Configure(const ThrottleConfig& config);
  void Disable();
  bool enabled() const { return config_.has_value(); }
  const std::optional<ThrottleConfig>& config() const { return config_; }

  struct Decision {
    bool allowed = true;
    int64_t remaining = kUnthrottledRemaining;  // For the remaining-budget header.
    int64_t retry_after_s = 0;                  // When not allowed.
  };
  // Takes one token from the bucket of (`principal`, `c`) at monotonic time `now`.
  Decision Take(const std::string& principal, RequestClass c, absl::Duration now);
  // The remaining tokens without taking one.
  int64_t Remaining(const std::string& principal, RequestClass c, absl::Duration now);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Duration updated;
  };
  Bucket& Refilled(const std::string& principal, RequestClass c, absl::Duration now);

  std::optional<ThrottleConfig> config_;
  std::map<std::pair<std::string, RequestClass>, Bucket> buckets_;
};

}  // namespace kaito::fakearm
