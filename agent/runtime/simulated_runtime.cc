#include "agent/runtime/simulated_runtime.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "agent/supervisor/container_labels.h"

namespace kaito::agent {
namespace {

bool RunsToCompletion(const std::map<std::string, std::string>& labels) {
  auto kind = labels.find(labels::kContainerKind);
  if (kind != labels.end() && kind->second == labels::kKindInit) return true;
  auto policy = labels.find(labels::kRestartPolicy);
  return policy != labels.end() && policy->second == "Never";
}

std::string Label(const std::map<std::string, std::string>& labels, const char* key) {
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

}  // namespace

const char* SimulatedFaultKindName(SimulatedFault::Kind kind) {
  switch (kind) {
    case SimulatedFault::Kind::kPullFailure:
      return "pull";
    case SimulatedFault::Kind::kStartFailure:
      return "start";
    case SimulatedFault::Kind::kCrash:
      return "crash";
    case SimulatedFault::Kind::kOomKill:
      return "oom";
    case SimulatedFault::Kind::kNeverReady:
      return "never-ready";
  }
  return "unknown";
}

absl::StatusOr<SimulatedFault> ParseSimulatedFault(const std::string& spec) {
  auto bad = [&spec](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "simulated fault \"", spec, "\": ", why,
        "; want SUBSTRING=pull|start|crash[:AFTER[:EXIT_CODE]]|oom[:AFTER]|never-ready"));
  };
  const size_t eq = spec.rfind('=');
  if (eq == std::string::npos) return bad("no '='");
  SimulatedFault fault;
  fault.match = spec.substr(0, eq);
  if (fault.match.empty()) return bad("the substring to match is empty");
  std::vector<std::string> parts = absl::StrSplit(spec.substr(eq + 1), ':');
  const std::string& kind = parts[0];
  size_t max_parts = 1;
  if (kind == "pull") {
    fault.kind = SimulatedFault::Kind::kPullFailure;
  } else if (kind == "start") {
    fault.kind = SimulatedFault::Kind::kStartFailure;
  } else if (kind == "crash") {
    fault.kind = SimulatedFault::Kind::kCrash;
    max_parts = 3;
  } else if (kind == "oom") {
    fault.kind = SimulatedFault::Kind::kOomKill;
    fault.exit_code = 137;
    max_parts = 2;
  } else if (kind == "never-ready") {
    fault.kind = SimulatedFault::Kind::kNeverReady;
  } else {
    return bad(absl::StrCat("unknown fault \"", kind, "\""));
  }
  if (parts.size() > max_parts) return bad(absl::StrCat("\"", kind, "\" takes fewer arguments"));
  if (parts.size() >= 2) {
    if (!absl::ParseDuration(parts[1], &fault.after) || fault.after < absl::ZeroDuration()) {
      return bad(absl::StrCat("\"", parts[1], "\" is not a duration such as 10s"));
    }
  }
  if (parts.size() >= 3) {
    if (!absl::SimpleAtoi(parts[2], &fault.exit_code) || fault.exit_code < 0 ||
        fault.exit_code > 255) {
      return bad(absl::StrCat("exit code \"", parts[2], "\" is not 0 to 255"));
    }
  }
  return fault;
}

SimulatedRuntime::SimulatedRuntime(Clock* clock, Options options)
    : clock_(clock), options_(std::move(options)) {
  static std::once_flag logged;
  std::call_once(logged, [] {
    spdlog::info(
        "simulated container runtime: containers are a SIMULATION; nothing is pulled, no "
        "process runs and no port answers");
  });
  absl::MutexLock lock(&mu_);
  faults_ = options_.faults;
}

SimulatedRuntime::~SimulatedRuntime() {
  strand_->Close();
  absl::MutexLock lock(&mu_);
  for (Clock::TimerId id : timers_) clock_->Cancel(id);
  timers_.clear();
}

