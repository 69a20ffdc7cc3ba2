// Collects a store watch's events for tests; thread-safe.
#pragma once

#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

namespace kaito::server::store {

class Recorder {
 public:
  WatchCallback Callback() {
    return [this](const std::vector<Event>& events) {
      absl::MutexLock lock(&mu_);
      for (const auto& e : events) events_.push_back(e);
    };
  }
  std::vector<Event> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return events_.size();
  }

 private:
  absl::Mutex mu_;
  std::vector<Event> events_;
};

}  // namespace kaito::server::store
