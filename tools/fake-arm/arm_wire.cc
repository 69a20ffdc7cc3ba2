#include "tools/fake-arm/arm_wire.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kaito::fakearm {

std::string Dump(const Json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

Json ParseJson(const std::string& text, std::string* error) {
  bool too_deep = false;
  // Subtrees below the limit are not built (the callback drops them) and flag the document.
  auto depth_guard = [&too_deep](int depth, Json::parse_event_t, Json&) {
    if (depth > kMaxJsonDepth) too_deep = true;
    return depth <= kMaxJsonDepth;
  };
  try {
    Json parsed = Json::parse(text, depth_guard);
    if (!too_deep) return parsed;
    if (error != nullptr) {
      *error = absl::StrCat("the JSON nests deeper than ", kMaxJsonDepth, " levels");
    }
  } catch (const Json::exception& e) {
    if (error != nullptr) *error = e.what();
  }
  return Json(Json::value_t::discarded);
}

Json ArmError::Inner() const {
  Json inner = {{"code", code}, {"message", message}};
  if (!target.empty()) inner["target"] = target;
  if (details.is_array() && !details.empty()) inner["details"] = details;
  return inner;
}

Json ArmError::Body() const { return Json{{"error", Inner()}}; }

Json AadErrorBody(const std::string& error, int aadsts, const std::string& description,
                  absl::Time now, const std::string& trace_id, const std::string& correlation_id) {
  const std::string timestamp = absl::FormatTime("%Y-%m-%d %H:%M:%SZ", now, absl::UTCTimeZone());
  return Json{{"error", error},
              {"error_description",
               absl::StrCat("AADSTS", aadsts, ": ", description, "\r\nTrace ID: ", trace_id,
                            "\r\nCorrelation ID: ", correlation_id, "\r\nTimestamp: ", timestamp)},
              {"error_codes", Json::array({aadsts})},
              {"timestamp", timestamp},
              {"trace_id", trace_id},
              {"correlation_id", correlation_id},
              {"error_uri", absl::StrCat("https://login.microsoftonline.com/error?code=", aadsts)}};
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E7SZ", t, absl::UTCTimeZone());
}

std::string HttpDate(absl::Time t) {
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", t, absl::UTCTimeZone());
}

UuidSource::UuidSource() {
  std::random_device device;
  rng_.seed((static_cast<uint64_t>(device()) << 32) ^ device());
}

std::string UuidSource::Next() {
  uint64_t hi, lo;
  {
    absl::MutexLock lock(&mu_);
    hi = rng_();
    lo = rng_();
  }
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // Version 4.
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // Variant 10.
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff,
                         lo >> 48, lo & 0xffffffffffffULL);
}

std::string PoolHashDigits(const std::string& pool) {
  // FNV-1a, 32 bits: fixed, so names are the same in every run and every build.
  uint32_t hash = 2166136261u;
  for (unsigned char c : pool) {
    hash ^= c;
    hash *= 16777619u;
  }
  return absl::StrFormat("%08u", hash % 100000000u);
}

std::string Base36(uint64_t value, int width) {
  constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string out;
  do {
    out.insert(out.begin(), kDigits[value % 36]);
    value /= 36;
  } while (value > 0);
  while (static_cast<int>(out.size()) < width) out.insert(out.begin(), '0');
  return out;
}

}  // namespace kaito::fakearm
