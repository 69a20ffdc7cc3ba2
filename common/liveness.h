// What `/livez` asks: is the process wedged? The loops it depends on (the clock's timer
// thread, the HTTP client's loop) must keep turning; each watched loop says how long ago it
// last turned, and the process is alive while none has been still for longer than
// `stall_after`. A slow request or a busy CPU is not wedged; a deadlock, or a callback that
// never returns on a loop's thread, is.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace kaito {

class LivenessWatch {
 public:
  // `now` is a monotonic time source (tests inject one); steady time by default.
  explicit LivenessWatch(absl::Duration stall_after = absl::Seconds(60),
                         std::function<absl::Duration()> now = nullptr);
  // Cancels the clock's beat.
  ~LivenessWatch();
  LivenessWatch(const LivenessWatch&) = delete;
  LivenessWatch& operator=(const LivenessWatch&) = delete;

  // Watches `clock`'s timer thread: a timer every `period` records that it ran.
  void WatchClock(const std::string& name, Clock* clock, absl::Duration period = absl::Seconds(1));
  // Watches a loop that tells how long it has been since it last turned.
  void Watch(const std::string& name, std::function<absl::Duration()> stalled_for);

  // "" while alive, else which loop is stuck and for how long.
  std::string Check();

 private:
  struct ClockBeat;
  static void Arm(std::shared_ptr<ClockBeat> beat, std::function<absl::Duration()> now);

  const absl::Duration stall_after_;
  const std::function<absl::Duration()> now_;
  absl::Mutex mu_;
  std::vector<std::pair<std::string, std::function<absl::Duration()>>> loops_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<ClockBeat>> beats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito
