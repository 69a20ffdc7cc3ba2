#include "agent/supervisor/workload_supervisor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/supervisor/container_labels.h"
#include "common/logging.h"

namespace kaito::agent {

enum class WorkloadSupervisor::Stage {
  kWaiting,
  // The agent's downloads (before the images).
  kDownloading,
  kPulling,
  kInit,
  kStarting,
  kRunning,
  kBackoff,
  // The agent's push of the output (after every container exited 0).
  kPushing,
  kFinished,
  kTerminating,
};

struct WorkloadSupervisor::Container {
  std::string spec_name;
  bool init = false;
  int index = 0;
  ContainerConfig config;
  std::string id;
  // As the runtime last reported it.
  ContainerInfo info;
  // The current run's start succeeded (or, adopted, it has run).
  bool started = false;
  // An exit of the current run is still to be handled.
  bool awaiting_exit = false;
  // We asked it to stop: its exit is no crash.
  bool stopping = false;
  // Restart policy "Never": exited 0.
  bool exited_ok = false;
  absl::Duration started_mono = absl::ZeroDuration();
  // Termination progress.
  bool stopped = false;
  bool removed = false;
};

struct WorkloadSupervisor::Workload {
  uint64_t serial = 0;
  std::string ns;
  std::string name;
  std::string uid;
  int64_t generation = 0;
  std::string key;
  std::string restart_policy = "Always";
  int endpoint_port = 0;
  absl::Duration grace = absl::Seconds(30);
  // Found in the runtime by `Recover`, not yet confirmed by a desired set.
  bool adopted = false;
  std::vector<Container> init;
  std::vector<Container> main;
  std::vector<std::string> images;
  Stage stage = Stage::kWaiting;
  // Runtime calls in flight that change this workload's containers.
  int ops = 0;
  bool pulls_started = false;
  int pulls_pending = 0;
  absl::Status pull_error;
  absl::Status termination_error;
  size_t next_init = 0;
  // Consecutive failed runs (crash-loop backoff), total restarts, transient retries.
  int crashes = 0;
  int restarts = 0;
  int retries = 0;
  Clock::TimerId timer = 0;
  v1::WorkloadStatus status;
  std::string last_reported;
  // The agent's transfers (workload_data.h): what to fetch and push, the host directory of
  // each volume they use, and how far the downloads are.
  std::string workspace;
  std::vector<v1::DataDownload> downloads;
  std::optional<v1::ArtifactPush> push;
  std::map<std::string, std::string> volume_dirs;
  size_t next_download = 0;
  int64_t downloaded_before = 0;  // Bytes of the downloads already done.
  absl::Duration last_progress = -absl::InfiniteDuration();
};

LogSubject WorkloadSupervisor::About(const Workload& w) {
  return {w.ns, w.workspace, "workload/" + w.name};
}

namespace {

constexpr char kReasonImagePull[] = "ImagePullError";
constexpr char kReasonStart[] = "ContainerStartError";
constexpr char kReasonOom[] = "ContainerOOMKilled";
constexpr char kReasonCrashLoop[] = "ContainerCrashLoopBackOff";
constexpr char kReasonJobFailed[] = "JobFailed";
constexpr char kReasonInvalid[] = "InvalidWorkload";
constexpr char kReasonDownload[] = "InputDownloadFailed";
constexpr char kReasonPush[] = "OutputPushFailed";
// How often download progress reaches the status at most.
constexpr absl::Duration kProgressEvery = absl::Seconds(1);

std::string Key(const std::string& ns, const std::string& name) {
  return absl::StrCat(ns, "/", name);
}

std::string Label(const std::map<std::string, std::string>& labels, const char* key) {
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

int LabelInt(const std::map<std::string, std::string>& labels, const char* key, int fallback) {
  int value = 0;
  return absl::SimpleAtoi(Label(labels, key), &value) ? value : fallback;
}

// Docker names: [a-zA-Z0-9][a-zA-Z0-9_.-]*.
std::string Sanitize(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) c = '-';
  }
  return out;
}

void SetTimestamp(google::protobuf::Timestamp* ts, absl::Time t) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
}

// The lines of a failed container's output that reach its workload's message.
constexpr int kLogTailLines = 10;
constexpr size_t kLogTailBytes = 1024;

// The last lines of `logs`, joined with " | ", at most kLogTailBytes (cut at the front).
std::string LogTail(const std::string& logs) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(logs, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) lines.emplace_back(line);
  }
  if (lines.size() > kLogTailLines) lines.erase(lines.begin(), lines.end() - kLogTailLines);
  std::string tail = absl::StrJoin(lines, " | ");
  if (tail.size() > kLogTailBytes) tail = "..." + tail.substr(tail.size() - kLogTailBytes);
  return tail;
}

std::string DescribeExit(bool init, const std::string& name, const ContainerInfo& info) {
  const std::string what = absl::StrCat(init ? "init container " : "container ", name);
  if (info.oom_killed)
    return absl::StrCat(what, " was OOM-killed (exit code ", info.exit_code, ")");
  if (!info.error.empty()) {
    return absl::StrCat(what, " exited with code ", info.exit_code, ": ", info.error);
  }
  return absl::StrCat(what, " exited with code ", info.exit_code);
}

}  // namespace

WorkloadSupervisor::WorkloadSupervisor(WorkloadSupervisorOptions options, Clock* clock,
                                       ContainerRuntime* runtime,
                                       std::shared_ptr<WorkSerializer> strand,
                                       ChangeCallback on_change)
    : options_(std::move(options)),
      clock_(clock),
      runtime_(runtime),
      strand_(std::move(strand)),
      on_change_(std::move(on_change)) {
  listener_ =
      runtime_->AddListener([this, strand = strand_, alive = alive_](const ContainerInfo& info) {
        strand->Run([this, alive, info] {
          if (*alive) OnContainerInfo(info);
        });
      });
  ArmResync();
}

WorkloadSupervisor::~WorkloadSupervisor() { Shutdown(); }

void WorkloadSupervisor::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  *alive_ = false;
  runtime_->RemoveListener(listener_);
  if (resync_timer_ != 0) clock_->Cancel(resync_timer_);
  resync_timer_ = 0;
  for (auto& [serial, w] : workloads_) {
    if (w->timer != 0) clock_->Cancel(w->timer);
    w->timer = 0;
  }
}

