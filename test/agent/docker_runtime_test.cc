// The Docker Engine API runtime beyond the shared contract: the request bodies it sends,
// how engine errors are classified, and, against a real Podman service, published ports,
// the agent's own HTTP readiness probes, exit codes, environment and volumes, and changes
// made behind its back (seen through the engine's event stream).
#include "agent/runtime/docker_runtime.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/http/http_client.h"
#include "podman_world.h"
#include "support/process.h"

namespace kaito::agent {
namespace {

using json = nlohmann::json;

TEST(DockerSocketPathTest, OnlyUnixSockets) {
  EXPECT_EQ(*DockerSocketPath("unix:///run/podman/podman.sock"), "/run/podman/podman.sock");
  for (const char* bad : {"tcp://127.0.0.1:2375", "unix://", "unix://relative", "/var/run/x"}) {
    auto path = DockerSocketPath(bad);
    EXPECT_EQ(path.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(path.status().message().find("--docker-host"), std::string::npos);
  }
}

TEST(ClassifyDockerErrorTest, DockerAndPodmanTexts) {
  struct Case {
    const char* op;
    int status;
    const char* message;
    absl::StatusCode want;
  };
  const Case cases[] = {
      // Podman 4.3's replies, as seen.
      {"pull", 200, "reading manifest 1 in 127.0.0.1:1/x: manifest unknown: manifest unknown",
       absl::StatusCode::kNotFound},
      {"pull", 200, "pinging container registry nohost.invalid: dial tcp: no such host",
       absl::StatusCode::kNotFound},
      {"pull", 200, "unauthorized: authentication required", absl::StatusCode::kUnauthenticated},
      {"pull", 200, "requested access to the resource is denied",
       absl::StatusCode::kPermissionDenied},
      {"pull", 200, "dial tcp 127.0.0.1:5000: connect: connection refused",
       absl::StatusCode::kUnavailable},
      {"create", 500, "the container name \"t1\" is already in use by 2bde",
       absl::StatusCode::kAlreadyExists},
      {"create", 404, "no such image: x: image not known", absl::StatusCode::kNotFound},
      {"start", 500, "runc create failed: exec: \"/nonexistent\": no such file or directory",
       absl::StatusCode::kFailedPrecondition},
      {"remove", 500, "cannot remove container 2b as it is running: container state improper",
       absl::StatusCode::kFailedPrecondition},
      {"inspect", 404, "no container with name or ID \"x\" found: no such container",
       absl::StatusCode::kNotFound},
      // Docker's.
      {"create", 409, "Conflict. The container name \"/t1\" is already in use",
       absl::StatusCode::kAlreadyExists},
      {"remove", 409, "You cannot remove a running container 2b. Stop the container",
       absl::StatusCode::kFailedPrecondition},
      {"stop", 503, "daemon is shutting down", absl::StatusCode::kUnavailable},
      {"list", 500, "something broke", absl::StatusCode::kInternal},
  };
  for (const Case& c : cases) {
    absl::Status s = ClassifyDockerError(c.op, c.status, c.message);
    EXPECT_EQ(s.code(), c.want) << c.op << " " << c.status << " " << c.message;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << "the engine's words are kept";
  }
}

TEST(DemultiplexLogsTest, FramesAreJoinedAndRawTextKept) {
  std::string framed;
  auto frame = [&](char stream, const std::string& text) {
    framed += std::string({stream, 0, 0, 0, 0, 0, 0, static_cast<char>(text.size())});
    framed += text;
  };
  frame(1, "out line\n");
  frame(2, "err line\n");
  EXPECT_EQ(DemultiplexLogs(framed), "out line\nerr line\n");
  EXPECT_EQ(DemultiplexLogs("plain tty output\n"), "plain tty output\n");
  EXPECT_EQ(DemultiplexLogs(""), "");
  // A frame cut short keeps what arrived.
  EXPECT_EQ(DemultiplexLogs(framed.substr(0, framed.size() - 3)), "out line\nerr li");
}

TEST(DockerCreateBodyTest, PortsMountsEnvAndProbes) {
  ContainerConfig config;
  config.name = "x";
  config.image = "registry.example/model:1";
  config.entrypoint = {"python3", "serve.py"};
  config.args = {"--port", "5000"};
  config.env = {{"A", "1"}, {"B", "two words"}};
  config.labels = {{"kaito.sh/managed-by", "kaito-agent"}};
  config.ports = {5000};
  config.mounts = {{Mount::Type::kVolume, "kaito_vol", "/data", false},
                   {Mount::Type::kTmpfs, "", "/dev/shm", false},
                   {Mount::Type::kBind, "/srv/models", "/models", true}};
  HealthCheck http;
  http.http_path = "/health";
  http.port = 5000;
  http.interval = absl::Seconds(5);
  config.health_check = http;
  DockerRuntimeOptions options;
  options.publish_address = "10.0.0.4";
  json body = json::parse(DockerCreateBody(config, options, GpuAttach::kNone));
  EXPECT_EQ(body["Image"], "registry.example/model:1");
  EXPECT_EQ(body["Entrypoint"], json({"python3", "serve.py"}));
  EXPECT_EQ(body["Cmd"], json({"--port", "5000"}));
  EXPECT_EQ(body["Env"], json({"A=1", "B=two words"}));
  EXPECT_TRUE(body["ExposedPorts"].contains("5000/tcp"));
  EXPECT_EQ(body["HostConfig"]["PortBindings"]["5000/tcp"][0]["HostIp"], "10.0.0.4");
  EXPECT_EQ(body["HostConfig"]["PortBindings"]["5000/tcp"][0]["HostPort"], "")
      << "the kernel picks the host port";
  const json& mounts = body["HostConfig"]["Mounts"];
  ASSERT_EQ(mounts.size(), 3u);
  EXPECT_EQ(mounts[0]["Type"], "volume");
  EXPECT_EQ(mounts[0]["Source"], "kaito_vol");
  EXPECT_EQ(mounts[1]["Type"], "tmpfs");
  EXPECT_EQ(mounts[2]["Type"], "bind");
  EXPECT_EQ(mounts[2]["ReadOnly"], true);
  // The HTTP probe is the agent's, carried in a label; the engine gets no Healthcheck.
  EXPECT_FALSE(body.contains("Healthcheck"));
  EXPECT_EQ(body["Labels"]["kaito.sh/http-readiness-probe"], "5000 /health 5000 1000 3 0");
  EXPECT_EQ(body["Labels"]["kaito.sh/managed-by"], "kaito-agent");
  EXPECT_FALSE(body["HostConfig"].contains("DeviceRequests"));
}

TEST(DockerCreateBodyTest, GpusAsDeviceRequestsOrCdiNames) {
  ContainerConfig config;
  config.image = "i:1";
  config.gpus = 2;
  json docker = json::parse(DockerCreateBody(config, {}, GpuAttach::kDeviceRequests));
  ASSERT_TRUE(docker["HostConfig"].contains("DeviceRequests"));
  EXPECT_EQ(docker["HostConfig"]["DeviceRequests"][0]["Driver"], "nvidia");
  EXPECT_EQ(docker["HostConfig"]["DeviceRequests"][0]["Count"], 2);
  EXPECT_EQ(docker["HostConfig"]["DeviceRequests"][0]["Capabilities"], json({{"gpu"}}));
  json docker_cdi = json::parse(DockerCreateBody(config, {}, GpuAttach::kCdi));
  EXPECT_EQ(docker_cdi["HostConfig"]["DeviceRequests"][0]["Driver"], "cdi");
  EXPECT_EQ(docker_cdi["HostConfig"]["DeviceRequests"][0]["DeviceIDs"],
            json({"nvidia.com/gpu=0", "nvidia.com/gpu=1"}));
  json none = json::parse(DockerCreateBody(config, {}, GpuAttach::kNone));
  EXPECT_FALSE(none["HostConfig"].contains("DeviceRequests"));
  DockerRuntimeOptions options;
  options.cdi_gpu_kind = "example.com/accel";
  json podman = json::parse(PodmanCreateBody(config, options, GpuAttach::kCdi));
  ASSERT_EQ(podman["devices"].size(), 2u);
  EXPECT_EQ(podman["devices"][1]["path"], "example.com/accel=1");
  EXPECT_FALSE(
      json::parse(PodmanCreateBody(config, options, GpuAttach::kNone)).contains("devices"));
}

TEST(PodmanCreateBodyTest, TheSameContainerInLibpodsTerms) {
  ContainerConfig config;
  config.name = "kaito_default_ws-0_main";
  config.image = "registry.example/model:1";
  config.entrypoint = {"python3"};
  config.args = {"serve.py"};
  config.env = {{"A", "1"}};
  config.labels = {{"kaito.sh/managed-by", "kaito-agent"}};
  config.ports = {5000};
  config.mounts = {{Mount::Type::kVolume, "kaito_vol", "/data", true},
                   {Mount::Type::kTmpfs, "", "/dev/shm", false},
                   {Mount::Type::kBind, "/srv/models", "/models", true}};
  HealthCheck http;
  http.http_path = "/health";
  http.port = 5000;
  config.health_check = http;
  DockerRuntimeOptions options;
  options.publish_address = "127.0.0.1";
  json body = json::parse(PodmanCreateBody(config, options, GpuAttach::kCdi));
  EXPECT_EQ(body["name"], "kaito_default_ws-0_main");
  EXPECT_EQ(body["entrypoint"], json({"python3"}));
  EXPECT_EQ(body["command"], json({"serve.py"}));
  EXPECT_EQ(body["env"]["A"], "1");
  EXPECT_EQ(body["portmappings"][0]["container_port"], 5000);
  EXPECT_EQ(body["portmappings"][0]["host_port"], 0);
  EXPECT_EQ(body["portmappings"][0]["host_ip"], "127.0.0.1");
  EXPECT_EQ(body["volumes"][0]["Name"], "kaito_vol");
  EXPECT_EQ(body["volumes"][0]["Options"], json({"ro"}));
  EXPECT_EQ(body["mounts"][0]["type"], "tmpfs");
  EXPECT_EQ(body["mounts"][1]["source"], "/srv/models");
  EXPECT_EQ(body["labels"]["kaito.sh/http-readiness-probe"], "5000 /health 10000 1000 3 0");
  EXPECT_FALSE(body.contains("devices")) << "no GPUs asked for";
}

TEST(DockerCreateBodyTest, ExecChecksAreTheEnginesHealthcheck) {
  ContainerConfig config;
  config.image = "i:1";
  HealthCheck exec;
  exec.exec = {"cat", "/tmp/ready"};
  exec.interval = absl::Seconds(2);
  exec.retries = 4;
  config.health_check = exec;
  json body = json::parse(DockerCreateBody(config, {}, GpuAttach::kNone));
  EXPECT_EQ(body["Healthcheck"]["Test"], json({"CMD", "cat", "/tmp/ready"}));
  EXPECT_EQ(body["Healthcheck"]["Interval"], 2000000000);
  EXPECT_EQ(body["Healthcheck"]["Retries"], 4);
  EXPECT_FALSE(body["Labels"].contains("kaito.sh/http-readiness-probe"));
}

// Against the real engine.
class DockerRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PodmanWorld& world = PodmanWorld::Get();
    ASSERT_TRUE(world.error.empty()) << world.error;
    DockerRuntimeOptions o;
    o.docker_host = world.podman->docker_host();
    o.publish_address = "127.0.0.1";
    auto runtime = DockerRuntime::Connect(&clock_, o);
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    runtime_ = *std::move(runtime);
    EXPECT_NE(runtime_->engine().find("Podman"), std::string::npos) << runtime_->engine();
    EXPECT_TRUE(runtime_->podman());
    EXPECT_EQ(runtime_->gpu_attach(), GpuAttach::kCdi);
    listener_ = runtime_->AddListener([seen = seen_](const ContainerInfo& info) {
      absl::MutexLock lock(&seen->mu);
      seen->last[info.id] = info;
    });
  }
  void TearDown() override {
    if (runtime_ == nullptr) return;
    runtime_->RemoveListener(listener_);
    runtime_.reset();
    PodmanWorld::Get().podman->Podman({"rm", "--all", "--force", "--time", "0"});
  }

