#include "agent/runtime/docker_runtime.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace kaito::agent {
namespace {

using json = nlohmann::json;

// The label that carries an HTTP readiness probe of the agent's, so that an agent that
// restarts probes the containers it adopts: `PORT PATH INTERVAL TIMEOUT RETRIES START`.
constexpr char kProbeLabel[] = "kaito.sh/http-readiness-probe";
// Event actions after which a container's state or health may have changed.
constexpr const char* kStateActions[] = {"start",         "die",     "stop",  "kill",
                                         "oom",           "restart", "pause", "unpause",
                                         "health_status", "destroy", "remove"};

int64_t Nanos(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

std::string ProbeLabelValue(const HealthCheck& c) {
  return absl::StrCat(c.port, " ", c.http_path.empty() ? "/" : c.http_path, " ",
                      absl::ToInt64Milliseconds(c.interval), " ",
                      absl::ToInt64Milliseconds(c.timeout), " ", c.retries, " ",
                      absl::ToInt64Milliseconds(c.start_period));
}

std::optional<HealthCheck> ParseProbeLabel(const std::string& value) {
  std::vector<std::string> parts = absl::StrSplit(value, ' ', absl::SkipEmpty());
  if (parts.size() != 6) return std::nullopt;
  HealthCheck c;
  int64_t interval_ms = 0, timeout_ms = 0, start_ms = 0;
  if (!absl::SimpleAtoi(parts[0], &c.port) || c.port <= 0 || c.port > 65535 ||
      !absl::StartsWith(parts[1], "/") || !absl::SimpleAtoi(parts[2], &interval_ms) ||
      interval_ms <= 0 || !absl::SimpleAtoi(parts[3], &timeout_ms) || timeout_ms <= 0 ||
      !absl::SimpleAtoi(parts[4], &c.retries) || c.retries <= 0 ||
      !absl::SimpleAtoi(parts[5], &start_ms) || start_ms < 0) {
    return std::nullopt;
  }
  c.http_path = parts[1];
  c.interval = absl::Milliseconds(interval_ms);
  c.timeout = absl::Milliseconds(timeout_ms);
  c.start_period = absl::Milliseconds(start_ms);
  return c;
}

absl::Time ParseEngineTime(const json& value) {
  if (!value.is_string()) return absl::InfinitePast();
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, value.get<std::string>(), &t, &err)) {
    return absl::InfinitePast();
  }
  // Go's zero time ("0001-01-01T00:00:00Z") means never.
  return t < absl::FromUnixSeconds(0) ? absl::InfinitePast() : t;
}

std::string StringField(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// The message of an engine's error reply ({"message": ...}), else the body itself (bounded).
std::string ErrorMessage(const http::Response& r) {
  json body = json::parse(r.body, nullptr, false);
  std::string message = StringField(body, "message");
  if (message.empty()) message = r.body.substr(0, 500);
  return message;
}

ContainerState StateFromText(const std::string& status) {
  if (status == "running" || status == "paused" || status == "restarting" || status == "stopping") {
    return ContainerState::kRunning;
  }
  if (status == "exited" || status == "dead" || status == "stopped" || status == "removing") {
    return ContainerState::kExited;
  }
  return ContainerState::kCreated;
}

ContainerHealth HealthFromText(const std::string& status) {
  if (status == "starting") return ContainerHealth::kStarting;
  if (status == "healthy") return ContainerHealth::kHealthy;
  if (status == "unhealthy") return ContainerHealth::kUnhealthy;
  return ContainerHealth::kNone;
}

absl::StatusOr<ContainerInfo> ParseInspect(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("Id") || !j["Id"].is_string()) {
    return absl::InternalError("the engine's container inspection is not a JSON object with an Id");
  }
  ContainerInfo info;
  info.id = j["Id"].get<std::string>();
  info.name = StringField(j, "Name");
  if (absl::StartsWith(info.name, "/")) info.name.erase(0, 1);
  const json empty = json::object();
  const json& config = j.contains("Config") && j["Config"].is_object() ? j["Config"] : empty;
  info.image = StringField(config, "Image");
  if (config.contains("Labels") && config["Labels"].is_object()) {
    for (const auto& [k, v] : config["Labels"].items()) {
      if (v.is_string()) info.labels[k] = v.get<std::string>();
    }
  }
  const json& state = j.contains("State") && j["State"].is_object() ? j["State"] : empty;
  info.state = StateFromText(StringField(state, "Status"));
  if (state.contains("ExitCode") && state["ExitCode"].is_number_integer()) {
    info.exit_code = state["ExitCode"].get<int>();
  }
  if (state.contains("OOMKilled") && state["OOMKilled"].is_boolean()) {
    info.oom_killed = state["OOMKilled"].get<bool>();
  }
  info.error = StringField(state, "Error");
  if (state.contains("Health") && state["Health"].is_object()) {
    info.health = HealthFromText(StringField(state["Health"], "Status"));
  }
  info.created_at = ParseEngineTime(j.contains("Created") ? j["Created"] : json());
  info.started_at = ParseEngineTime(state.contains("StartedAt") ? state["StartedAt"] : json());
  info.finished_at = ParseEngineTime(state.contains("FinishedAt") ? state["FinishedAt"] : json());
  if (info.state != ContainerState::kExited) info.finished_at = absl::InfinitePast();
  const json& network = j.contains("NetworkSettings") && j["NetworkSettings"].is_object()
                            ? j["NetworkSettings"]
                            : empty;
  if (network.contains("Ports") && network["Ports"].is_object()) {
    for (const auto& [key, bindings] : network["Ports"].items()) {
      int container_port = 0;
      if (!absl::SimpleAtoi(key.substr(0, key.find('/')), &container_port)) continue;
      if (!bindings.is_array()) continue;
      for (const json& b : bindings) {
        int host_port = 0;
        if (absl::SimpleAtoi(StringField(b, "HostPort"), &host_port) && host_port > 0) {
          info.host_ports[container_port] = host_port;
          break;
        }
      }
    }
  }
  return info;
}