template <typename F>
auto WorkloadSupervisor::Callback(uint64_t serial, F fn) {
  return [this, strand = strand_, alive = alive_, serial,
          fn = std::move(fn)](auto... args) mutable {
    strand->Run([this, alive, serial, fn = std::move(fn), ... args = std::move(args)]() mutable {
      if (!*alive) return;
      Workload* w = Lookup(serial);
      if (w == nullptr) return;
      fn(*w, std::move(args)...);
    });
  };
}

WorkloadSupervisor::Workload* WorkloadSupervisor::Lookup(uint64_t serial) {
  auto it = workloads_.find(serial);
  return it == workloads_.end() ? nullptr : it->second.get();
}

uint64_t WorkloadSupervisor::AddWorkload(std::unique_ptr<Workload> w) {
  const uint64_t serial = next_serial_++;
  w->serial = serial;
  for (auto* list : {&w->init, &w->main}) {
    for (Container& c : *list) {
      if (!c.id.empty()) by_container_[c.id] = serial;
    }
  }
  workloads_[serial] = std::move(w);
  return serial;
}

WorkloadSupervisor::Container* WorkloadSupervisor::ContainerOf(Workload& w, const std::string& id) {
  for (auto* list : {&w.init, &w.main}) {
    for (Container& c : *list) {
      if (c.id == id) return &c;
    }
  }
  return nullptr;
}

namespace {

// The node's meaning of a passed-through Kubernetes volume source: hostPath -> a bind mount
// of that directory; persistentVolumeClaim -> the named volume `kaito-pvc_<ns>_<claim>`.
// Anything else has none (nullopt).
std::optional<std::pair<Mount::Type, std::string>> NodeVolumeSource(const std::string& json_text,
                                                                    const std::string& ns) {
  nlohmann::json source = nlohmann::json::parse(json_text, nullptr, false);
  if (!source.is_object()) return std::nullopt;
  if (auto host = source.find("hostPath"); host != source.end() && host->is_object()) {
    auto path = host->find("path");
    if (path != host->end() && path->is_string() && !path->get<std::string>().empty() &&
        path->get<std::string>()[0] == '/') {
      return std::make_pair(Mount::Type::kBind, path->get<std::string>());
    }
    return std::nullopt;
  }
  if (auto pvc = source.find("persistentVolumeClaim"); pvc != source.end() && pvc->is_object()) {
    auto claim = pvc->find("claimName");
    if (claim != pvc->end() && claim->is_string() && !claim->get<std::string>().empty()) {
      return std::make_pair(
          Mount::Type::kVolume,
          Sanitize(absl::StrCat("kaito-pvc_", ns, "_", claim->get<std::string>())));
    }
  }
  return std::nullopt;
}

// The container configs, labels and policies of a desired workload.
void FillFromSpec(const v1::Workload& spec, const WorkloadSupervisorOptions& options,
                  const std::map<std::string, std::string>& volume_dirs,
                  std::string* restart_policy, int* endpoint_port, absl::Duration* grace,
                  std::vector<std::string>* images,
                  std::vector<std::pair<bool, ContainerConfig>>* configs,
                  std::vector<std::string>* names) {
  const v1::WorkloadSpec& s = spec.spec();
  *restart_policy = s.restart_policy();
  if (restart_policy->empty()) *restart_policy = s.role() == "tuning" ? "Never" : "Always";
  *endpoint_port = 0;
  if (s.containers_size() > 0 && s.containers(0).ports_size() > 0) {
    *endpoint_port = s.containers(0).ports(0).container_port();
  }
  *grace = s.termination_grace_period_seconds() > 0
               ? absl::Seconds(s.termination_grace_period_seconds())
               : options.default_grace;
  const std::string ns = spec.metadata().namespace_();
  const std::string name = spec.metadata().name();
  const std::string uid = spec.metadata().uid();
  const std::string generation = std::to_string(spec.metadata().generation());
  std::set<std::string> seen_images;
  auto add = [&](const v1::ContainerSpec& c, bool init, int index, int count) {
    if (!c.image().empty() && seen_images.insert(c.image()).second) images->push_back(c.image());
    ContainerConfig config;
    config.name = Sanitize(absl::StrCat("kaito_", ns, "_", name, "_", init ? "init-" : "",
                                        c.name().empty() ? std::to_string(index) : c.name(), "_",
                                        uid.substr(0, 8), "_g", generation));
    config.image = c.image();
    config.entrypoint.assign(c.command().begin(), c.command().end());
    config.args.assign(c.args().begin(), c.args().end());
    for (const v1::EnvVar& e : c.env()) {
      // Secret references are resolved by the server-side renderer or not at all: the agent
      // holds no secrets yet.
      if (e.has_secret_key_ref()) continue;
      config.env.emplace_back(e.name(), e.value());
    }
    for (const v1::ContainerPort& p : c.ports()) config.ports.push_back(p.container_port());
    config.gpus = c.gpus();
    for (const v1::VolumeMount& m : c.volume_mounts()) {
      for (const v1::Volume& v : s.volumes()) {
        if (v.name() != m.name()) continue;
        Mount mount;
        mount.target = m.mount_path();
        mount.read_only = m.read_only();
        if (auto dir = volume_dirs.find(v.name()); dir != volume_dirs.end()) {
          // A directory of the agent's (its downloads go in, its push reads from it).
          mount.type = Mount::Type::kBind;
          mount.source = dir->second;
        } else if (v.source_case() == v1::Volume::kEmptyDirMedium &&
                   v.empty_dir_medium() == "Memory") {
          mount.type = Mount::Type::kTmpfs;
        } else if (v.source_case() == v1::Volume::kEmptyDirMedium ||
                   v.source_case() == v1::Volume::kNvmeBytes) {
          mount.type = Mount::Type::kVolume;
          mount.source =
              Sanitize(absl::StrCat("kaito_", ns, "_", name, "_", v.name(), "_", uid.substr(0, 8)));
        } else if (v.source_case() == v1::Volume::kVolumeSourceJson) {
          // Kubernetes sources that have a meaning on one node: a host directory, or a claim
          // as a named volume of the node that outlives the workload (a tuning job's
          // results survive a retry on the same node).
          auto source = NodeVolumeSource(v.volume_source_json(), ns);
          if (!source.has_value()) continue;
          mount.type = source->first;
          mount.source = source->second;
        } else {
          // ConfigMap and Secret volumes are not materialized on the node yet.
          continue;
        }
        config.mounts.push_back(std::move(mount));
      }
    }
    if (c.has_readiness_probe() &&
        (!c.readiness_probe().http_path().empty() || c.readiness_probe().exec_size() > 0)) {
      const v1::Probe& p = c.readiness_probe();
      HealthCheck check;
      check.http_path = p.http_path();
      check.port = p.port();
      check.exec.assign(p.exec().begin(), p.exec().end());
      if (p.period_seconds() > 0) check.interval = absl::Seconds(p.period_seconds());
      if (p.timeout_seconds() > 0) check.timeout = absl::Seconds(p.timeout_seconds());
      if (p.failure_threshold() > 0) check.retries = p.failure_threshold();
      check.start_period = absl::Seconds(p.initial_delay_seconds());
      config.health_check = std::move(check);
    }
    config.labels = {
        {labels::kManagedBy, labels::kManagedByValue},
        {labels::kNode, options.node_name},
        {labels::kWorkloadNamespace, ns},
        {labels::kWorkloadName, name},
        {labels::kWorkloadUid, uid},
        {labels::kWorkloadGeneration, generation},
        {labels::kWorkspace, s.workspace()},
        {labels::kContainerName, c.name()},
        {labels::kContainerKind, init ? labels::kKindInit : labels::kKindMain},
        {labels::kContainerIndex, std::to_string(index)},
        {labels::kContainerCount, std::to_string(count)},
        {labels::kRestartPolicy, *restart_policy},
        {labels::kGracePeriod, std::to_string(absl::ToInt64Seconds(*grace))},
    };
    if (!init && index == 0 && *endpoint_port > 0) {
      config.labels[labels::kEndpointPort] = std::to_string(*endpoint_port);
    }
    names->push_back(c.name());
    configs->emplace_back(init, std::move(config));
  };
  for (int i = 0; i < s.init_containers_size(); ++i) {
    add(s.init_containers(i), true, i, s.init_containers_size());
  }
  for (int i = 0; i < s.containers_size(); ++i) add(s.containers(i), false, i, s.containers_size());
}

}  // namespace