  template <typename T>
  T Wait(const std::function<void(absl::AnyInvocable<void(T)>)>& start) {
    struct Result {
      absl::Mutex mu;
      std::optional<T> value;
    };
    auto result = std::make_shared<Result>();
    start([result](T value) {
      absl::MutexLock lock(&result->mu);
      result->value.emplace(std::move(value));
    });
    absl::MutexLock lock(&result->mu);
    result->mu.AwaitWithTimeout(
        absl::Condition(
            +[](std::optional<T>* v) { return v->has_value(); }, &result->value),
        absl::Seconds(60));
    return result->value.has_value() ? std::move(*result->value)
                                     : T(absl::DeadlineExceededError("no reply"));
  }

  // Pulls, creates and starts; returns the id.
  std::string Run(ContainerConfig config) {
    EXPECT_TRUE(Wait<absl::Status>([&](auto done) {
                  runtime_->PullImage(config.image, std::move(done));
                }).ok());
    auto id = Wait<absl::StatusOr<std::string>>(
        [&](auto done) { runtime_->CreateContainer(config, std::move(done)); });
    EXPECT_TRUE(id.ok()) << id.status();
    if (!id.ok()) return "";
    absl::Status started =
        Wait<absl::Status>([&](auto done) { runtime_->StartContainer(*id, std::move(done)); });
    EXPECT_TRUE(started.ok()) << started;
    return *id;
  }