// Docker's `filters` query parameter: {"label": ["k=v", ...]}.
std::string LabelFilter(const std::map<std::string, std::string>& labels) {
  json filter = json::object();
  json list = json::array();
  for (const auto& [k, v] : labels) list.push_back(absl::StrCat(k, "=", v));
  if (!list.empty()) filter["label"] = list;
  return http::UrlEncode(filter.dump());
}

// Kubelet's default pull policy: always for `latest` (or no tag), else only when absent.
bool AlwaysPull(const std::string& image) {
  if (absl::StrContains(image, "@")) return false;
  const size_t slash = image.rfind('/');
  const size_t colon = image.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) return true;
  return image.substr(colon + 1) == "latest";
}

}  // namespace

absl::StatusOr<std::string> DockerSocketPath(const std::string& docker_host) {
  constexpr char kScheme[] = "unix://";
  constexpr size_t kSchemeSize = sizeof(kScheme) - 1;
  if (!absl::StartsWith(docker_host, kScheme) || docker_host.size() <= kSchemeSize ||
      docker_host[kSchemeSize] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "--docker-host \"", docker_host, "\": want unix:///PATH (the engine's unix socket)"));
  }
  return docker_host.substr(kSchemeSize);
}

absl::Status ClassifyDockerError(const std::string& op, int http_status,
                                 const std::string& message) {
  const std::string text = absl::StrCat(op, ": ", message);
  const std::string lower = absl::AsciiStrToLower(message);
  auto has = [&](std::initializer_list<const char*> words) {
    return std::any_of(words.begin(), words.end(),
                       [&](const char* w) { return absl::StrContains(lower, w); });
  };
  if (op == "pull") {
    if (has({"unauthorized", "authentication required", "no basic auth credentials"})) {
      return absl::UnauthenticatedError(text);
    }
    if (has({"denied", "forbidden"})) return absl::PermissionDeniedError(text);
    if (has({"manifest unknown", "not found", "name unknown", "no such host",
             "repository does not exist", "does not exist"})) {
      return absl::NotFoundError(text);
    }
    if (has({"invalid reference", "invalid reference format"}) || http_status == 400) {
      return absl::InvalidArgumentError(text);
    }
    return absl::UnavailableError(text);
  }
  if (http_status == 404 || has({"no such container", "no container with name"})) {
    return absl::NotFoundError(text);
  }
  if (http_status == 409 || has({"already in use", "already exists"})) {
    if (op == "create") return absl::AlreadyExistsError(text);
    return absl::FailedPreconditionError(text);
  }
  if (has({"state improper", "is running", "cannot remove a running"})) {
    return absl::FailedPreconditionError(text);
  }
  if (http_status == 400) return absl::InvalidArgumentError(text);
  if (http_status == 502 || http_status == 503 || http_status == 504 || http_status == 429) {
    return absl::UnavailableError(text);
  }
  if (op == "create" || op == "start") {
    // The engine or its OCI runtime refused the container (bad command, bad mount, ...).
    return absl::FailedPreconditionError(text);
  }
  return absl::InternalError(text);
}

namespace {

// The CDI names of `count` GPUs.
std::vector<std::string> CdiNames(const DockerRuntimeOptions& options, int count) {
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) names.push_back(absl::StrCat(options.cdi_gpu_kind, "=", i));
  return names;
}

