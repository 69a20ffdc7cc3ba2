// Exponential backoff with jitter for reconnect loops: each wait is drawn uniformly from
// [d/2, d] (whole milliseconds), and d doubles from `initial` up to `cap`. Reset() after a
// try that made progress, so that the next failure waits `initial` again.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace kaito {

class JitteredBackoff {
 public:
  JitteredBackoff(absl::Duration initial, absl::Duration cap)
      : initial_(initial), cap_(cap), current_(initial), random_(std::random_device{}()) {}

  // The wait before the next try; then doubles the ceiling (up to cap).
  absl::Duration Next() {
    const int64_t ms = absl::ToInt64Milliseconds(current_);
    const absl::Duration wait = absl::Milliseconds(
        ms / 2 + static_cast<int64_t>(random_() % static_cast<uint64_t>(ms / 2 + 1)));
    current_ = std::min(current_ * 2, cap_);
    return wait;
  }
  void Reset() { current_ = initial_; }

 private:
  absl::Duration initial_, cap_, current_;
  std::mt19937_64 random_;
};

}  // namespace kaito
