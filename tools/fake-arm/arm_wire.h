// The wire formats kaito-fake-arm speaks, shared by its parts: ARM error bodies, AAD
// error bodies, timestamps, request ids, and JSON serialization that never throws. This
// is test infrastructure: the shapes follow Azure closely enough for the Azure provider
// to be tested against them, and nothing here talks to Azure.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kaito::fakearm {

using Json = nlohmann::ordered_json;

inline constexpr char kJsonContentType[] = "application/json; charset=utf-8";

// Serializes `value` compactly; invalid UTF-8 (from a client's body) is replaced, never
// thrown on.
std::string Dump(const Json& value);

// Client JSON nests at most this deep: the fake copies and serializes stored JSON
// recursively, so a deeper document is refused at parse time rather than overflowing a
// worker's stack later.
inline constexpr int kMaxJsonDepth = 64;

// `text` parsed as JSON; `discarded` (is_discarded()) when it is not JSON or nests deeper
// than kMaxJsonDepth, with the reason in `*error` when given.
Json ParseJson(const std::string& text, std::string* error = nullptr);

// An ARM error: the HTTP status, and the body `{"error":{"code","message","target"?,
// "details"?}}` that goes with the header `x-ms-error-code: code`.
struct ArmError {
  int http_status = 500;
  std::string code;
  std::string message;
  std::string target;            // Omitted from the body when empty.
  Json details = Json::array();  // Omitted from the body when empty.

  // `{"code","message","target"?,"details"?}`: the inner object, as an async operation's
  // `error` field carries it.
  Json Inner() const;
  // `{"error": Inner()}`.
  Json Body() const;
};

// AAD's error body (§3.2 of the reference): `{"error","error_description","error_codes",
// "timestamp","trace_id","correlation_id","error_uri"}`. `aadsts` is the number of the
// AADSTS code; `description` is the text after "AADSTSnnn: ".
Json AadErrorBody(const std::string& error, int aadsts, const std::string& description,
                  absl::Time now, const std::string& trace_id, const std::string& correlation_id);

// RFC 3339 with fractional seconds in UTC, as ARM writes startTime/endTime.
std::string Rfc3339(absl::Time t);
// RFC 1123 ("Tue, 01 Jul 2026 10:11:12 GMT"), as an HTTP-date Retry-After is written.
std::string HttpDate(absl::Time t);

// Random version-4 UUIDs for request, operation and token ids. Thread-safe.
class UuidSource {
 public:
  UuidSource();
  std::string Next();

 private:
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

// A stable 8-digit decimal string for `pool` (the number AKS puts into a VMSS name:
// aks-{pool}-{digits}-vmss): the same name always gives the same digits, in every process.
std::string PoolHashDigits(const std::string& pool);

// `value` in base 36, lower case, left-padded with zeros to `width` (the suffix of a
// VMSS instance's computer name: "vmss00000a").
std::string Base36(uint64_t value, int width);

}  // namespace kaito::fakearm
