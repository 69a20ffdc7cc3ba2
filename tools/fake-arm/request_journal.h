// The journal of requests kaito-fake-arm served (`/_fake/requests`): what tests assert on
// (the exact PUT body, poll spacing, retry counts, which pools a DELETE touched). Bounded in
// entries and in body bytes: the oldest entries go first. Bearer tokens are never recorded,
// only a hash prefix. Not thread-safe: its owner (`FakeArmServer`) guards it with its one
// mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "tools/fake-arm/arm_wire.h"

namespace kaito::fakearm {

struct JournalEntry {
  uint64_t seq = 0;
  int64_t t_ms = 0;  // Monotonic, since the fake started.
  std::string method;
  std::string path;
  std::string query;  // Raw, as sent.
  std::string op;
  std::string pool;
  Json headers = Json::object();  // Lower-case names; authorization as "Bearer sha256:<hex12>".
  std::string body;
  int status = 0;  // 0 while the request is being answered.
  int64_t latency_ms = 0;
  std::vector<int64_t> faults;  // Ids of the fault rules that fired on it.
};

// "Bearer sha256:<first 12 hex digits of the token's SHA-256>" (the scheme kept as sent).
std::string RedactAuthorization(const std::string& value);

class RequestJournal {
 public:
  explicit RequestJournal(size_t capacity = 50000, size_t max_body_bytes = size_t{64} << 20)
      : capacity_(capacity), max_body_bytes_(max_body_bytes) {}

  // Records a request as it arrives; returns its sequence number.
  uint64_t Begin(JournalEntry entry);
  // Fills in the answer of entry `seq` (ignored when it was cleared meanwhile).
  void Finish(uint64_t seq, int status, int64_t latency_ms, std::vector<int64_t> faults);
  // Entries oldest first, filtered by op and pool when non-empty.
  Json List(const std::string& op, const std::string& pool) const;
  void Clear();

 private:
  size_t capacity_;
  size_t max_body_bytes_;
  size_t body_bytes_ = 0;  // Sum of the entries' body sizes.
  std::deque<JournalEntry> entries_;
  uint64_t next_seq_ = 1;
};

}  // namespace kaito::fakearm