void SimulatedRuntime::After(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  auto id_slot = std::make_shared<std::atomic<Clock::TimerId>>(0);
  absl::MutexLock lock(&mu_);
  const Clock::TimerId id =
      clock_->RunAfter(delay, [this, strand = strand_, id_slot, fn = std::move(fn)]() mutable {
        strand->Run([this, id_slot, fn = std::move(fn)]() mutable {
          {
            absl::MutexLock lock(&mu_);
            timers_.erase(id_slot->load());
          }
          fn();
        });
      });
  id_slot->store(id);
  timers_.insert(id);
}

const SimulatedFault* SimulatedRuntime::FindFaultLocked(
    SimulatedFault::Kind kind, const std::string& image,
    const std::map<std::string, std::string>& labels) {
  const std::string workload = Label(labels, labels::kWorkloadName);
  for (const SimulatedFault& f : faults_) {
    if (f.kind != kind) continue;
    if (image.find(f.match) != std::string::npos) return &f;
    if (kind != SimulatedFault::Kind::kPullFailure && !workload.empty() &&
        workload.find(f.match) != std::string::npos) {
      return &f;
    }
  }
  return nullptr;
}

void SimulatedRuntime::PullImage(const std::string& image, StatusCallback done) {
  if (image.empty()) {
    After(absl::ZeroDuration(), [done = std::move(done)]() mutable {
      done(absl::InvalidArgumentError("empty image reference"));
    });
    return;
  }
  bool fail = false;
  bool cached = false;
  {
    absl::MutexLock lock(&mu_);
    ++pulls_;
    fail = FindFaultLocked(SimulatedFault::Kind::kPullFailure, image, {}) != nullptr;
    cached = images_.count(image) > 0;
  }
  After(cached || fail ? absl::ZeroDuration() : options_.pull_delay,
        [this, image, fail, done = std::move(done)]() mutable {
          if (fail) {
            done(absl::NotFoundError(
                absl::StrCat("image ", image, " not found (simulated pull failure)")));
            return;
          }
          {
            absl::MutexLock lock(&mu_);
            images_.insert(image);
          }
          done(absl::OkStatus());
        });
}

void SimulatedRuntime::CreateContainer(const ContainerConfig& config,
                                       absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) {
  After(absl::ZeroDuration(), [this, config, done = std::move(done)]() mutable {
    absl::StatusOr<std::string> result;
    ContainerInfo info;
    {
      absl::MutexLock lock(&mu_);
      if (config.name.empty()) {
        result = absl::InvalidArgumentError("container name is empty");
      } else if (id_by_name_.count(config.name) > 0) {
        result = absl::AlreadyExistsError("container name " + config.name + " is in use");
      } else if (images_.count(config.image) == 0) {
        result = absl::NotFoundError("no such image " + config.image + " (pull it first)");
      } else {
        const std::string id = absl::StrFormat("sim%012x", next_id_++);
        Container& c = containers_[id];
        c.config = config;
        c.info.id = id;
        c.info.name = config.name;
        c.info.image = config.image;
        c.info.labels = config.labels;
        c.info.created_at = clock_->Now();
        id_by_name_[config.name] = id;
        info = c.info;
        result = id;
      }
    }
    if (result.ok()) Notify(info);
    done(std::move(result));
  });
}