// The labels of `config`, with the agent's HTTP probe when it has one.
json Labels(const ContainerConfig& config) {
  json labels = json::object();
  for (const auto& [k, v] : config.labels) labels[k] = v;
  if (config.health_check.has_value() && config.health_check->exec.empty() &&
      config.health_check->port > 0) {
    labels[kProbeLabel] = ProbeLabelValue(*config.health_check);
  }
  return labels;
}

// The engine's own health check (Docker's HealthConfig, which libpod takes too), for exec
// checks; null otherwise.
json EngineHealthcheck(const ContainerConfig& config) {
  if (!config.health_check.has_value() || config.health_check->exec.empty()) return nullptr;
  const HealthCheck& c = *config.health_check;
  json test = json::array({"CMD"});
  for (const std::string& arg : c.exec) test.push_back(arg);
  return {{"Test", test},
          {"Interval", Nanos(c.interval)},
          {"Timeout", Nanos(c.timeout)},
          {"Retries", c.retries},
          {"StartPeriod", Nanos(c.start_period)}};
}

}  // namespace

namespace {

// OK when `r` is an answer of one of the `accepted` statuses; else the transport's error as
// it is, or the engine's, classified for `op`.
absl::Status EngineReply(const std::string& op, const absl::StatusOr<http::Response>& r,
                         std::initializer_list<int> accepted) {
  if (!r.ok()) return r.status();
  for (int status : accepted) {
    if (r->status == status) return absl::OkStatus();
  }
  return ClassifyDockerError(op, r->status, ErrorMessage(*r));
}

}  // namespace

std::string DockerCreateBody(const ContainerConfig& config, const DockerRuntimeOptions& options,
                             GpuAttach gpus) {
  json body = json::object();
  body["Image"] = config.image;
  if (!config.entrypoint.empty()) body["Entrypoint"] = config.entrypoint;
  if (!config.args.empty()) body["Cmd"] = config.args;
  json env = json::array();
  for (const auto& [k, v] : config.env) env.push_back(absl::StrCat(k, "=", v));
  body["Env"] = env;
  json host = json::object();
  json exposed = json::object();
  json bindings = json::object();
  for (int port : config.ports) {
    const std::string key = absl::StrCat(port, "/tcp");
    exposed[key] = json::object();
    bindings[key] = json::array({{{"HostIp", options.publish_address}, {"HostPort", ""}}});
  }
  if (!config.ports.empty()) {
    body["ExposedPorts"] = exposed;
    host["PortBindings"] = bindings;
  }
  json mounts = json::array();
  for (const Mount& m : config.mounts) {
    json mount = {{"Target", m.target}, {"ReadOnly", m.read_only}};
    switch (m.type) {
      case Mount::Type::kVolume:
        mount["Type"] = "volume";
        mount["Source"] = m.source;
        break;
      case Mount::Type::kBind:
        mount["Type"] = "bind";
        mount["Source"] = m.source;
        break;
      case Mount::Type::kTmpfs:
        mount["Type"] = "tmpfs";
        break;
    }
    mounts.push_back(std::move(mount));
  }
  if (!mounts.empty()) host["Mounts"] = mounts;
  if (config.gpus > 0 && gpus == GpuAttach::kDeviceRequests) {
    host["DeviceRequests"] = json::array({{{"Driver", "nvidia"},
                                           {"Count", config.gpus},
                                           {"Capabilities", json::array({json::array({"gpu"})})}}});
  } else if (config.gpus > 0 && gpus == GpuAttach::kCdi) {
    host["DeviceRequests"] =
        json::array({{{"Driver", "cdi"}, {"DeviceIDs", CdiNames(options, config.gpus)}}});
  }
  if (json check = EngineHealthcheck(config); !check.is_null()) body["Healthcheck"] = check;
  body["Labels"] = Labels(config);
  body["HostConfig"] = host;
  return body.dump();
}