void WorkloadSupervisor::Recover(absl::AnyInvocable<void(absl::Status)> done) {
  runtime_->ListContainers(
      {{labels::kManagedBy, labels::kManagedByValue}, {labels::kNode, options_.node_name}},
      [this, strand = strand_, alive = alive_,
       done = std::move(done)](absl::StatusOr<std::vector<ContainerInfo>> listed) mutable {
        strand->Run([this, alive, done = std::move(done), listed = std::move(listed)]() mutable {
          if (!*alive) return;
          if (!listed.ok()) {
            done(listed.status());
            return;
          }
          AdoptListed(std::move(*listed));
          done(absl::OkStatus());
        });
      });
}

void WorkloadSupervisor::AdoptListed(std::vector<ContainerInfo> containers) {
  // (namespace/name, generation, uid) -> containers.
  std::map<std::tuple<std::string, int64_t, std::string>, std::vector<ContainerInfo>> groups;
  std::vector<ContainerInfo> orphans;
  for (ContainerInfo& info : containers) {
    const std::string ns = Label(info.labels, labels::kWorkloadNamespace);
    const std::string name = Label(info.labels, labels::kWorkloadName);
    int64_t generation = 0;
    if (name.empty() ||
        !absl::SimpleAtoi(Label(info.labels, labels::kWorkloadGeneration), &generation)) {
      orphans.push_back(std::move(info));
      continue;
    }
    groups[{Key(ns, name), generation, Label(info.labels, labels::kWorkloadUid)}].push_back(
        std::move(info));
  }
  auto terminate_all = [this](std::vector<ContainerInfo> infos, const std::string& key) {
    auto w = std::make_unique<Workload>();
    w->key = key;
    w->stage = Stage::kTerminating;
    for (ContainerInfo& info : infos) {
      Container c;
      c.id = info.id;
      c.info = std::move(info);
      w->grace = absl::Seconds(LabelInt(c.info.labels, labels::kGracePeriod,
                                        absl::ToInt64Seconds(options_.default_grace)));
      w->main.push_back(std::move(c));
    }
    const uint64_t serial = AddWorkload(std::move(w));
    Advance(serial);
  };
  if (!orphans.empty()) {
    spdlog::info("node {}: removing {} labelled container(s) of no workload", options_.node_name,
                 orphans.size());
    terminate_all(std::move(orphans), "");
  }
  // The newest complete incarnation of each name is adopted; the rest is removed.
  std::map<std::string, std::vector<ContainerInfo>> adopt;
  for (auto it = groups.rbegin(); it != groups.rend(); ++it) {
    const std::string& key = std::get<0>(it->first);
    std::vector<ContainerInfo>& infos = it->second;
    int mains = 0;
    int want = -1;
    for (const ContainerInfo& info : infos) {
      if (Label(info.labels, labels::kContainerKind) != labels::kKindMain) continue;
      ++mains;
      want = LabelInt(info.labels, labels::kContainerCount, -1);
    }
    if (adopt.count(key) > 0 || mains == 0 || mains != want) {
      spdlog::info("node {}: removing the containers of {} generation {} ({})", options_.node_name,
                   key, std::get<1>(it->first),
                   adopt.count(key) > 0 ? "a newer one runs" : "half created");
      terminate_all(std::move(infos), key);
      continue;
    }
    adopt[key] = std::move(infos);
  }
  for (auto& [key, infos] : adopt) {
    auto w = std::make_unique<Workload>();
    const auto& first = infos.front().labels;
    w->ns = Label(first, labels::kWorkloadNamespace);
    w->name = Label(first, labels::kWorkloadName);
    w->uid = Label(first, labels::kWorkloadUid);
    w->workspace = Label(first, labels::kWorkspace);
    absl::SimpleAtoi(Label(first, labels::kWorkloadGeneration), &w->generation);
    w->key = key;
    w->adopted = true;
    w->restart_policy = Label(first, labels::kRestartPolicy);
    if (w->restart_policy.empty()) w->restart_policy = "Always";
    w->grace = absl::Seconds(
        LabelInt(first, labels::kGracePeriod, absl::ToInt64Seconds(options_.default_grace)));
    for (ContainerInfo& info : infos) {
      Container c;
      c.init = Label(info.labels, labels::kContainerKind) == labels::kKindInit;
      c.index = LabelInt(info.labels, labels::kContainerIndex, 0);
      c.spec_name = Label(info.labels, labels::kContainerName);
      c.id = info.id;
      c.started = info.state != ContainerState::kCreated;
      c.awaiting_exit = info.state == ContainerState::kRunning;
      c.exited_ok =
          info.state == ContainerState::kExited && info.exit_code == 0 && !info.oom_killed;
      c.started_mono = clock_->Monotonic();
      if (!c.init && c.index == 0) {
        w->endpoint_port = LabelInt(info.labels, labels::kEndpointPort, 0);
      }
      c.info = std::move(info);
      (c.init ? w->init : w->main).push_back(std::move(c));
    }
    auto by_index = [](const Container& a, const Container& b) { return a.index < b.index; };
    std::sort(w->init.begin(), w->init.end(), by_index);
    std::sort(w->main.begin(), w->main.end(), by_index);
    w->next_init = w->init.size();
    w->pulls_started = true;
    const bool all_started =
        std::all_of(w->main.begin(), w->main.end(), [](const Container& c) { return c.started; });
    w->stage = all_started ? Stage::kRunning : Stage::kStarting;
    w->status.set_phase(all_started ? "Running" : "Starting");
    const uint64_t serial = AddWorkload(std::move(w));
    current_[key] = serial;
    LogAbout(spdlog::level::info, About(*workloads_[serial]), "node {}: adopted generation {}",
             options_.node_name, workloads_[serial]->generation);
    // Exits that happened while no agent watched are handled now.
    Workload& adopted = *workloads_[serial];
    for (Container& c : adopted.main) {
      if (adopted.stage != Stage::kRunning && adopted.stage != Stage::kStarting) break;
      if (c.info.state == ContainerState::kExited) HandleExit(adopted, c);
    }
    Advance(serial);
  }
}

