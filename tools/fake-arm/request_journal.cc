#include "tools/fake-arm/request_journal.h"

#include <openssl/evp.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"

namespace kaito::fakearm {

std::string RedactAuthorization(const std::string& value) {
  const size_t space = value.find(' ');
  const std::string scheme = space == std::string::npos ? "" : value.substr(0, space);
  std::string credential = space == std::string::npos ? value : value.substr(space + 1);
  credential = std::string(absl::StripAsciiWhitespace(credential));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(credential.data(), credential.size(), digest, &length, EVP_sha256(), nullptr) !=
      1) {
    length = 0;
  }
  std::string hex;
  for (unsigned int i = 0; i < length && hex.size() < 12; ++i) {
    hex += absl::StrFormat("%02x", digest[i]);
  }
  return (scheme.empty() ? std::string("Bearer") : scheme) + " sha256:" + hex.substr(0, 12);
}

uint64_t RequestJournal::Begin(JournalEntry entry) {
  entry.seq = next_seq_++;
  const uint64_t seq = entry.seq;
  body_bytes_ += entry.body.size();
  entries_.push_back(std::move(entry));
  while (entries_.size() > 1 && (entries_.size() > capacity_ || body_bytes_ > max_body_bytes_)) {
    body_bytes_ -= entries_.front().body.size();
    entries_.pop_front();
  }
  return seq;
}

void RequestJournal::Finish(uint64_t seq, int status, int64_t latency_ms,
                            std::vector<int64_t> faults) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), seq,
                             [](const JournalEntry& e, uint64_t s) { return e.seq < s; });
  if (it == entries_.end() || it->seq != seq) return;
  it->status = status;
  it->latency_ms = latency_ms;
  it->faults = std::move(faults);
}

Json RequestJournal::List(const std::string& op, const std::string& pool) const {
  Json out = Json::array();
  for (const JournalEntry& e : entries_) {
    if (!op.empty() && e.op != op) continue;
    if (!pool.empty() && !absl::EqualsIgnoreCase(e.pool, pool)) continue;
    out.push_back(Json{{"seq", e.seq},
                       {"t_ms", e.t_ms},
                       {"method", e.method},
                       {"path", e.path},
                       {"query", e.query},
                       {"op", e.op},
                       {"pool", e.pool},
                       {"headers", e.headers},
                       {"body", e.body},
                       {"status", e.status},
                       {"latency_ms", e.latency_ms},
                       {"faults", e.faults}});
  }
  return out;
}

void RequestJournal::Clear() {
  entries_.clear();
  body_bytes_ = 0;
}

}  // namespace kaito::fakearm