  // Waits until the listener has seen `id` in a state that satisfies `pred`.
  std::optional<ContainerInfo> WaitSeen(const std::string& id,
                                        const std::function<bool(const ContainerInfo&)>& pred,
                                        absl::Duration deadline = absl::Seconds(30)) {
    std::optional<ContainerInfo> found;
    testing::WaitFor(
        [&] {
          absl::MutexLock lock(&seen_->mu);
          auto it = seen_->last.find(id);
          if (it == seen_->last.end() || !pred(it->second)) return false;
          found = it->second;
          return true;
        },
        deadline);
    return found;
  }

  ContainerConfig Busybox(const std::string& name, std::vector<std::string> command) {
    ContainerConfig c;
    c.name = name;
    c.image = PodmanWorld::Get().image;
    c.entrypoint = std::move(command);
    c.labels = {{"kaito.sh/managed-by", "kaito-agent"}, {"test", name}};
    return c;
  }

  struct Seen {
    absl::Mutex mu;
    std::map<std::string, ContainerInfo> last;
  };
  RealClock clock_;
  std::unique_ptr<DockerRuntime> runtime_;
  std::shared_ptr<Seen> seen_ = std::make_shared<Seen>();
  ContainerRuntime::ListenerId listener_ = 0;
};

// Fetches http://127.0.0.1:PORT/PATH with the shared client; the body, or the error.
absl::StatusOr<http::Response> Get(int port, const std::string& path) {
  http::CurlHttpClient client;
  http::Request request;
  request.url = absl::StrCat("http://127.0.0.1:", port, path);
  request.timeout = absl::Seconds(5);
  absl::Mutex mu;
  std::optional<absl::StatusOr<http::Response>> result;
  client.Send(request, [&](absl::StatusOr<http::Response> r) {
    absl::MutexLock lock(&mu);
    result = std::move(r);
  });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](std::optional<absl::StatusOr<http::Response>>* r) { return r->has_value(); }, &result));
  return std::move(*result);
}

