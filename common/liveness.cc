#include "common/liveness.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace kaito {

struct LivenessWatch::ClockBeat {
  Clock* clock = nullptr;
  absl::Duration period;
  absl::Mutex mu;
  absl::Duration last ABSL_GUARDED_BY(mu);
  Clock::TimerId timer ABSL_GUARDED_BY(mu) = 0;
  bool stopped ABSL_GUARDED_BY(mu) = false;
};

LivenessWatch::LivenessWatch(absl::Duration stall_after, std::function<absl::Duration()> now)
    : stall_after_(stall_after), now_(now ? std::move(now) : [] {
        return absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
      }) {}

LivenessWatch::~LivenessWatch() {
  std::vector<std::shared_ptr<ClockBeat>> beats;
  {
    absl::MutexLock lock(&mu_);
    beats.swap(beats_);
  }
  for (auto& beat : beats) {
    Clock::TimerId timer;
    {
      absl::MutexLock lock(&beat->mu);
      beat->stopped = true;
      timer = beat->timer;
    }
    if (timer != 0) beat->clock->Cancel(timer);
  }
}

void LivenessWatch::WatchClock(const std::string& name, Clock* clock, absl::Duration period) {
  auto beat = std::make_shared<ClockBeat>();
  beat->clock = clock;
  beat->period = period;
  {
    absl::MutexLock lock(&beat->mu);
    beat->last = now_();
  }
  {
    absl::MutexLock lock(&mu_);
    beats_.push_back(beat);
    // The beat, not `this`, is captured: it outlives the watch if a timer is running.
    loops_.emplace_back(name, [beat, now = now_] {
      absl::MutexLock lock(&beat->mu);
      return now() - beat->last;
    });
  }
  Arm(std::move(beat), now_);
}

void LivenessWatch::Arm(std::shared_ptr<ClockBeat> beat, std::function<absl::Duration()> now) {
  absl::MutexLock lock(&beat->mu);
  if (beat->stopped) return;
  // Re-armed from the timer thread itself: if that thread wedges, the beats stop.
  beat->timer = beat->clock->RunAfter(beat->period, [beat, now]() {
    {
      absl::MutexLock lock(&beat->mu);
      if (beat->stopped) return;
      beat->last = now();
    }
    Arm(beat, now);
  });
}

void LivenessWatch::Watch(const std::string& name, std::function<absl::Duration()> stalled_for) {
  absl::MutexLock lock(&mu_);
  loops_.emplace_back(name, std::move(stalled_for));
}

std::string LivenessWatch::Check() {
  std::vector<std::pair<std::string, std::function<absl::Duration()>>> loops;
  {
    absl::MutexLock lock(&mu_);
    loops = loops_;
  }
  for (const auto& [name, stalled_for] : loops) {
    const absl::Duration still = stalled_for();
    if (still > stall_after_) {
      return absl::StrCat(name, " has not run for ",
                          absl::FormatDuration(absl::Trunc(still, absl::Seconds(1))),
                          " (wedged: over ", absl::FormatDuration(stall_after_), ")");
    }
  }
  return "";
}

}  // namespace kaito
