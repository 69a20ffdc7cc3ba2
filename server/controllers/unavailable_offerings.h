// Offerings (instance type x capacity type) that recently failed for lack of capacity or
// quota, shared by every workspace the controller reconciles, so that the next claim skips
// them at once instead of trying them again; each entry expires after `ttl` (capacity and
// quota change). Thread-safe: workers of the workspace controller read and write it.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace kaito::server {

class UnavailableOfferings {
 public:
  UnavailableOfferings(Clock* clock, absl::Duration ttl) : clock_(clock), ttl_(ttl) {}

  // Marks `key` unavailable for `ttl` from now, with the reason users read.
  void Mark(const std::string& key, std::string reason) {
    absl::MutexLock lock(&mu_);
    entries_[key] = {std::move(reason), clock_->Monotonic() + ttl_};
  }
  // The reason `key` is unavailable, or nullopt when it may be tried.
  std::optional<std::string> Reason(const std::string& key) {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    if (clock_->Monotonic() >= it->second.until) {
      entries_.erase(it);
      return std::nullopt;
    }
    return it->second.reason;
  }

 private:
  struct Entry {
    std::string reason;
    absl::Duration until;
  };
  Clock* const clock_;
  const absl::Duration ttl_;
  absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