bool WorkloadSupervisor::Apply(int64_t generation, const std::vector<v1::Workload>& workloads) {
  if (applied_generation_ && generation <= *applied_generation_) return false;
  applied_generation_ = generation;
  std::map<std::string, const v1::Workload*> desired;
  for (const v1::Workload& w : workloads) {
    if (w.metadata().name().empty()) {
      spdlog::warn("node {}: ignoring a desired workload without a name", options_.node_name);
      continue;
    }
    desired[Key(w.metadata().namespace_(), w.metadata().name())] = &w;
  }
  std::vector<uint64_t> gone;
  for (const auto& [key, serial] : current_) {
    const Workload& w = *workloads_.at(serial);
    auto it = desired.find(key);
    if (it == desired.end() || it->second->metadata().uid() != w.uid ||
        it->second->metadata().generation() != w.generation) {
      gone.push_back(serial);
    }
  }
  for (uint64_t serial : gone) {
    if (Workload* w = Lookup(serial)) Terminate(*w);
  }
  std::vector<uint64_t> fresh;
  for (const auto& [key, spec] : desired) {
    std::string restart_policy;
    int endpoint_port = 0;
    absl::Duration grace;
    std::vector<std::string> images;
    std::vector<std::pair<bool, ContainerConfig>> configs;
    std::vector<std::string> names;
    // The volumes the agent's transfers use are its directories.
    std::map<std::string, std::string> volume_dirs;
    absl::Status dirs_ok = absl::OkStatus();
    if (options_.data != nullptr) {
      std::set<std::string> volumes;
      for (const v1::DataDownload& d : spec->spec().downloads()) volumes.insert(d.volume());
      if (spec->spec().has_push()) volumes.insert(spec->spec().push().volume());
      for (const std::string& v : volumes) {
        auto dir =
            options_.data->VolumeDir(spec->metadata().namespace_(), spec->spec().workspace(), v);
        if (!dir.ok()) {
          dirs_ok = dir.status();
          break;
        }
        volume_dirs[v] = *dir;
      }
    }
    FillFromSpec(*spec, options_, volume_dirs, &restart_policy, &endpoint_port, &grace, &images,
                 &configs, &names);
    auto existing = current_.find(key);
    if (existing != current_.end()) {
      Workload& w = *workloads_.at(existing->second);
      if (!w.adopted) continue;
      // An adopted workload gets its spec; its containers stay.
      size_t init_index = 0;
      size_t main_index = 0;
      for (size_t i = 0; i < configs.size(); ++i) {
        auto& list = configs[i].first ? w.init : w.main;
        size_t& index = configs[i].first ? init_index : main_index;
        if (index < list.size()) {
          list[index].config = configs[i].second;
          list[index].spec_name = names[i];
        }
        ++index;
      }
      w.adopted = false;
      // The restarts counted by the agent before this one (the server keeps the last
      // report): an adopted container's history is not in the engine.
      w.restarts = std::max(w.restarts, spec->status().restarts());
      w.images = std::move(images);
      w.grace = grace;
      w.endpoint_port = endpoint_port;
      w.restart_policy = restart_policy;
      continue;
    }
    auto w = std::make_unique<Workload>();
    w->ns = spec->metadata().namespace_();
    w->name = spec->metadata().name();
    w->uid = spec->metadata().uid();
    w->generation = spec->metadata().generation();
    w->key = key;
    w->restart_policy = restart_policy;
    w->endpoint_port = endpoint_port;
    w->grace = grace;
    w->images = std::move(images);
    w->workspace = spec->spec().workspace();
    w->downloads.assign(spec->spec().downloads().begin(), spec->spec().downloads().end());
    if (spec->spec().has_push()) w->push = spec->spec().push();
    w->volume_dirs = std::move(volume_dirs);
    for (size_t i = 0; i < configs.size(); ++i) {
      Container c;
      c.init = configs[i].first;
      c.spec_name = names[i];
      c.config = std::move(configs[i].second);
      auto& list = c.init ? w->init : w->main;
      c.index = static_cast<int>(list.size());
      list.push_back(std::move(c));
    }
    if (w->main.empty()) {
      w->stage = Stage::kFinished;
      w->status.set_phase("Failed");
      w->status.set_reason(kReasonInvalid);
      w->status.set_message("the workload has no containers");
    } else if (!dirs_ok.ok()) {
      w->stage = Stage::kFinished;
      w->status.set_phase("Failed");
      w->status.set_reason(kReasonInvalid);
      w->status.set_message(std::string(dirs_ok.message()));
    }
    const uint64_t serial = AddWorkload(std::move(w));
    current_[key] = serial;
    fresh.push_back(serial);
  }
  for (uint64_t serial : fresh) {
    UpdateStatus(*workloads_.at(serial));  // Pending: accepted.
    Advance(serial);
  }
  return true;
}

