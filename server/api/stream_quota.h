// Caps on long-lived streams (watches; agent sessions may share it): at most `total` open
// at once, and at most `per_connection` from one client connection (gRPC's peer string
// names the connection). A stream over a cap is refused with RESOURCE_EXHAUSTED, which
// names the cap, instead of costing memory.
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace kaito::server {

struct StreamLimits {
  size_t total = 10000;
  size_t per_connection = 1000;
};

class StreamQuota {
 public:
  StreamQuota(std::string what, StreamLimits limits) : what_(std::move(what)), limits_(limits) {}

  // Takes one slot for `peer`; RESOURCE_EXHAUSTED when a cap is reached.
  absl::Status Acquire(const std::string& peer) {
    absl::MutexLock lock(&mu_);
    if (open_ >= limits_.total) {
      return absl::ResourceExhaustedError("too many " + what_ + ": " + std::to_string(open_) +
                                          " open on this server (limit " +
                                          std::to_string(limits_.total) + ")");
    }
    size_t& mine = by_peer_[peer];
    if (mine >= limits_.per_connection) {
      if (mine == 0) by_peer_.erase(peer);
      return absl::ResourceExhaustedError("too many " + what_ + ": " + std::to_string(mine) +
                                          " open on this connection (limit " +
                                          std::to_string(limits_.per_connection) + ")");
    }
    ++mine;
    ++open_;
    return absl::OkStatus();
  }

  void Release(const std::string& peer) {
    absl::MutexLock lock(&mu_);
    auto it = by_peer_.find(peer);
    if (it == by_peer_.end()) return;
    if (--it->second == 0) by_peer_.erase(it);
    --open_;
  }

  size_t open() {
    absl::MutexLock lock(&mu_);
    return open_;
  }

 private:
  const std::string what_;
  const StreamLimits limits_;
  absl::Mutex mu_;
  size_t open_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, size_t> by_peer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