TEST_F(DockerRuntimeTest, PublishedPortAnswersAndTheAgentsProbeTurnsHealthy) {
  // busybox httpd serves /www; /health exists, so the probe passes.
  ContainerConfig c = Busybox("probe-ok", {"/bin/sh", "-c",
                                           "mkdir -p /www && echo ok > /www/health && "
                                           "exec httpd -f -p 8080 -h /www"});
  c.ports = {8080};
  HealthCheck check;
  check.http_path = "/health";
  check.port = 8080;
  check.interval = absl::Milliseconds(200);
  check.retries = 2;
  c.health_check = check;
  const std::string id = Run(c);
  auto healthy = WaitSeen(id, [](const ContainerInfo& i) {
    return i.state == ContainerState::kRunning && i.health == ContainerHealth::kHealthy;
  });
  ASSERT_TRUE(healthy.has_value()) << "the probe never passed";
  ASSERT_EQ(healthy->host_ports.count(8080), 1u);
  const int port = healthy->host_ports.at(8080);
  EXPECT_GT(port, 0);
  auto reply = Get(port, "/health");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "ok\n");
  // An inspection says the same (the probe's verdict is merged in).
  auto inspected = Wait<absl::StatusOr<ContainerInfo>>(
      [&](auto done) { runtime_->InspectContainer(id, std::move(done)); });
  ASSERT_TRUE(inspected.ok());
  EXPECT_EQ(inspected->health, ContainerHealth::kHealthy);
}