std::string PodmanCreateBody(const ContainerConfig& config, const DockerRuntimeOptions& options,
                             GpuAttach gpus) {
  json body = json::object();
  body["name"] = config.name;
  body["image"] = config.image;
  if (!config.entrypoint.empty()) body["entrypoint"] = config.entrypoint;
  if (!config.args.empty()) body["command"] = config.args;
  json env = json::object();
  for (const auto& [k, v] : config.env) env[k] = v;
  body["env"] = env;
  body["labels"] = Labels(config);
  body["netns"] = {{"nsmode", "bridge"}};
  json ports = json::array();
  for (int port : config.ports) {
    // Host port 0: the kernel picks.
    ports.push_back(
        {{"container_port", port}, {"host_ip", options.publish_address}, {"host_port", 0}});
  }
  if (!ports.empty()) body["portmappings"] = ports;
  json mounts = json::array();
  json volumes = json::array();
  for (const Mount& m : config.mounts) {
    json opts = m.read_only ? json::array({"ro"}) : json::array();
    switch (m.type) {
      case Mount::Type::kVolume:
        volumes.push_back({{"Name", m.source}, {"Dest", m.target}, {"Options", opts}});
        break;
      case Mount::Type::kBind:
        opts.push_back("rbind");
        mounts.push_back(
            {{"destination", m.target}, {"type", "bind"}, {"source", m.source}, {"options", opts}});
        break;
      case Mount::Type::kTmpfs:
        mounts.push_back(
            {{"destination", m.target}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", opts}});
        break;
    }
  }
  if (!mounts.empty()) body["mounts"] = mounts;
  if (!volumes.empty()) body["volumes"] = volumes;
  if (config.gpus > 0 && gpus != GpuAttach::kNone) {
    // Podman has no device requests; its GPUs are CDI devices.
    json devices = json::array();
    for (const std::string& name : CdiNames(options, config.gpus)) {
      devices.push_back({{"path", name}});
    }
    body["devices"] = devices;
  }
  if (json check = EngineHealthcheck(config); !check.is_null()) body["healthconfig"] = check;
  return body.dump();
}

// An HTTP readiness probe of one container, run by the agent.
struct DockerRuntime::Probe {
  HealthCheck check;
  int host_port = 0;
  absl::Time started_at;
  ContainerHealth health = ContainerHealth::kStarting;
  int failures = 0;
  // Identifies this probe's timers and requests: a stale tick finds another run.
  uint64_t run = 0;
};

// One container whose state the listeners follow: one inspection at a time.
struct DockerRuntime::Watched {
  bool inspecting = false;
  bool again = false;
};

absl::StatusOr<std::unique_ptr<DockerRuntime>> DockerRuntime::Connect(
    Clock* clock, DockerRuntimeOptions options, std::unique_ptr<http::HttpClient> http) {
  absl::StatusOr<std::string> socket = DockerSocketPath(options.docker_host);
  if (!socket.ok()) return socket.status();
  if (http == nullptr) http = std::make_unique<http::CurlHttpClient>();
  std::unique_ptr<DockerRuntime> runtime(
      new DockerRuntime(clock, std::move(options), *std::move(socket), std::move(http)));
  // The version, once, before anything else runs on the runtime.
  absl::Notification answered;
  absl::StatusOr<http::Response> version;
  runtime->http_->Send(runtime->EngineRequest("GET", "/version", runtime->options_.request_timeout),
                       [&](absl::StatusOr<http::Response> r) {
                         version = std::move(r);
                         answered.Notify();
                       });
  answered.WaitForNotification();
  const std::string where = runtime->options_.docker_host;
  if (!version.ok()) {
    return absl::UnavailableError(absl::StrCat("the container engine at ", where,
                                               " does not answer: ", version.status().message()));
  }
  if (version->status != 200) {
    return absl::UnavailableError(absl::StrCat("the container engine at ", where, " answered ",
                                               version->status, " to GET /version"));
  }
  json v = json::parse(version->body, nullptr, false);
  std::string product = "Docker Engine";
  if (v.is_object() && v.contains("Components") && v["Components"].is_array()) {
    for (const json& c : v["Components"]) {
      const std::string name = StringField(c, "Name");
      if (absl::StrContains(name, "Engine")) product = name;
    }
  }
  runtime->engine_ = absl::StrCat(product, " ", StringField(v, "Version"));
  runtime->podman_ = absl::StrContains(product, "Podman");
  switch (runtime->options_.gpu_mode) {
    case DockerRuntimeOptions::GpuMode::kAuto:
      runtime->gpus_ = runtime->podman_ ? GpuAttach::kCdi : GpuAttach::kDeviceRequests;
      break;
    case DockerRuntimeOptions::GpuMode::kCdi:
      runtime->gpus_ = GpuAttach::kCdi;
      break;
    case DockerRuntimeOptions::GpuMode::kDeviceRequests:
      if (runtime->podman_) {
        return absl::InvalidArgumentError(
            "--docker-gpus device-requests: Podman takes GPUs as CDI devices only (use cdi or "
            "auto)");
      }
      runtime->gpus_ = GpuAttach::kDeviceRequests;
      break;
    case DockerRuntimeOptions::GpuMode::kNone:
      runtime->gpus_ = GpuAttach::kNone;
      break;
  }
  runtime->OpenEvents();
  return runtime;
}

DockerRuntime::DockerRuntime(Clock* clock, DockerRuntimeOptions options, std::string socket_path,
                             std::unique_ptr<http::HttpClient> http)
    : clock_(clock),
      options_(std::move(options)),
      socket_path_(std::move(socket_path)),
      timer_guard_(std::make_shared<TimerGuard>()),
      events_backoff_(options_.events_retry_initial),
      http_(std::move(http)) {}

DockerRuntime::~DockerRuntime() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  {
    // No timer callback runs after this, and none that waits to start will.
    absl::MutexLock lock(&timer_guard_->mu);
    timer_guard_->stopping = true;
    timer_guard_->mu.Await(absl::Condition(
        +[](int* running) { return *running == 0; }, &timer_guard_->running));
  }
  std::set<Clock::TimerId> timers;
  {
    absl::MutexLock lock(&mu_);
    timers.swap(timers_);
  }
  for (Clock::TimerId id : timers) clock_->Cancel(id);
  // Joins the client's thread; what completes meanwhile sees `stopping_` and is dropped.
  http_.reset();
}

std::string DockerRuntime::Url(const std::string& path) const {
  // The host part is ignored over a unix socket. Podman's own (libpod) endpoints have their
  // own versions; 4.0.0 is the oldest Podman 4 serves.
  return absl::StrCat("http://docker/",
                      absl::StartsWith(path, "/libpod/") ? "v4.0.0" : options_.api_version, path);
}

http::Request DockerRuntime::EngineRequest(std::string method, const std::string& path,
                                           absl::Duration timeout) const {
  http::Request request;
  request.method = std::move(method);
  request.url = Url(path);
  request.unix_socket_path = socket_path_;
  request.timeout = timeout;
  return request;
}

void DockerRuntime::Send(http::Request request,
                         absl::AnyInvocable<void(absl::StatusOr<http::Response>)> done) {
  http_->Send(std::move(request),
              [this, done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
                {
                  absl::MutexLock lock(&mu_);
                  if (stopping_) return;
                }
                done(std::move(r));
              });
}

void DockerRuntime::Call(std::string method, std::string path, std::string body,
                         absl::Duration timeout,
                         absl::AnyInvocable<void(absl::StatusOr<http::Response>)> done) {
  http::Request request = EngineRequest(std::move(method), path, timeout);
  if (!body.empty()) {
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = std::move(body);
  }
  Send(std::move(request), std::move(done));
}

void DockerRuntime::After(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  // The id is known only once RunAfter returns; the timer may fire before that. The guard
  // outlives the runtime, so a callback that starts as the runtime goes away can still ask.
  auto id_holder = std::make_shared<Clock::TimerId>(0);
  const Clock::TimerId id = clock_->RunAfter(
      delay, [this, guard = timer_guard_, id_holder, fn = std::move(fn)]() mutable {
        {
          absl::MutexLock lock(&guard->mu);
          if (guard->stopping) return;
          ++guard->running;
        }
        {
          absl::MutexLock lock(&mu_);
          timers_.erase(*id_holder);
        }
        fn();
        absl::MutexLock lock(&guard->mu);
        --guard->running;
      });
  *id_holder = id;
  timers_.insert(id);
}

void DockerRuntime::PullImage(const std::string& image, StatusCallback done) {
  if (AlwaysPull(image)) {
    Pull(image, std::move(done));
    return;
  }
  Call("GET", absl::StrCat("/images/", http::UrlEncode(image), "/json"), "",
       options_.request_timeout,
       [this, image, done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
         if (r.ok() && r->status == 200) {
           done(absl::OkStatus());
           return;
         }
         Pull(image, std::move(done));
       });
}

void DockerRuntime::Pull(const std::string& image, StatusCallback done) {
  // The progress stream: one JSON object per line; an error is a line with "error".
  struct Progress {
    std::string partial;
    std::string error;
  };
  auto progress = std::make_shared<Progress>();
  http::Request request =
      EngineRequest("POST", absl::StrCat("/images/create?fromImage=", http::UrlEncode(image)),
                    options_.pull_timeout);
  request.on_body_data = [progress](std::string_view data) {
    progress->partial.append(data);
    size_t newline;
    while ((newline = progress->partial.find('\n')) != std::string::npos) {
      json line = json::parse(progress->partial.substr(0, newline), nullptr, false);
      progress->partial.erase(0, newline + 1);
      std::string error = StringField(line, "error");
      if (!error.empty()) progress->error = error;
    }
    // A non-JSON error body (an HTTP error status) stays in `partial`, bounded.
    if (progress->partial.size() > (1 << 20)) progress->partial.erase(1 << 20);
    return true;
  };
  Send(std::move(request),
       [image, progress, done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
         if (!r.ok()) {
           done(absl::Status(r.status().code(), absl::StrCat("pull: the engine did not answer: ",
                                                             r.status().message())));
           return;
         }
         if (r->status != 200) {
           http::Response failed = *r;
           failed.body = progress->partial;
           done(ClassifyDockerError("pull", r->status, ErrorMessage(failed)));
           return;
         }
         if (!progress->partial.empty()) {
           std::string error = StringField(json::parse(progress->partial, nullptr, false), "error");
           if (!error.empty()) progress->error = error;
         }
         if (!progress->error.empty()) {
           done(ClassifyDockerError("pull", r->status, progress->error));
           return;
         }
         spdlog::debug("pulled image {}", image);
         done(absl::OkStatus());
       });
}

void DockerRuntime::CreateContainer(const ContainerConfig& config,
                                    absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) {
  // Podman's own endpoint lives beside the Docker API's, under its own version.
  std::string path = podman_
                         ? std::string("/libpod/containers/create")
                         : absl::StrCat("/containers/create?name=", http::UrlEncode(config.name));
  Call("POST", std::move(path),
       podman_ ? PodmanCreateBody(config, options_, gpus_)
               : DockerCreateBody(config, options_, gpus_),
       options_.request_timeout,
       [done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
         if (absl::Status s = EngineReply("create", r, {201, 200}); !s.ok()) {
           done(s);
           return;
         }
         std::string id = StringField(json::parse(r->body, nullptr, false), "Id");
         if (id.empty()) {
           done(absl::InternalError("create: the engine's reply has no container Id"));
           return;
         }
         done(std::move(id));
       });
}

void DockerRuntime::StartContainer(const std::string& id, StatusCallback done) {
  Call("POST", absl::StrCat("/containers/", http::UrlEncode(id), "/start"), "",
       options_.request_timeout,
       [this, id, done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
         // 304: it runs already.
         if (absl::Status s = EngineReply("start", r, {204, 304, 200}); !s.ok()) {
           done(s);
           return;
         }
         Refresh(id);
         done(absl::OkStatus());
       });
}

void DockerRuntime::StopContainer(const std::string& id, absl::Duration grace,
                                  StatusCallback done) {
  const int64_t seconds =
      std::max<int64_t>(0, absl::ToInt64Seconds(absl::Ceil(grace, absl::Seconds(1))));
  Call("POST", absl::StrCat("/containers/", http::UrlEncode(id), "/stop?t=", seconds), "",
       options_.request_timeout + absl::Seconds(seconds),
       [this, id, done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
         // 304: it was not running.
         if (absl::Status s = EngineReply("stop", r, {204, 304, 200}); !s.ok()) {
           done(s);
           return;
         }
         Refresh(id);
         done(absl::OkStatus());
       });
}

void DockerRuntime::RemoveContainer(const std::string& id, StatusCallback done) {
  Call("DELETE", absl::StrCat("/containers/", http::UrlEncode(id)), "", options_.request_timeout,
       [this, id, done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
         if (absl::Status s = EngineReply("remove", r, {204, 200}); !s.ok()) {
           done(s);
           return;
         }
         {
           absl::MutexLock lock(&mu_);
           probes_.erase(id);
         }
         done(absl::OkStatus());
       });
}

std::string DemultiplexLogs(const std::string& body) {
  std::string out;
  size_t at = 0;
  while (at + 8 <= body.size()) {
    const auto* h = reinterpret_cast<const unsigned char*>(body.data() + at);
    if (h[0] > 2 || h[1] != 0 || h[2] != 0 || h[3] != 0) return at == 0 ? body : out;
    const size_t length = (size_t{h[4]} << 24) | (size_t{h[5]} << 16) | (size_t{h[6]} << 8) | h[7];
    if (at + 8 + length > body.size()) return out + body.substr(at + 8);
    out.append(body, at + 8, length);
    at += 8 + length;
  }
  return at == 0 ? body : out;
}

void DockerRuntime::ContainerLogs(const std::string& id, int tail_lines,
                                  absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) {
  http::Request request =
      EngineRequest("GET",
                    absl::StrCat("/containers/", http::UrlEncode(id),
                                 "/logs?stdout=1&stderr=1&tail=", std::max(1, tail_lines)),
                    options_.request_timeout);
  // A few lines; more is cut (the error says so) rather than held.
  request.max_response_bytes = 64 << 10;
  Send(std::move(request), [done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
    if (absl::Status s = EngineReply("logs", r, {200}); !s.ok()) {
      done(s);
      return;
    }
    done(DemultiplexLogs(r->body));
  });
}

void DockerRuntime::InspectContainer(const std::string& id,
                                     absl::AnyInvocable<void(absl::StatusOr<ContainerInfo>)> done) {
  Inspect(id, std::move(done));
}

void DockerRuntime::Inspect(const std::string& id,
                            absl::AnyInvocable<void(absl::StatusOr<ContainerInfo>)> done) {
  Call("GET", absl::StrCat("/containers/", http::UrlEncode(id), "/json"), "",
       options_.request_timeout,
       [this, done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
         if (absl::Status s = EngineReply("inspect", r, {200}); !s.ok()) {
           done(s);
           return;
         }
         absl::StatusOr<ContainerInfo> info = ParseInspect(r->body);
         if (info.ok()) TrackProbe(*info);
         done(std::move(info));
       });
}

void DockerRuntime::ListContainers(
    const std::map<std::string, std::string>& labels,
    absl::AnyInvocable<void(absl::StatusOr<std::vector<ContainerInfo>>)> done) {
  Call("GET", absl::StrCat("/containers/json?all=1&filters=", LabelFilter(labels)), "",
       options_.request_timeout,
       [this, labels, done = std::move(done)](absl::StatusOr<http::Response> r) mutable {
         if (absl::Status s = EngineReply("list", r, {200}); !s.ok()) {
           done(s);
           return;
         }
         json list = json::parse(r->body, nullptr, false);
         if (!list.is_array()) {
           done(absl::InternalError("list: the engine's reply is not a JSON array"));
           return;
         }
         std::vector<std::string> ids;
         for (const json& c : list) {
           std::string id = StringField(c, "Id");
           if (!id.empty()) ids.push_back(std::move(id));
         }
         // Each is inspected (the list lacks exit codes and ports); one that went away
         // meanwhile is left out.
         struct Gather {
           absl::Mutex mu;
           size_t left = 0;
           std::vector<ContainerInfo> found;
           absl::Status error;
           absl::AnyInvocable<void(absl::StatusOr<std::vector<ContainerInfo>>)> done;
         };
         auto gather = std::make_shared<Gather>();
         gather->left = ids.size();
         gather->done = std::move(done);
         if (ids.empty()) {
           std::move(gather->done)(std::vector<ContainerInfo>{});
           return;
         }
         for (const std::string& id : ids) {
           Inspect(id, [gather, labels](absl::StatusOr<ContainerInfo> info) {
             bool last;
             {
               absl::MutexLock lock(&gather->mu);
               if (info.ok()) {
                 // The engine filtered already; a second look costs nothing.
                 bool match = true;
                 for (const auto& [k, v] : labels) {
                   auto it = info->labels.find(k);
                   match = match && it != info->labels.end() && it->second == v;
                 }
                 if (match) gather->found.push_back(*std::move(info));
               } else if (!absl::IsNotFound(info.status()) && gather->error.ok()) {
                 gather->error = info.status();
               }
               last = --gather->left == 0;
             }
             if (!last) return;
             if (!gather->error.ok()) {
               std::move(gather->done)(gather->error);
             } else {
               std::sort(
                   gather->found.begin(), gather->found.end(),
                   [](const ContainerInfo& a, const ContainerInfo& b) { return a.name < b.name; });
               std::move(gather->done)(std::move(gather->found));
             }
           });
         }
       });
}

ContainerRuntime::ListenerId DockerRuntime::AddListener(Listener listener) {
  absl::MutexLock lock(&mu_);
  const ListenerId id = next_listener_++;
  listeners_[id] = std::move(listener);
  return id;
}

void DockerRuntime::RemoveListener(ListenerId id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(id);
}

void DockerRuntime::Refresh(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    Watched& w = watched_[id];
    if (w.inspecting) {
      w.again = true;
      return;
    }
    w.inspecting = true;
  }
  Inspect(id, [this, id](absl::StatusOr<ContainerInfo> info) { RefreshDone(id, std::move(info)); });
}