void SimulatedRuntime::StartContainer(const std::string& id, StatusCallback done) {
  After(options_.start_delay, [this, id, done = std::move(done)]() mutable {
    struct Timer {
      absl::Duration delay;
      absl::AnyInvocable<void()> fn;
    };
    std::vector<Timer> timers;
    ContainerInfo info;
    absl::Status result;
    {
      absl::MutexLock lock(&mu_);
      auto it = containers_.find(id);
      if (it == containers_.end()) {
        result = absl::NotFoundError("no such container " + id);
      } else if (it->second.info.state == ContainerState::kRunning) {
        result = absl::OkStatus();
      } else {
        Container& c = it->second;
        const std::string& image = c.config.image;
        const auto& labels = c.config.labels;
        const uint64_t run = ++c.run;
        c.stopping = false;
        if (FindFaultLocked(SimulatedFault::Kind::kStartFailure, image, labels) != nullptr) {
          c.info.state = ContainerState::kExited;
          c.info.exit_code = 128;
          c.info.error = "simulated start failure: exec: \"" +
                         (c.config.entrypoint.empty() ? "/bin/sh" : c.config.entrypoint[0]) +
                         "\": executable file not found";
          c.info.finished_at = clock_->Now();
          result = absl::FailedPreconditionError(c.info.error);
        } else {
          ++starts_;
          const bool job = RunsToCompletion(labels);
          c.info.state = ContainerState::kRunning;
          c.info.exit_code = 0;
          c.info.oom_killed = false;
          c.info.error.clear();
          c.info.started_at = clock_->Now();
          c.info.finished_at = absl::InfinitePast();
          c.info.health = job ? ContainerHealth::kNone : ContainerHealth::kStarting;
          if (job) {
            timers.push_back(
                {options_.job_duration, [this, id, run] { Exit(id, run, 0, false, ""); }});
          }
          if (const SimulatedFault* f =
                  FindFaultLocked(SimulatedFault::Kind::kCrash, image, labels)) {
            const int code = f->exit_code;
            timers.push_back({f->after, [this, id, run, code] { Exit(id, run, code, false, ""); }});
          }
          if (const SimulatedFault* f =
                  FindFaultLocked(SimulatedFault::Kind::kOomKill, image, labels)) {
            timers.push_back({f->after, [this, id, run] { Exit(id, run, 137, true, ""); }});
          }
          if (!job &&
              FindFaultLocked(SimulatedFault::Kind::kNeverReady, image, labels) == nullptr) {
            timers.push_back({options_.ready_delay, [this, id, run] { SetHealthy(id, run); }});
          }
        }
        info = c.info;
      }
    }
    for (Timer& t : timers) After(t.delay, std::move(t.fn));
    if (!info.id.empty()) Notify(info);
    done(result);
  });
}

void SimulatedRuntime::Exit(const std::string& id, uint64_t run, int exit_code, bool oom,
                            const std::string& error) {
  ContainerInfo info;
  {
    absl::MutexLock lock(&mu_);
    auto it = containers_.find(id);
    if (it == containers_.end() || it->second.run != run ||
        it->second.info.state != ContainerState::kRunning) {
      return;
    }
    ContainerInfo& i = it->second.info;
    i.state = ContainerState::kExited;
    i.exit_code = exit_code;
    i.oom_killed = oom;
    i.error = error;
    i.health = ContainerHealth::kNone;
    i.finished_at = clock_->Now();
    it->second.stopping = false;
    info = i;
  }
  Notify(info);
}

void SimulatedRuntime::SetHealthy(const std::string& id, uint64_t run) {
  ContainerInfo info;
  {
    absl::MutexLock lock(&mu_);
    auto it = containers_.find(id);
    if (it == containers_.end() || it->second.run != run ||
        it->second.info.state != ContainerState::kRunning) {
      return;
    }
    it->second.info.health = ContainerHealth::kHealthy;
    info = it->second.info;
  }
  Notify(info);
}

void SimulatedRuntime::InspectContainer(
    const std::string& id, absl::AnyInvocable<void(absl::StatusOr<ContainerInfo>)> done) {
  After(absl::ZeroDuration(), [this, id, done = std::move(done)]() mutable {
    absl::StatusOr<ContainerInfo> result = absl::NotFoundError("no such container " + id);
    {
      absl::MutexLock lock(&mu_);
      auto it = containers_.find(id);
      if (it != containers_.end()) result = it->second.info;
    }
    done(std::move(result));
  });
}