void WorkloadSupervisor::ResetGeneration() { applied_generation_.reset(); }

void WorkloadSupervisor::Terminate(Workload& w) {
  if (w.stage == Stage::kTerminating) return;
  if (w.timer != 0) clock_->Cancel(w.timer);
  w.timer = 0;
  w.stage = Stage::kTerminating;
  auto it = current_.find(w.key);
  if (it != current_.end() && it->second == w.serial) current_.erase(it);
  LogAbout(spdlog::level::debug, About(w), "node {}: stopping generation {}", options_.node_name,
           w.generation);
  Advance(w.serial);
}

void WorkloadSupervisor::Advance(uint64_t serial) {
  Workload* wp = Lookup(serial);
  if (wp == nullptr) return;
  Workload& w = *wp;
  if (w.stage == Stage::kTerminating) {
    AdvanceTermination(w);  // May erase `w`.
    return;
  }
  while (w.ops == 0 && w.timer == 0) {
    bool progressed = false;
    switch (w.stage) {
      case Stage::kWaiting: {
        bool blocked = false;
        for (const auto& [other, o] : workloads_) {
          blocked =
              blocked || (other != serial && o->key == w.key && o->stage == Stage::kTerminating);
        }
        if (blocked) break;
        w.stage = w.downloads.empty() ? Stage::kPulling : Stage::kDownloading;
        progressed = true;
        break;
      }
      case Stage::kDownloading:
        NextDownload(w);
        progressed = w.stage != Stage::kDownloading;
        break;
      case Stage::kPulling:
        if (!w.pulls_started) {
          StartPulls(w);
          progressed = w.ops == 0;
          break;
        }
        w.stage = w.init.empty() ? Stage::kStarting : Stage::kInit;
        progressed = true;
        break;
      case Stage::kInit: {
        if (w.next_init >= w.init.size()) {
          w.stage = Stage::kStarting;
          progressed = true;
          break;
        }
        Container& c = w.init[w.next_init];
        if (c.id.empty()) {
          CreateContainer(w, c);
        } else if (!c.started) {
          StartContainer(w, c);
        }
        break;  // Otherwise it runs: its exit moves on.
      }
      case Stage::kStarting: {
        Container* next = nullptr;
        for (Container& c : w.main) {
          if (c.id.empty()) {
            next = &c;
            CreateContainer(w, c);
            break;
          }
        }
        if (next != nullptr) break;
        for (Container& c : w.main) {
          if (!c.started && !c.exited_ok) {
            next = &c;
            StartContainer(w, c);
            break;
          }
        }
        if (next != nullptr) break;
        w.stage = Stage::kRunning;
        progressed = true;
        break;
      }
      case Stage::kRunning:
      case Stage::kBackoff:
      case Stage::kPushing:
      case Stage::kFinished:
      case Stage::kTerminating:
        break;
    }
    if (!progressed) break;
  }
  UpdateStatus(w);
}

void WorkloadSupervisor::StartPulls(Workload& w) {
  w.pulls_started = true;
  w.pull_error = absl::OkStatus();
  w.pulls_pending = static_cast<int>(w.images.size());
  for (const std::string& image : w.images) {
    ++w.ops;
    runtime_->PullImage(
        image, Callback(w.serial, [this, image](Workload& w, absl::Status s) {
          --w.ops;
          --w.pulls_pending;
          if (!s.ok() && w.pull_error.ok()) {
            w.pull_error =
                absl::Status(s.code(), absl::StrCat("pulling image ", image, ": ", s.message()));
          }
          if (w.pulls_pending == 0 && !w.pull_error.ok() && w.stage == Stage::kPulling) {
            w.pulls_started = false;
            if (IsTransientRuntimeError(w.pull_error)) {
              RetryLater(w, kReasonImagePull, w.pull_error);
            } else {
              Finish(w, false, kReasonImagePull, std::string(w.pull_error.message()));
            }
          } else if (s.ok()) {
            w.retries = 0;
          }
          Advance(w.serial);
        }));
  }
}

void WorkloadSupervisor::CreateContainer(Workload& w, Container& c) {
  ++w.ops;
  const bool init = c.init;
  const int index = c.index;
  runtime_->CreateContainer(
      c.config,
      Callback(w.serial, [this, init, index](Workload& w, absl::StatusOr<std::string> id) {
        --w.ops;
        Container& c = (init ? w.init : w.main)[index];
        if (id.ok()) {
          c.id = *id;
          by_container_[c.id] = w.serial;
          w.retries = 0;
        } else if (w.stage != Stage::kTerminating) {
          const absl::Status s(id.status().code(), absl::StrCat("creating container ", c.spec_name,
                                                                ": ", id.status().message()));
          if (IsTransientRuntimeError(s)) {
            RetryLater(w, kReasonStart, s);
          } else {
            StopOthers(w, nullptr);
            Finish(w, false, kReasonStart, std::string(s.message()));
          }
        }
        Advance(w.serial);
      }));
}