void DockerRuntime::RefreshDone(const std::string& id, absl::StatusOr<ContainerInfo> info) {
  if (info.ok()) Notify(*info);
  bool again = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = watched_.find(id);
    if (it != watched_.end()) {
      again = it->second.again;
      it->second.again = false;
      it->second.inspecting = again;
      if (!again) watched_.erase(it);
    }
  }
  if (again) {
    Inspect(id,
            [this, id](absl::StatusOr<ContainerInfo> info) { RefreshDone(id, std::move(info)); });
  }
}

void DockerRuntime::Notify(const ContainerInfo& info) {
  std::vector<Listener> listeners;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, l] : listeners_) listeners.push_back(l);
  }
  for (const Listener& l : listeners) l(info);
}

void DockerRuntime::TrackProbe(ContainerInfo& info) {
  auto label = info.labels.find(kProbeLabel);
  if (label == info.labels.end()) return;
  std::optional<HealthCheck> check = ParseProbeLabel(label->second);
  if (!check.has_value()) return;
  bool start = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = probes_.find(info.id);
    const bool running = info.state == ContainerState::kRunning;
    auto published = info.host_ports.find(check->port);
    if (!running || published == info.host_ports.end()) {
      if (it != probes_.end()) probes_.erase(it);
      if (running) info.health = ContainerHealth::kStarting;
      return;
    }
    if (it != probes_.end() && it->second->started_at == info.started_at) {
      info.health = it->second->health;
      return;
    }
    // A new run of the container: a new probe, starting over.
    auto probe = std::make_unique<Probe>();
    probe->check = *check;
    probe->host_port = published->second;
    probe->started_at = info.started_at;
    probe->run = next_probe_run_++;
    probes_[info.id] = std::move(probe);
    info.health = ContainerHealth::kStarting;
    start = true;
  }
  if (start) {
    const std::string id = info.id;
    After(absl::ZeroDuration(), [this, id] { ProbeTick(id); });
  }
}

