// The container runtime of a real node: the Docker Engine API over its unix socket, as Docker
// and Podman (`podman system service`) both serve it, through the shared libcurl client.
//
// What it adds to the engine:
// - Pull policy as kubelet's default: an image whose tag is not `latest` (or that is pinned by
//   digest) is pulled only when the engine does not have it; pull errors come in the progress
//   stream with HTTP 200 and are classified from their text.
// - Published ports: each container port is published on a port the kernel picks, on
//   `publish_address`; `ContainerInfo::host_ports` says which (the endpoint a client uses).
// - HTTP readiness probes run by the agent itself (from this process, to the published port),
//   so an image needs no curl inside; exec checks become the engine's own Healthcheck. The
//   probe travels in a label, so an agent that restarts probes the containers it adopts.
// - GPUs: Docker's device requests (NVIDIA container toolkit), or CDI device names
//   (`nvidia.com/gpu=N`); `GpuMode::kAuto` picks CDI for Podman and device requests for
//   Docker. Podman's Docker-compatible create cannot take a CDI name (4.3 turns it into a
//   path), so with Podman containers are created through its own libpod endpoint, with the
//   same content; every other call is the Docker API on both engines.
// - Listeners are fed by the engine's event stream (reconnected with backoff), each event
//   followed by an inspection; inspections of one container are serialized and coalesced, so
//   a listener sees its states in order (a state that lasted less than one inspection may be
//   skipped: callers re-read from time to time, as the contract says).
// Error codes follow the contract of container_runtime.h; Podman answers 500 where Docker
// answers 409, so the engine's message decides where the status code does not.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/runtime/container_runtime.h"
#include "common/clock.h"
#include "common/http/http_client.h"

namespace kaito::agent {

struct DockerRuntimeOptions {
  // kNone: GPUs are not attached (a node whose GPUs are fake, for tests and demos).
  enum class GpuMode { kAuto, kDeviceRequests, kCdi, kNone };

  // `unix:///PATH`.
  std::string docker_host = "unix:///var/run/docker.sock";
  // Docker 20.10 and Podman 4 both serve 1.41.
  std::string api_version = "v1.41";
  // Where published ports are bound on the host ("" is every interface).
  std::string publish_address;
  // Where this process reaches a published port, for readiness probes.
  std::string probe_address = "127.0.0.1";
  GpuMode gpu_mode = GpuMode::kAuto;
  // The CDI kind of the node's GPUs: device N is `<kind>=N`.
  std::string cdi_gpu_kind = "nvidia.com/gpu";
  // Of every call but pulls and stops (a stop also waits out the grace period).
  absl::Duration request_timeout = absl::Minutes(2);
  absl::Duration pull_timeout = absl::Minutes(60);
  // Told of every HTTP readiness probe the agent ran: its duration and whether it passed
  // (metrics). Called on the HTTP client's thread; must not block.
  std::function<void(absl::Duration, bool)> on_probe;
  // Backoff of the event stream's reconnects.
  absl::Duration events_retry_initial = absl::Milliseconds(500);
  absl::Duration events_retry_max = absl::Seconds(30);
};

// The path of a `unix:///PATH` docker host; INVALID_ARGUMENT for anything else.
absl::StatusOr<std::string> DockerSocketPath(const std::string& docker_host);

// How an engine's error text and HTTP status map onto the runtime contract's codes. `op` is
// "pull", "create", "start", "stop", "remove", "inspect" or "list". Exposed for tests.
absl::Status ClassifyDockerError(const std::string& op, int http_status,
                                 const std::string& message);

// How GPUs are attached (the resolved `GpuMode`).
enum class GpuAttach { kNone, kDeviceRequests, kCdi };

// The text of a `GET /containers/{id}/logs` reply: Docker's multiplexed frames (an 8-byte
// header: stream 0-2, three zero bytes, the big-endian length) joined, or the body as it is
// when it is not framed (a container with a TTY).
std::string DemultiplexLogs(const std::string& body);

// The JSON body of Docker's `POST /containers/create` for `config` (CDI as Docker 25 takes
// it: a device request of driver "cdi").
std::string DockerCreateBody(const ContainerConfig& config, const DockerRuntimeOptions& options,
                             GpuAttach gpus);
// The JSON body of Podman's `POST /libpod/containers/create` (a SpecGenerator) for `config`.
std::string PodmanCreateBody(const ContainerConfig& config, const DockerRuntimeOptions& options,
                             GpuAttach gpus);

class DockerRuntime : public ContainerRuntime {
 public:
  // Checks the engine answers (`GET /version`, waiting at most `options.request_timeout`),
  // learns its name and version, and opens the event stream. `http` is the client the runtime
  // talks through (a CurlHttpClient when null); the runtime owns it.
  static absl::StatusOr<std::unique_ptr<DockerRuntime>> Connect(
      Clock* clock, DockerRuntimeOptions options, std::unique_ptr<http::HttpClient> http = nullptr);
  // Stops the event stream and the probes and drops the callbacks that have not run.
  ~DockerRuntime() override;
  DockerRuntime(const DockerRuntime&) = delete;
  DockerRuntime& operator=(const DockerRuntime&) = delete;