void WorkloadSupervisor::StartContainer(Workload& w, Container& c) {
  ++w.ops;
  c.stopping = false;
  const bool init = c.init;
  const int index = c.index;
  runtime_->StartContainer(
      c.id, Callback(w.serial, [this, init, index](Workload& w, absl::Status s) {
        --w.ops;
        Container& c = (init ? w.init : w.main)[index];
        if (s.ok()) {
          if (!c.started) {
            c.started = true;
            c.started_mono = clock_->Monotonic();
            // A run that already ended (before this reply) is handled by the next event or
            // resync, which sees it exited.
            if (c.info.state != ContainerState::kExited) c.awaiting_exit = true;
          }
          w.retries = 0;
          if (!init && !w.status.has_start_time()) {
            SetTimestamp(w.status.mutable_start_time(), clock_->Now());
          }
        } else if (absl::IsNotFound(s) && w.stage != Stage::kTerminating &&
                   w.stage != Stage::kFinished) {
          // Removed behind our back: it is created again.
          LogAbout(spdlog::level::info, About(w),
                   "node {}: container {} is gone; creating it again", options_.node_name, c.id);
          by_container_.erase(c.id);
          c.id.clear();
          c.info = ContainerInfo();
        } else if (w.stage != Stage::kTerminating && w.stage != Stage::kFinished) {
          const absl::Status err(s.code(),
                                 absl::StrCat("starting ", init ? "init container " : "container ",
                                              c.spec_name, ": ", s.message()));
          if (IsTransientRuntimeError(err)) {
            RetryLater(w, kReasonStart, err);
          } else {
            StopOthers(w, &c);
            Finish(w, false, kReasonStart, std::string(err.message()));
          }
        }
        Advance(w.serial);
      }));
}

void WorkloadSupervisor::OnContainerInfo(const ContainerInfo& info) {
  auto it = by_container_.find(info.id);
  if (it == by_container_.end()) return;
  Workload* w = Lookup(it->second);
  if (w == nullptr) return;
  Container* c = ContainerOf(*w, info.id);
  if (c == nullptr) return;
  // A stale inspect must not undo what a newer event said about the same run.
  if (info.state == ContainerState::kRunning && c->info.state == ContainerState::kExited &&
      info.started_at <= c->info.started_at) {
    return;
  }
  c->info = info;
  if (w->stage == Stage::kTerminating) return;
  if (w->stage == Stage::kFinished) {
    UpdateStatus(*w);
    return;
  }
  if (info.state == ContainerState::kRunning && !c->stopping) c->awaiting_exit = true;
  if (info.state == ContainerState::kExited && c->awaiting_exit) {
    c->awaiting_exit = false;
    HandleExit(*w, *c);
    Advance(w->serial);
    return;
  }
  UpdateStatus(*w);
}

void WorkloadSupervisor::HandleExit(Workload& w, Container& c) {
  c.awaiting_exit = false;
  w.status.set_exit_code(c.info.exit_code);
  const bool ok = c.info.exit_code == 0 && !c.info.oom_killed;
  if (c.init) {
    if (ok) {
      ++w.next_init;
      return;
    }
    FailedRun(w, c);
    return;
  }
  if (w.restart_policy == "Never") {
    if (ok) {
      c.exited_ok = true;
      const bool all =
          std::all_of(w.main.begin(), w.main.end(), [](const Container& m) { return m.exited_ok; });
      if (all) Complete(w);
      return;
    }
  }
  FailedRun(w, c);
}

void WorkloadSupervisor::AttachLogTail(Workload& w, const Container& c) {
  if (c.id.empty()) return;
  const std::string message = w.status.message();
  runtime_->ContainerLogs(
      c.id, kLogTailLines,
      Callback(w.serial, [this, message](Workload& w, absl::StatusOr<std::string> logs) {
        if (!logs.ok() || w.status.message() != message) return;
        const std::string tail = LogTail(*logs);
        if (tail.empty()) return;
        w.status.set_message(absl::StrCat(message, "; last output: ", tail));
        UpdateStatus(w);
      }));
}

void WorkloadSupervisor::FailedRun(Workload& w, Container& c) {
  const bool oom = c.info.oom_killed;
  const std::string what = DescribeExit(c.init, c.spec_name, c.info);
  if (w.restart_policy == "Never") {
    StopOthers(w, &c);
    Finish(w, false, oom ? kReasonOom : kReasonJobFailed, what);
    AttachLogTail(w, c);
    return;
  }
  c.started = false;
  if (w.timer != 0) return;  // Another container's restart is already waiting.
  if (clock_->Monotonic() - c.started_mono >= options_.crash_backoff_reset) w.crashes = 0;
  if (w.crashes >= options_.max_restarts) {
    StopOthers(w, &c);
    Finish(w, false, oom ? kReasonOom : kReasonCrashLoop,
           absl::StrCat(what, "; restarted ", w.restarts, " times, giving up (max restarts ",
                        options_.max_restarts, ")"));
    AttachLogTail(w, c);
    return;
  }
  absl::Duration delay = options_.crash_backoff_initial;
  for (int i = 0; i < w.crashes && delay < options_.crash_backoff_max; ++i) delay *= 2;
  delay = std::min(delay, options_.crash_backoff_max);
  ++w.crashes;
  w.stage = Stage::kBackoff;
  w.status.set_reason(oom ? kReasonOom : kReasonCrashLoop);
  w.status.set_message(absl::StrCat(what, "; back-off ", absl::FormatDuration(delay),
                                    " before restart ", w.restarts + 1, " of ",
                                    options_.max_restarts));
  AttachLogTail(w, c);
  const bool init = c.init;
  w.timer = clock_->RunAfter(delay, Callback(w.serial, [this, init](Workload& w) {
                               w.timer = 0;
                               if (w.stage != Stage::kBackoff) return;
                               ++w.restarts;
                               w.stage = init ? Stage::kInit : Stage::kStarting;
                               Advance(w.serial);
                             }));
}