void DockerRuntime::ProbeTick(const std::string& id) {
  http::Request request;
  uint64_t run;
  {
    absl::MutexLock lock(&mu_);
    auto it = probes_.find(id);
    if (it == probes_.end() || stopping_) return;
    const Probe& p = *it->second;
    run = p.run;
    request.url =
        absl::StrCat("http://", options_.probe_address, ":", p.host_port, p.check.http_path);
    request.timeout = p.check.timeout;
    request.connect_timeout = p.check.timeout;
    request.no_proxy = true;
    request.max_response_bytes = 64 << 10;
  }
  const absl::Time sent = absl::Now();
  Send(std::move(request), [this, id, run, sent](absl::StatusOr<http::Response> r) {
    // Kubernetes' rule: any status from 200 to 399 passes.
    const bool passed = r.ok() && r->status >= 200 && r->status < 400;
    if (options_.on_probe) options_.on_probe(absl::Now() - sent, passed);
    ProbeDone(id, run, passed);
  });
}

void DockerRuntime::ProbeDone(const std::string& id, uint64_t run, bool ok) {
  bool changed = false;
  absl::Duration next;
  {
    absl::MutexLock lock(&mu_);
    auto it = probes_.find(id);
    if (it == probes_.end() || it->second->run != run) return;
    Probe& p = *it->second;
    const ContainerHealth before = p.health;
    if (ok) {
      p.failures = 0;
      p.health = ContainerHealth::kHealthy;
    } else if (clock_->Now() >= p.started_at + p.check.start_period) {
      if (++p.failures >= p.check.retries) p.health = ContainerHealth::kUnhealthy;
    }
    changed = p.health != before;
    next = p.check.interval;
  }
  if (changed) Refresh(id);
  After(next, [this, id] { ProbeTick(id); });
}

