// Fault-injection rules of kaito-fake-arm (`/_fake/faults`, §6.5 of the reference): which
// requests a rule matches, when it fires, and what it does. Not thread-safe: its owner
// (`FakeArmServer`) guards it with its one mutex.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/fake-arm/agent_pool_model.h"
#include "tools/fake-arm/arm_wire.h"

namespace kaito::fakearm {

// The request kinds of the journal and of `match.op`.
const std::vector<std::string>& KnownOps();

// What a request is, as rules match it.
struct RequestFacts {
  std::string op;    // One of KnownOps().
  std::string pool;  // The agent pool it concerns; empty when none.
  std::string path;
  // The VM size: a PUT's `properties.vmSize`, else the stored pool's; absent when none.
  std::optional<std::string> vm_size;
  // Only for a PUT with a JSON body: `properties.scaleSetPriority == "Spot"`, and a
  // non-empty `properties.availabilityZones`.
  std::optional<bool> spot;
  std::optional<bool> zonal;
};

// What the rules that fired do to one request, merged: the first rule with a `status`
// answers (its code, message, body_raw); headers of every rule are added (the first rule
// naming a header wins); delays add up; the flags are or-ed; the first `lro_fail` counts.
struct FaultAction {
  std::optional<int> status;
  std::string code;
  std::string message;
  std::optional<std::string> body_raw;
  std::vector<std::pair<std::string, std::string>> headers;
  absl::Duration delay = absl::ZeroDuration();
  bool drop_connection = false;
  bool truncate_body = false;
  std::optional<OperationError> lro_fail;
  bool stick_in_progress = false;
};

class FaultRules {
 public:
  // `seed` seeds the generator that `when.probability` draws from.
  explicit FaultRules(uint64_t seed);

  // Parses `rule` (`{"match":{...},"action":{...},"when":{...}}`, each part optional) and
  // adds it at monotonic time `now`. InvalidArgument, naming the field, for an unknown
  // field, a wrong type, an invalid regex or an unknown op. Matching semantics:
  // - `match.op`: "any" (or absent), an op, alternatives "pool.put|pool.delete", or a
  //   prefix "imds.*";
  // - `match.pool`, `match.path`, `match.vm_size`: ECMAScript regexes searched
  //   case-insensitively (anchor with ^...$ for an exact name); a request without the fact
  //   does not match;
  // - `match.spot`, `match.zonal`: compared with the PUT's facts.
  // `when`: a rule counts the requests it matches (from `after_ms` after it was added);
  // it fires from the `nth` (1-based) on, at most `times` times (0 = unlimited), each
  // with `probability` (0 = always).
  absl::StatusOr<int64_t> Add(const Json& rule, absl::Duration now);
  // `[{"id", "match", "action", "when", "matched", "fired"}]`, by id.
  Json List() const;
  bool Remove(int64_t id);
  // Removes every rule and reseeds the generator; ids keep increasing.
  void Clear();

  struct Fired {
    FaultAction action;
    std::vector<int64_t> ids;  // The rules that fired, by id.
  };
  // Counts `facts` against every rule and merges the actions of those that fire.
  Fired Evaluate(const RequestFacts& facts, absl::Duration now);

 private:
  struct Pattern {
    std::string source;
    std::regex regex;
  };
  struct Rule {
    int64_t id = 0;
    Json source;
    std::vector<std::string> ops;  // Empty = any. An entry ending ".*" is a prefix.
    std::optional<Pattern> pool, path, vm_size;
    std::optional<bool> spot, zonal;
    FaultAction action;
    int64_t nth = 1;
    int64_t times = 0;
    double probability = 0;
    absl::Duration after = absl::ZeroDuration();
    absl::Duration added = absl::ZeroDuration();
    int64_t matched = 0;
    int64_t fired = 0;
  };
  static bool Matches(const Rule& rule, const RequestFacts& facts);

  std::map<int64_t, Rule> rules_;
  int64_t next_id_ = 1;
  uint64_t seed_;
  std::mt19937_64 rng_;
};

}  // namespace kaito::fakearm