TEST_F(DockerRuntimeTest, AProbeThatKeepsFailingTurnsUnhealthy) {
  ContainerConfig c =
      Busybox("probe-bad", {"/bin/sh", "-c", "mkdir -p /www && exec httpd -f -p 8080 -h /www"});
  c.ports = {8080};
  HealthCheck check;
  check.http_path = "/health";  // 404
  check.port = 8080;
  check.interval = absl::Milliseconds(200);
  check.retries = 2;
  c.health_check = check;
  const std::string id = Run(c);
  EXPECT_TRUE(WaitSeen(id, [](const ContainerInfo& i) {
                return i.health == ContainerHealth::kUnhealthy;
              }).has_value());
}

TEST_F(DockerRuntimeTest, ExitCodesEnvAndVolumes) {
  ContainerConfig c =
      Busybox("exit-7", {"/bin/sh", "-c",
                         "echo \"$GREETING\" > /data/out; echo to stdout; echo to stderr >&2; "
                         "exit 7"});
  c.env = {{"GREETING", "hello from the agent"}};
  c.mounts = {{Mount::Type::kVolume, "kaito_test_exit_vol", "/data", false}};
  const std::string id = Run(c);
  auto exited =
      WaitSeen(id, [](const ContainerInfo& i) { return i.state == ContainerState::kExited; });
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 7);
  EXPECT_FALSE(exited->oom_killed);
  // (Not ordered against started_at: Podman stamps the start after runc returns, which a
  // process this quick can outlive.)
  EXPECT_NE(exited->finished_at, absl::InfinitePast());
  // Both streams, in order, without Docker's frame headers.
  auto logs = Wait<absl::StatusOr<std::string>>(
      [&](auto done) { runtime_->ContainerLogs(id, 10, std::move(done)); });
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_EQ(*logs, "to stdout\nto stderr\n");
  auto mountpoint = PodmanWorld::Get().podman->Podman(
      {"volume", "inspect", "--format", "{{.Mountpoint}}", "kaito_test_exit_vol"});
  ASSERT_EQ(mountpoint.exit_code, 0) << mountpoint.err;
  std::string path = mountpoint.out;
  while (!path.empty() && path.back() == '\n') path.pop_back();
  EXPECT_EQ(testing::ReadFile(path + "/out"), "hello from the agent\n");
  PodmanWorld::Get().podman->Podman({"rm", "--force", id});
  PodmanWorld::Get().podman->Podman({"volume", "rm", "--force", "kaito_test_exit_vol"});
}

TEST_F(DockerRuntimeTest, AContainerKilledBehindItsBackIsSeenThroughTheEventStream) {
  const std::string id = Run(Busybox("killed", {"sleep", "3600"}));
  ASSERT_TRUE(WaitSeen(id, [](const ContainerInfo& i) {
                return i.state == ContainerState::kRunning;
              }).has_value());
  auto killed = PodmanWorld::Get().podman->Podman({"kill", id});
  ASSERT_EQ(killed.exit_code, 0) << killed.err;
  auto exited =
      WaitSeen(id, [](const ContainerInfo& i) { return i.state == ContainerState::kExited; });
  ASSERT_TRUE(exited.has_value()) << "no event reached the listener";
  EXPECT_EQ(exited->exit_code, 137);
}

TEST_F(DockerRuntimeTest, ACommandThatCannotRunFailsTheStart) {
  ContainerConfig c = Busybox("no-command", {"/does/not/exist"});
  ASSERT_TRUE(
      Wait<absl::Status>([&](auto done) { runtime_->PullImage(c.image, std::move(done)); }).ok());
  auto id = Wait<absl::StatusOr<std::string>>(
      [&](auto done) { runtime_->CreateContainer(c, std::move(done)); });
  ASSERT_TRUE(id.ok()) << id.status();
  absl::Status started =
      Wait<absl::Status>([&](auto done) { runtime_->StartContainer(*id, std::move(done)); });
  EXPECT_EQ(started.code(), absl::StatusCode::kFailedPrecondition) << started;
  EXPECT_NE(started.message().find("/does/not/exist"), std::string::npos) << started;
}

TEST_F(DockerRuntimeTest, AnEngineThatIsNotThereIsUnavailable) {
  DockerRuntimeOptions o;
  o.docker_host = "unix://" + PodmanWorld::Get().dir.File("no-such.sock");
  o.request_timeout = absl::Seconds(5);
  auto runtime = DockerRuntime::Connect(&clock_, o);
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(runtime.status().message().find("no-such.sock"), std::string::npos);
}

}  // namespace
}  // namespace kaito::agent