void WorkloadSupervisor::NextDownload(Workload& w) {
  if (w.next_download >= w.downloads.size()) {
    w.stage = Stage::kPulling;
    return;
  }
  const v1::DataDownload& d = w.downloads[w.next_download];
  if (options_.data == nullptr) {
    LogAbout(spdlog::level::info, About(w), "node {}: download of {} simulated: nothing is fetched",
             options_.node_name, d.url().substr(0, d.url().find('?')));
    ++w.next_download;
    w.stage = w.next_download >= w.downloads.size() ? Stage::kPulling : Stage::kDownloading;
    return;
  }
  auto dir = w.volume_dirs.find(d.volume());
  if (dir == w.volume_dirs.end()) {
    Finish(w, false, kReasonInvalid,
           absl::StrCat("download into volume \"", d.volume(), "\", which the workload lacks"));
    return;
  }
  ++w.ops;
  w.status.set_message(absl::StrCat("downloading input ", w.next_download + 1, " of ",
                                    w.downloads.size(), ": ", d.file_name()));
  UpdateStatus(w);
  const uint64_t serial = w.serial;
  options_.data->Download(
      d, dir->second,
      // Progress comes on the HTTP client's thread; at most once a second it reaches the status.
      [this, strand = strand_, alive = alive_, serial](const DownloadProgress& p) {
        strand->Run([this, alive, serial, p] {
          if (!*alive) return;
          Workload* w = Lookup(serial);
          if (w == nullptr || w->stage != Stage::kDownloading) return;
          const absl::Duration now = clock_->Monotonic();
          if (now - w->last_progress < kProgressEvery && p.bytes != p.total) return;
          w->last_progress = now;
          w->status.set_data_bytes(w->downloaded_before + p.bytes);
          if (p.total >= 0) w->status.set_data_total_bytes(w->downloaded_before + p.total);
          UpdateStatus(*w);
        });
      },
      Callback(w.serial, [this](Workload& w, absl::Status s) {
        --w.ops;
        if (w.stage != Stage::kDownloading) return;
        if (!s.ok()) {
          Finish(w, false, kReasonDownload, std::string(s.message()));
          UpdateStatus(w);
          return;
        }
        w.downloaded_before = w.status.data_bytes();
        ++w.next_download;
        Advance(w.serial);
      }));
}

void WorkloadSupervisor::Complete(Workload& w) {
  if (!w.push.has_value()) {
    Finish(w, true, "", "every container exited 0");
    return;
  }
  const v1::ArtifactPush& push = *w.push;
  if (options_.data == nullptr) {
    Finish(w, true, "",
           absl::StrCat("every container exited 0; push of ", push.image(),
                        " simulated: nothing is pushed"));
    return;
  }
  auto dir = w.volume_dirs.find(push.volume());
  if (dir == w.volume_dirs.end()) {
    Finish(w, false, kReasonInvalid,
           absl::StrCat("push from volume \"", push.volume(), "\", which the workload lacks"));
    return;
  }
  if (!push.completion_marker().empty() &&
      !std::filesystem::exists(dir->second + "/" + push.completion_marker())) {
    Finish(w, false, kReasonJobFailed,
           absl::StrCat("every container exited 0 but the job did not write ",
                        push.completion_marker(), ": nothing is pushed"));
    return;
  }
  w.stage = Stage::kPushing;
  w.status.set_message("pushing the output to " + push.image());
  ++w.ops;
  options_.data->Push(push, w.ns, dir->second,
                      Callback(w.serial, [this](Workload& w, absl::StatusOr<std::string> digest) {
                        --w.ops;
                        if (w.stage != Stage::kPushing) return;
                        if (!digest.ok()) {
                          Finish(w, false, kReasonPush, std::string(digest.status().message()));
                        } else {
                          Finish(w, true, "",
                                 absl::StrCat("every container exited 0; pushed ", w.push->image(),
                                              " (", *digest, ")"));
                        }
                        UpdateStatus(w);
                      }));
}

void WorkloadSupervisor::Finish(Workload& w, bool succeeded, const std::string& reason,
                                const std::string& message) {
  if (w.timer != 0) clock_->Cancel(w.timer);
  w.timer = 0;
  w.stage = Stage::kFinished;
  w.status.set_phase(succeeded ? "Succeeded" : "Failed");
  w.status.set_reason(reason);
  w.status.set_message(message);
  w.status.clear_endpoint();
  SetTimestamp(w.status.mutable_finish_time(), clock_->Now());
  if (!succeeded) {
    LogAbout(spdlog::level::info, About(w), "node {}: failed: {}: {}", options_.node_name, reason,
             message);
  }
}

void WorkloadSupervisor::StopOthers(Workload& w, const Container* except) {
  for (auto* list : {&w.init, &w.main}) {
    for (Container& c : *list) {
      if (&c == except || c.id.empty() || c.info.state != ContainerState::kRunning) continue;
      c.stopping = true;
      c.awaiting_exit = false;
      ++w.ops;
      runtime_->StopContainer(c.id, w.grace, Callback(w.serial, [this](Workload& w, absl::Status) {
                                --w.ops;
                                Advance(w.serial);
                              }));
    }
  }
}

void WorkloadSupervisor::RetryLater(Workload& w, const std::string& reason,
                                    const absl::Status& status) {
  absl::Duration delay = options_.retry_initial;
  for (int i = 0; i < w.retries && delay < options_.retry_max; ++i) delay *= 2;
  delay = std::min(delay, options_.retry_max);
  ++w.retries;
  if (w.stage != Stage::kTerminating) {
    w.status.set_reason(reason);
    w.status.set_message(
        absl::StrCat(status.message(), "; retrying in ", absl::FormatDuration(delay)));
  }
  w.timer = clock_->RunAfter(delay, Callback(w.serial, [this](Workload& w) {
                               w.timer = 0;
                               w.termination_error = absl::OkStatus();
                               Advance(w.serial);
                             }));
}