void SimulatedRuntime::ContainerLogs(const std::string& id, int tail_lines,
                                     absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) {
  After(absl::ZeroDuration(), [this, id, done = std::move(done)]() mutable {
    absl::StatusOr<std::string> result = absl::NotFoundError("no such container " + id);
    {
      absl::MutexLock lock(&mu_);
      auto it = containers_.find(id);
      if (it != containers_.end()) {
        const ContainerInfo& info = it->second.info;
        result = info.state == ContainerState::kExited
                     ? absl::StrCat("simulated ", info.image, ": exiting with code ",
                                    info.exit_code, "\n")
                     : std::string();
      }
    }
    done(std::move(result));
  });
}

void SimulatedRuntime::StopContainer(const std::string& id, absl::Duration grace,
                                     StatusCallback done) {
  After(absl::ZeroDuration(), [this, id, grace, done = std::move(done)]() mutable {
    absl::Status result;
    bool running = false;
    uint64_t run = 0;
    {
      absl::MutexLock lock(&mu_);
      auto it = containers_.find(id);
      if (it == containers_.end()) {
        result = absl::NotFoundError("no such container " + id);
      } else if (it->second.info.state == ContainerState::kRunning) {
        it->second.stopping = true;
        running = true;
        run = it->second.run;
      }
    }
    if (!running) {
      done(result);
      return;
    }
    const bool killed = options_.stop_delay > grace;
    After(killed ? grace : options_.stop_delay,
          [this, id, run, killed, done = std::move(done)]() mutable {
            Exit(id, run, killed ? 137 : 143, false, "");
            done(absl::OkStatus());
          });
  });
}

void SimulatedRuntime::RemoveContainer(const std::string& id, StatusCallback done) {
  After(absl::ZeroDuration(), [this, id, done = std::move(done)]() mutable {
    absl::Status result;
    {
      absl::MutexLock lock(&mu_);
      auto it = containers_.find(id);
      if (it == containers_.end()) {
        result = absl::NotFoundError("no such container " + id);
      } else if (it->second.info.state == ContainerState::kRunning) {
        result = absl::FailedPreconditionError("container " + id + " is running; stop it first");
      } else {
        id_by_name_.erase(it->second.info.name);
        containers_.erase(it);
      }
    }
    done(result);
  });
}

void SimulatedRuntime::ListContainers(
    const std::map<std::string, std::string>& labels,
    absl::AnyInvocable<void(absl::StatusOr<std::vector<ContainerInfo>>)> done) {
  After(absl::ZeroDuration(), [this, labels, done = std::move(done)]() mutable {
    std::vector<ContainerInfo> out;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, c] : containers_) {
        bool match = true;
        for (const auto& [k, v] : labels) {
          auto it = c.info.labels.find(k);
          match = match && it != c.info.labels.end() && it->second == v;
        }
        if (match) out.push_back(c.info);
      }
    }
    done(std::move(out));
  });
}

ContainerRuntime::ListenerId SimulatedRuntime::AddListener(Listener listener) {
  absl::MutexLock lock(&mu_);
  const ListenerId id = next_listener_++;
  listeners_[id] = std::make_shared<Listener>(std::move(listener));
  return id;
}

void SimulatedRuntime::RemoveListener(ListenerId id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(id);
}

void SimulatedRuntime::Notify(const ContainerInfo& info) {
  std::vector<std::shared_ptr<Listener>> listeners;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, l] : listeners_) listeners.push_back(l);
  }
  for (const auto& l : listeners) (*l)(info);
}

void SimulatedRuntime::AddFault(SimulatedFault fault) {
  absl::MutexLock lock(&mu_);
  faults_.push_back(std::move(fault));
}

void SimulatedRuntime::ClearFaults() {
  absl::MutexLock lock(&mu_);
  faults_.clear();
}

std::vector<ContainerInfo> SimulatedRuntime::Containers() {
  absl::MutexLock lock(&mu_);
  std::vector<ContainerInfo> out;
  for (const auto& [id, c] : containers_) out.push_back(c.info);
  return out;
}

int SimulatedRuntime::starts() {
  absl::MutexLock lock(&mu_);
  return starts_;
}

int SimulatedRuntime::pulls() {
  absl::MutexLock lock(&mu_);
  return pulls_;
}

}  // namespace kaito::agent