void DockerRuntime::OpenEvents() {
  json filter = {{"type", json::array({"container"})}};
  http::Request request =
      EngineRequest("GET", absl::StrCat("/events?filters=", http::UrlEncode(filter.dump())),
                    absl::InfiniteDuration());
  request.on_body_data = [this](std::string_view data) {
    OnEventData(data);
    return true;
  };
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    event_buffer_.clear();
  }
  Send(std::move(request), [this](absl::StatusOr<http::Response> r) {
    absl::Status status = r.status();
    if (r.ok()) {
      status = absl::UnavailableError(
          absl::StrCat("the engine closed the event stream (HTTP ", r->status, ")"));
    }
    EventsEnded(status);
  });
}

void DockerRuntime::OnEventData(std::string_view data) {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    if (!events_connected_) {
      events_connected_ = true;
      events_backoff_ = options_.events_retry_initial;
    }
    event_buffer_.append(data);
    size_t newline;
    while ((newline = event_buffer_.find('\n')) != std::string::npos) {
      json event = json::parse(event_buffer_.substr(0, newline), nullptr, false);
      event_buffer_.erase(0, newline + 1);
      if (!event.is_object()) continue;
      std::string action = StringField(event, "Action");
      if (action.empty()) action = StringField(event, "status");
      // "health_status: healthy" in Docker.
      action = action.substr(0, action.find(':'));
      if (std::find(std::begin(kStateActions), std::end(kStateActions), action) ==
          std::end(kStateActions)) {
        continue;
      }
      const json& actor = event.contains("Actor") ? event["Actor"] : json();
      std::string id = StringField(actor, "ID");
      if (id.empty()) id = StringField(event, "id");
      if (!id.empty()) ids.push_back(std::move(id));
    }
    if (event_buffer_.size() > (1 << 20)) event_buffer_.clear();
  }
  for (const std::string& id : ids) Refresh(id);
}

void DockerRuntime::EventsEnded(const absl::Status& status) {
  absl::Duration wait;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    events_connected_ = false;
    wait = events_backoff_;
    events_backoff_ = std::min(events_backoff_ * 2, options_.events_retry_max);
  }
  spdlog::warn("container engine event stream ended ({}); reconnecting in {}",
               std::string(status.message()), absl::FormatDuration(wait));
  After(wait, [this] { OpenEvents(); });
}

}  // namespace kaito::agent