void WorkloadSupervisor::AdvanceTermination(Workload& w) {
  if (w.ops > 0 || w.timer != 0) return;
  if (!w.termination_error.ok()) {
    LogAbout(spdlog::level::warn, About(w), "node {}: removing: {}", options_.node_name,
             std::string(w.termination_error.message()));
    RetryLater(w, "", w.termination_error);
    return;
  }
  auto done_with = [this](Workload& w, Container& c, absl::Status s, bool stop) {
    --w.ops;
    if (s.ok()) {
      (stop ? c.stopped : c.removed) = true;
    } else if (absl::IsNotFound(s)) {
      c.stopped = c.removed = true;
    } else if (w.termination_error.ok()) {
      w.termination_error = s;
    }
    Advance(w.serial);
  };
  bool issued = false;
  for (int pass = 0; pass < 2 && !issued; ++pass) {
    const bool stop = pass == 0;
    for (auto* list : {&w.init, &w.main}) {
      for (Container& c : *list) {
        if (c.id.empty() || c.removed || (stop && c.stopped)) continue;
        c.stopping = true;
        c.awaiting_exit = false;
        ++w.ops;
        issued = true;
        const bool init = list == &w.init;
        const size_t index = static_cast<size_t>(&c - list->data());
        auto cb = Callback(w.serial, [done_with, init, index, stop](Workload& w, absl::Status s) {
          done_with(w, (init ? w.init : w.main)[index], std::move(s), stop);
        });
        if (stop) {
          runtime_->StopContainer(c.id, w.grace, std::move(cb));
        } else {
          runtime_->RemoveContainer(c.id, std::move(cb));
        }
      }
    }
  }
  if (issued) return;
  for (auto* list : {&w.init, &w.main}) {
    for (Container& c : *list) by_container_.erase(c.id);
  }
  const std::string key = w.key;
  LogAbout(spdlog::level::debug, About(w), "node {}: removed generation {}", options_.node_name,
           w.generation);
  auto successor = current_.find(key);
  if (on_change_ && !w.uid.empty() &&
      (successor == current_.end() || successor->second == w.serial)) {
    // Left the desired set: tell the server it is stopped (it holds the workload's
    // deletion until it hears so).
    v1::WorkloadReport report;
    report.set_namespace_(w.ns);
    report.set_name(w.name);
    report.set_uid(w.uid);
    report.mutable_status()->set_phase("Stopped");
    report.mutable_status()->set_observed_generation(w.generation);
    on_change_(report);
  }
  if (options_.data != nullptr && !w.volume_dirs.empty() && w.status.phase() == "Succeeded") {
    // Its results were pushed (or are in its own volumes): its directories go.
    options_.data->Forget(w.ns, w.workspace);
  }
  workloads_.erase(w.serial);  // `w` is gone.
  successor = current_.find(key);
  if (!key.empty() && successor != current_.end()) Advance(successor->second);
}

void WorkloadSupervisor::ArmResync() {
  if (shut_down_ || options_.resync_interval <= absl::ZeroDuration()) return;
  resync_timer_ =
      clock_->RunAfter(options_.resync_interval, [this, strand = strand_, alive = alive_] {
        strand->Run([this, alive] {
          if (!*alive) return;
          resync_timer_ = 0;
          Resync();
          ArmResync();
        });
      });
}

void WorkloadSupervisor::Resync() {
  for (const auto& [serial, w] : workloads_) {
    if (w->stage == Stage::kTerminating || w->stage == Stage::kFinished) continue;
    for (auto* list : {&w->init, &w->main}) {
      for (const Container& c : *list) {
        if (c.id.empty() || !c.started) continue;
        const std::string id = c.id;
        runtime_->InspectContainer(
            id, Callback(serial, [this, id](Workload& w, absl::StatusOr<ContainerInfo> info) {
              if (info.ok()) {
                OnContainerInfo(*info);
                return;
              }
              if (!absl::IsNotFound(info.status())) return;
              Container* c = ContainerOf(w, id);
              if (c == nullptr || w.stage == Stage::kTerminating || w.stage == Stage::kFinished) {
                return;
              }
              // The container is gone (removed behind our back): a failed run; it is
              // created again on restart.
              by_container_.erase(id);
              c->id.clear();
              c->info.state = ContainerState::kExited;
              c->info.exit_code = -1;
              c->info.error = "the container disappeared from the runtime";
              if (c->awaiting_exit) {
                HandleExit(w, *c);
              } else {
                c->started = false;
              }
              Advance(w.serial);
            }));
      }
    }
  }
}

void WorkloadSupervisor::UpdateStatus(Workload& w) {
  v1::WorkloadStatus& s = w.status;
  switch (w.stage) {
    case Stage::kTerminating:
      return;
    case Stage::kWaiting:
      s.set_phase("Pending");
      break;
    case Stage::kDownloading:
    case Stage::kPulling:
      s.set_phase("Pulling");
      break;
    case Stage::kPushing:
      s.set_phase("Running");
      break;
    case Stage::kInit:
    case Stage::kStarting:
    case Stage::kBackoff:
      s.set_phase("Starting");
      break;
    case Stage::kRunning: {
      bool ready = w.restart_policy != "Never";
      for (const Container& c : w.main) {
        ready =
            ready && c.started && c.info.state == ContainerState::kRunning &&
            (c.info.health == ContainerHealth::kNone || c.info.health == ContainerHealth::kHealthy);
      }
      s.set_phase(ready ? "Ready" : "Running");
      if (ready || w.restart_policy == "Never") {
        s.clear_reason();
        s.clear_message();
      }
      break;
    }
    case Stage::kFinished:
      break;
  }
  if (s.phase() == "Ready" && w.endpoint_port > 0) {
    // Where the runtime published the port, if it chose one.
    int port = w.endpoint_port;
    if (!w.main.empty()) {
      auto published = w.main[0].info.host_ports.find(w.endpoint_port);
      if (published != w.main[0].info.host_ports.end()) port = published->second;
    }
    s.set_endpoint(absl::StrCat(options_.node_address, ":", port));
  } else {
    s.clear_endpoint();
  }
  s.set_observed_generation(w.generation);
  s.set_restarts(w.restarts);
  std::string serialized = s.SerializeAsString();
  if (serialized == w.last_reported) return;
  w.last_reported = std::move(serialized);
  if (!on_change_) return;
  v1::WorkloadReport report;
  report.set_namespace_(w.ns);
  report.set_name(w.name);
  report.set_uid(w.uid);
  *report.mutable_status() = s;
  on_change_(report);
}

std::vector<v1::WorkloadReport> WorkloadSupervisor::Reports() const {
  std::vector<v1::WorkloadReport> out;
  for (const auto& [key, serial] : current_) {
    const Workload& w = *workloads_.at(serial);
    v1::WorkloadReport report;
    report.set_namespace_(w.ns);
    report.set_name(w.name);
    report.set_uid(w.uid);
    *report.mutable_status() = w.status;
    out.push_back(std::move(report));
  }
  return out;
}

const v1::WorkloadStatus* WorkloadSupervisor::Find(const std::string& ns,
                                                   const std::string& name) const {
  auto it = current_.find(Key(ns, name));
  if (it == current_.end()) return nullptr;
  return &workloads_.at(it->second)->status;
}

size_t WorkloadSupervisor::terminating() const {
  size_t n = 0;
  for (const auto& [serial, w] : workloads_) n += w->stage == Stage::kTerminating ? 1 : 0;
  return n;
}

}  // namespace kaito::agent