  std::string name() const override { return "docker"; }
  // e.g. "Podman Engine 4.3.1" or "Docker Engine 24.0.7".
  std::string engine() const { return engine_; }
  bool podman() const { return podman_; }
  GpuAttach gpu_attach() const { return gpus_; }

  void PullImage(const std::string& image, StatusCallback done) override;
  void CreateContainer(const ContainerConfig& config,
                       absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) override;
  void StartContainer(const std::string& id, StatusCallback done) override;
  void InspectContainer(const std::string& id,
                        absl::AnyInvocable<void(absl::StatusOr<ContainerInfo>)> done) override;
  void StopContainer(const std::string& id, absl::Duration grace, StatusCallback done) override;
  void RemoveContainer(const std::string& id, StatusCallback done) override;
  void ContainerLogs(const std::string& id, int tail_lines,
                     absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) override;
  void ListContainers(
      const std::map<std::string, std::string>& labels,
      absl::AnyInvocable<void(absl::StatusOr<std::vector<ContainerInfo>>)> done) override;
  ListenerId AddListener(Listener listener) override;
  void RemoveListener(ListenerId id) override;

 private:
  struct Probe;
  struct Watched;
  struct TimerGuard {
    absl::Mutex mu;
    bool stopping ABSL_GUARDED_BY(mu) = false;
    // Timer callbacks running now; the destructor waits for them.
    int running ABSL_GUARDED_BY(mu) = 0;
  };

  DockerRuntime(Clock* clock, DockerRuntimeOptions options, std::string socket_path,
                std::unique_ptr<http::HttpClient> http);

  std::string Url(const std::string& path) const;
  // A request to the engine: its socket, the API path, the timeout.
  http::Request EngineRequest(std::string method, const std::string& path,
                              absl::Duration timeout) const;
  // Sends `request`; `done` runs unless the runtime is stopping by then.
  void Send(http::Request request, absl::AnyInvocable<void(absl::StatusOr<http::Response>)> done);
  // An engine request with an optional JSON body, through `Send`.
  void Call(std::string method, std::string path, std::string body, absl::Duration timeout,
            absl::AnyInvocable<void(absl::StatusOr<http::Response>)> done);
  void Pull(const std::string& image, StatusCallback done);
  void Inspect(const std::string& id, absl::AnyInvocable<void(absl::StatusOr<ContainerInfo>)> done);
  // Inspects `id` and tells the listeners, one inspection of a container at a time.
  void Refresh(const std::string& id);
  void RefreshDone(const std::string& id, absl::StatusOr<ContainerInfo> info);
  void Notify(const ContainerInfo& info);
  // Merges what the agent's own probe says into `info`, and starts or stops that probe.
  void TrackProbe(ContainerInfo& info);
  void ProbeTick(const std::string& id);
  void ProbeDone(const std::string& id, uint64_t run, bool ok);
  void OpenEvents();
  void OnEventData(std::string_view data);
  void EventsEnded(const absl::Status& status);
  // Runs `fn` on the clock after `delay`, unless the runtime is stopping by then.
  void After(absl::Duration delay, absl::AnyInvocable<void()> fn);

  Clock* const clock_;
  const DockerRuntimeOptions options_;
  const std::string socket_path_;
  std::string engine_;
  bool podman_ = false;
  GpuAttach gpus_ = GpuAttach::kDeviceRequests;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  const std::shared_ptr<TimerGuard> timer_guard_;
  std::set<Clock::TimerId> timers_ ABSL_GUARDED_BY(mu_);
  ListenerId next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<ListenerId, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Watched> watched_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Probe>> probes_ ABSL_GUARDED_BY(mu_);
  uint64_t next_probe_run_ ABSL_GUARDED_BY(mu_) = 1;
  std::string event_buffer_ ABSL_GUARDED_BY(mu_);
  // Whether the stream has delivered anything since it last opened (resets the backoff).
  bool events_connected_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration events_backoff_ ABSL_GUARDED_BY(mu_);

  // Last: destroyed first, so that its thread (which runs every completion) is joined while
  // the rest is still there.
  std::unique_ptr<http::HttpClient> http_;
};

}  // namespace kaito::agent
