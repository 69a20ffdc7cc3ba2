// kaito-server as a process on port 0, driven by kaitoctl and by an independent Python
// client, the way users and programs drive it.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "kaito/v1/config.grpc.pb.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::testing {
namespace {

using ::testing::HasSubstr;

class ServerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // These tests are about the API as processes see it; reconciliation is
    // reconcile_test's.
    auto server = StartServer(dir_.path(), {"--no-controllers"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  RunResult Ctl(std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {BinDir() + "/kaitoctl", "--server", server_.address()});
    return RunCommand(args, in);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.File(name)) << text;
    return dir_.File(name);
  }

  TempDir dir_;
  ServerProcess server_;
};

constexpr char kSeed[] = R"(apiVersion: kaito.sh/v1alpha1
kind: Workspace
metadata:
  name: workspace-tuning-phi-3
resource:
  instanceType: "Standard_NC6s_v3"
  labelSelector:
    matchLabels:
      app: tuning-phi-3
tuning:
  preset:
    name: phi-3-mini-128k-instruct
  method: qlora
  input:
    urls:
      - "https://example.com/data.parquet"
  output:
    image: "example.azurecr.io/adapter:0.0.1"
    imagePushSecret: registry-secret
)";

TEST_F(ServerProcessTest, ApplyGetDescribeDeleteWithKaitoctl) {
  const std::string file = Write("seed.yaml", kSeed);
  RunResult r = Ctl({"apply", "-f", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "workspace/workspace-tuning-phi-3 created\n");
  r = Ctl({"apply", "-f", file});
  EXPECT_EQ(r.out, "workspace/workspace-tuning-phi-3 unchanged\n");
  r = Ctl({"apply", "-f", "-"}, std::string(kSeed) + "  # comment\n");
  EXPECT_EQ(r.out, "workspace/workspace-tuning-phi-3 unchanged\n") << r.err;
  std::string changed = kSeed;
  changed.replace(changed.find("data.parquet"), 12, "data-v2.parquet");
  r = Ctl({"apply", "-f", "-"}, changed);
  EXPECT_EQ(r.out, "workspace/workspace-tuning-phi-3 configured\n") << r.err;

  r = Ctl({"get", "workspaces"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("NAME                     INSTANCE           RESOURCEREADY   "
                               "INFERENCEREADY   WORKSPACEREADY   AGE"));
  EXPECT_THAT(r.out, HasSubstr("workspace-tuning-phi-3   Standard_NC6s_v3   Unknown         "
                               "Unknown          Unknown"));
  r = Ctl({"get", "workspace", "workspace-tuning-phi-3", "-o", "wide"});
  EXPECT_THAT(r.out,
              ::testing::ContainsRegex(
                  "JOBSTARTED +WORKSPACESUCCEEDED +TARGETNODES +STATE +NODES +AGE +ENDPOINT"));
  r = Ctl({"get", "workspace", "workspace-tuning-phi-3", "-o", "yaml"});
  EXPECT_THAT(r.out, HasSubstr("https://example.com/data-v2.parquet"));
  EXPECT_THAT(r.out, HasSubstr("generation: 2\n")) << "int64 fields print as integers";
  // What get -o yaml prints applies again, unchanged.
  RunResult again = Ctl({"apply", "-f", "-"}, r.out);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "workspace/workspace-tuning-phi-3 unchanged\n") << again.err;
  r = Ctl({"get", "workspace", "workspace-tuning-phi-3", "-o", "json"});
  EXPECT_THAT(r.out, HasSubstr("\"imagePushSecret\": \"registry-secret\""));
  r = Ctl({"describe", "workspace", "workspace-tuning-phi-3"});
  EXPECT_THAT(r.out, ::testing::ContainsRegex("Name: +workspace-tuning-phi-3"));
  EXPECT_THAT(r.out, HasSubstr("Conditions:\n  <none>"));

  r = Ctl({"delete", "workspace", "workspace-tuning-phi-3", "--wait"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "workspace.kaito.sh \"workspace-tuning-phi-3\" deleted\n");
  r = Ctl({"get", "workspace", "workspace-tuning-phi-3"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "Error from server (NotFound): workspaces \"workspace-tuning-phi-3\" not found\n");
}

TEST_F(ServerProcessTest, DocumentWithoutMetadataIsAnErrorNotACrash) {
  RunResult r = Ctl({"apply", "-f", "-"}, "apiVersion: kaito.sh/v1beta1\nkind: Workspace\n");
  EXPECT_EQ(r.exit_code, 1) << "an error exit, not a signal: " << r.err;
  EXPECT_THAT(r.err, HasSubstr("metadata.name"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(ServerProcessTest, ErrorsAreOneReadableLineWithFieldPaths) {
  RunResult r = Ctl({"apply", "-f", "-"}, R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: phi-3.5-mini
resource:
  labelSelector:
    matchLabels: {"bad key": x}
inference:
  preset: {name: phi-3.5-mini-instruct}
)");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("Error from server (Invalid): workspace/phi-3.5-mini: "));
  EXPECT_THAT(r.err, HasSubstr("metadata.name: Invalid value: \"phi-3.5-mini\""));
  r = Ctl({"apply", "-f", "-"},
          "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: x}\n"
          "resource: {instanceTyp: y}\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: document 1 (Workspace \"x\") is invalid: resource.instanceTyp: unknown "
            "field \"instanceTyp\"\n");
  r = Ctl({"apply", "-f", dir_.File("missing.yaml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("does not exist"));
  r = RunCommand(
      {BinDir() + "/kaitoctl", "--server", "127.0.0.1:1", "--timeout", "2", "get", "ws"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("error: cannot connect to the server at 127.0.0.1:1"));
}

TEST_F(ServerProcessTest, MultiDocumentApplyContinuesPastUnsupportedKinds) {
  RunResult r = Ctl({"apply", "-f", "-"}, R"(apiVersion: v1
kind: ConfigMap
metadata: {name: params}
data: {inference_config.yaml: "vllm: {}"}
---
apiVersion: kaito.sh/v1alpha1
kind: RAGEngine
metadata: {name: rag}
---
apiVersion: v1
kind: Secret
metadata: {name: hf-token}
stringData: {HF_TOKEN: hf_value}
)");
  EXPECT_EQ(r.exit_code, 1) << "a failed document makes the command fail";
  EXPECT_EQ(r.out, "configmap/params created\nsecret/hf-token created\n");
  EXPECT_THAT(r.err, HasSubstr("kind RAGEngine (kaito.sh/v1alpha1) is not supported"));
  r = Ctl({"get", "secrets", "-o", "yaml"});
  EXPECT_THAT(r.out, HasSubstr("HF_TOKEN: \"\""));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("aGZfdmFsdWU")));  // base64 of the value
  r = Ctl({"get", "configmaps"});
  EXPECT_THAT(r.out, HasSubstr("params"));
}

TEST_F(ServerProcessTest, DryRunStoresNothing) {
  RunResult r = Ctl({"apply", "--dry-run", "-f", "-"}, kSeed);
  EXPECT_THAT(r.out,
              ::testing::StartsWith("workspace/workspace-tuning-phi-3 created (server dry run)\n"))
      << r.err;
  EXPECT_THAT(r.out, HasSubstr("instance type:    Standard_NC6s_v3 (1x V100, 16Gi per GPU)"));
  EXPECT_THAT(r.out, HasSubstr("target nodes:     1"));
  EXPECT_THAT(r.err, HasSubstr("Warning: Standard_NC6s_v3 has V100 GPUs (compute capability 7.0)"));
  r = Ctl({"get", "workspaces"});
  EXPECT_EQ(r.err, "No resources found in default namespace.\n");
}

TEST_F(ServerProcessTest, GetWatchStreamsChanges) {
  ASSERT_EQ(Ctl({"apply", "-f", "-"}, kSeed).exit_code, 0);
  // The watch runs until the object is deleted; kaitoctl exits when its deadline hits,
  // so run it with a short timeout in the background via `timeout`.
  Daemon watch;
  const std::string log = dir_.File("watch.log");
  auto d = Daemon::Start({"/usr/bin/timeout", "20", BinDir() + "/kaitoctl", "--server",
                          server_.address(), "get", "workspaces", "-w"},
                         log);
  ASSERT_TRUE(d.ok());
  watch = std::move(*d);
  ASSERT_TRUE(
      WaitFor([&] { return ReadFile(log).find("workspace-tuning-phi-3") != std::string::npos; },
              absl::Seconds(10)));
  std::string changed = kSeed;
  changed.replace(changed.find("data.parquet"), 12, "data-v3.parquet");
  ASSERT_EQ(Ctl({"apply", "-f", "-"}, changed).exit_code, 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string text = ReadFile(log);
        size_t first = text.find("workspace-tuning-phi-3");
        return first != std::string::npos &&
               text.find("workspace-tuning-phi-3", first + 1) != std::string::npos;
      },
      absl::Seconds(10)))
      << ReadFile(log);
  watch.Stop();
}

TEST_F(ServerProcessTest, VersionAndMetricsEndpoints) {
  RunResult r = Ctl({"version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Client Version: "));
  EXPECT_THAT(r.out, HasSubstr("store sqlite"));
  int port = MetricsPortFromLog(dir_.File("server.log"));
  ASSERT_GT(port, 0) << ReadFile(dir_.File("server.log"));
  ASSERT_EQ(Ctl({"apply", "-f", "-"}, kSeed).exit_code, 0);
  r = RunCommand({"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/metrics"});
  ASSERT_EQ(r.exit_code, 0);
  // The gRPC series, labelled as the usual gRPC exporters do.
  const std::string labels =
      "grpc_method=\"CreateWorkspace\",grpc_service=\"kaito.v1.WorkspaceService\",grpc_type="
      "\"unary\"";
  EXPECT_THAT(r.out,
              HasSubstr("kaito_grpc_server_handled_total{grpc_code=\"OK\"," + labels + "} 1"));
  EXPECT_THAT(r.out, HasSubstr("kaito_grpc_server_started_total{" + labels + "} 1"));
  EXPECT_THAT(r.out, HasSubstr("kaito_grpc_server_msg_received_total{" + labels + "} 1"));
  EXPECT_THAT(r.out, HasSubstr("kaito_grpc_server_msg_sent_total{" + labels + "} 1"));
  EXPECT_THAT(r.out, HasSubstr("kaito_grpc_server_handling_seconds_count{" + labels + "} 1"));
  EXPECT_THAT(r.out, HasSubstr("kaito_cache_objects{kind=\"workspace\"} 1"));
  EXPECT_THAT(r.out, HasSubstr("kaito_store_writes_total 1"));
  // Kaito's own workspace metrics (no controllers here: the workspace stays pending).
  EXPECT_THAT(r.out, HasSubstr("kaito_workspace_count{phase=\"pending\"} 1"));
  EXPECT_THAT(r.out, HasSubstr("kaito_workspace_count{phase=\"succeeded\"} 0"));
  EXPECT_THAT(
      r.out, HasSubstr("kaito_workspace_preset_count{preset_name=\"phi-3-mini-128k-instruct\"} 1"));
  EXPECT_THAT(r.out, HasSubstr("kaito_workspaces{kind=\"tuning\",state=\"Pending\"} 1"));
  EXPECT_THAT(r.out, HasSubstr("process_resident_memory_bytes "));
  EXPECT_THAT(r.out, HasSubstr("process_cpu_seconds_total "));
  EXPECT_THAT(r.out, HasSubstr("process_open_fds "));
  EXPECT_THAT(r.out, HasSubstr("process_start_time_seconds "));
  EXPECT_THAT(r.out, HasSubstr("kaito_build_info{"));
  // Prometheus' own linter accepts the exposition, but for the "_count" suffix of Kaito's
  // two metric names, kept as Kaito has them so that its dashboards work (docs/operations.md).
  RunResult lint = RunCommand({"/usr/bin/promtool", "check", "metrics"}, r.out);
  for (absl::string_view line : absl::StrSplit(lint.out + lint.err, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "kaito_workspace_count ") ||
                absl::StartsWith(line, "kaito_workspace_preset_count "))
        << "promtool: " << line;
  }
  r = RunCommand({"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/healthz"});
  EXPECT_EQ(r.out, "ok\n");
  r = RunCommand({"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/readyz"});
  EXPECT_EQ(r.out, "ok\n");
  r = RunCommand({"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/livez"});
  EXPECT_EQ(r.out, "ok\n");
  // HEAD as well as GET, as probes send either.
  r = RunCommand({"/usr/bin/curl", "-sfI", "http://127.0.0.1:" + std::to_string(port) + "/livez"});
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(ServerProcessTest, IndependentPythonClient) {
  RunResult r = RunCommand(
      {"/usr/bin/python3", Env("KAITO_SOURCE_DIR") + "/test/integration/python_client.py",
       server_.address(), Env("KAITO_PYTHON_DIR")},
      "", {}, absl::Seconds(120));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("all ok"));
}

TEST_F(ServerProcessTest, SecondServerOnTheSamePortIsRefused) {
  TempDir other;
  auto second = RunCommand({BinDir() + "/kaito-server", "--listen", server_.address(),
                            "--metrics-listen", "", "--data-dir", other.path()},
                           "", {}, absl::Seconds(30));
  EXPECT_NE(second.exit_code, 0) << "two servers must not share a port (SO_REUSEPORT)";
  EXPECT_THAT(second.err + second.out, HasSubstr("cannot listen"));
}

TEST_F(ServerProcessTest, SecondServerOnSameDataDirIsRefused) {
  auto second = RunCommand({BinDir() + "/kaito-server", "--listen", "127.0.0.1:0",
                            "--metrics-listen", "", "--data-dir", dir_.path()});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_THAT(second.err, HasSubstr("in use by another process"));
}

TEST_F(ServerProcessTest, InvalidCatalogIsAStartupErrorNamingTheEntry) {
  TempDir catalog;
  std::ofstream(catalog.File("models.yaml"))
      << "models:\n  - {name: m1, weights: lots, disk: 1Gi}\n";
  std::ofstream(catalog.File("skus.yaml")) << "azure: []\n";
  RunResult r =
      RunCommand({BinDir() + "/kaito-server", "--listen", "127.0.0.1:0", "--metrics-listen", "",
                  "--data-dir", catalog.File("data"), "--catalog-dir", catalog.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("models.yaml: models[0] (m1): weights: \"lots\" is not a quantity"));
  r = RunCommand({BinDir() + "/kaito-server", "--listen", "127.0.0.1:0", "--metrics-listen", "",
                  "--data-dir", catalog.File("data2"), "--feature-gates", "turbo=true"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown gate \"turbo\""));
}

TEST_F(ServerProcessTest, GetPresetsAndSkus) {
  RunResult r = Ctl({"get", "presets"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(
      r.out, ::testing::ContainsRegex("phi-4-mini-instruct +vllm +7.15Gi +131072 +lora,qlora +no"));
  r = Ctl({"get", "preset", "llama-3.3-70b-instruct", "-o", "yaml"});
  EXPECT_THAT(r.out, HasSubstr("gated: true"));
  r = Ctl({"get", "skus"});
  EXPECT_THAT(r.out, ::testing::ContainsRegex(
                         "Standard_NC6s_v3 +azure +1 +V100 +16Gi +16Gi +7.0 +no +retired"));
  r = Ctl({"get", "sku", "standard_nc24ads_a100_v4"});
  EXPECT_THAT(r.out, HasSubstr("Standard_NC24ads_A100_v4   azure   1      A100   80Gi"));
  r = Ctl({"get", "sku", "Standard_Nope"});
  EXPECT_EQ(r.err, "Error from server (NotFound): skus \"Standard_Nope\" not found in azure\n");
  r = Ctl({"get", "skus", "--cloud", "aws"});
  EXPECT_THAT(r.out, HasSubstr("p5.48xlarge"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("Standard_")));
}

// The benchmark itself works (a tiny run: this checks correctness, not speed).
TEST(BenchSmokeTest, ApiBenchRunsWithoutErrors) {
  RunResult r = RunCommand({BinDir() + "/kaito-bench", "api", "--seconds", "0.2", "--clients", "4",
                            "--watchers", "5", "--updates", "5", "--json"},
                           "", {}, absl::Seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* phase : {"floor_rpc", "floor_sqlite", "create", "get", "watch"}) {
    EXPECT_THAT(r.out, HasSubstr(std::string("\"") + phase + "\"")) << r.out;
  }
  EXPECT_THAT(r.out, ::testing::Not(::testing::ContainsRegex("\"errors\": [1-9]"))) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\"watchers_with_every_update\": 5"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("failed")));
}

TEST_F(ServerProcessTest, SigtermStopsCleanly) { EXPECT_EQ(server_.daemon.Stop(), 0); }

// grpc.health.v1.Health/Check for the whole server, as a generic call (the request is
// empty; the reply's field 1 is the status): 1 SERVING, 2 NOT_SERVING, 0 when it failed.
int HealthStatus(const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::ByteBuffer request, reply;
  grpc::Slice empty("", 0);
  request = grpc::ByteBuffer(&empty, 1);
  grpc::Status status;
  absl::Mutex mu;
  bool done = false;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &reply,
                 [&](grpc::Status s) {
                   absl::MutexLock lock(&mu);
                   status = s;
                   done = true;
                 });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));
  std::vector<grpc::Slice> slices;
  if (!status.ok() || !reply.Dump(&slices).ok()) return 0;
  std::string bytes;
  for (const auto& slice : slices)
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  return bytes.size() == 2 && bytes[0] == 0x08 ? bytes[1] : 0;
}

// SIGTERM with a grace period: the server keeps answering while /readyz says 503
// "shutting down" and the gRPC health service NOT_SERVING, then exits 0.
TEST(ServerShutdownTest, NotReadyThroughTheGracePeriodThenExits) {
  TempDir dir;
  auto server = StartServer(dir.path(), {"--no-controllers", "--shutdown-grace-period", "4s"});
  ASSERT_TRUE(server.ok()) << server.status();
  const int metrics_port = MetricsPortFromLog(dir.File("server.log"));
  ASSERT_GT(metrics_port, 0) << ReadFile(dir.File("server.log"));
  const std::string readyz = "http://127.0.0.1:" + std::to_string(metrics_port) + "/readyz";
  EXPECT_EQ(HealthStatus(server->address()), 1);
  EXPECT_EQ(RunCommand({"/usr/bin/curl", "-sf", readyz}).out, "ok\n");
  ASSERT_EQ(kill(server->daemon.pid(), SIGTERM), 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        return RunCommand({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", readyz})
                   .out == "503";
      },
      absl::Seconds(3)));
  EXPECT_EQ(RunCommand({"/usr/bin/curl", "-s", readyz}).out, "shutting down\n");
  EXPECT_EQ(HealthStatus(server->address()), 2);
  // Still serving the API meanwhile.
  RunResult version =
      RunCommand({BinDir() + "/kaitoctl", "--server", server->address(), "version"});
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_EQ(server->daemon.Stop(absl::Seconds(20)), 0);
}

// A full disk: writes fail, /readyz says why and the gRPC health service is NOT_SERVING,
// reads go on; once there is space again the store notices by itself (it probes), both
// recover, and every write acknowledged before is still there. The data directory is a
// 1 MiB tmpfs in the server's own mount namespace.
TEST(StoreHealthTest, AFullDiskMakesTheServerNotReadyUntilThereIsSpaceAgain) {
  TempDir dir;
  const std::string data = dir.File("data");
  std::filesystem::create_directories(data);
  if (RunCommand({"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/true"})
          .exit_code != 0) {
    GTEST_SKIP() << "no mount namespaces here (unshare needs CAP_SYS_ADMIN)";
  }
  const std::string port_file = dir.File("port");
  auto server = Daemon::Start(
      {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
       "mount -t tmpfs -o size=1m tmpfs \"$0\" && exec \"$1\" --listen 127.0.0.1:0 "
       "--metrics-listen 127.0.0.1:0 --data-dir \"$0\" --port-file \"$2\" --no-controllers",
       data, BinDir() + "/kaito-server", port_file},
      dir.File("server.log"));
  ASSERT_TRUE(server.ok()) << server.status();
  int port = 0;
  ASSERT_TRUE(WaitForPortFile(port_file, &port, absl::Seconds(20)))
      << ReadFile(dir.File("server.log"));
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const int metrics_port = MetricsPortFromLog(dir.File("server.log"));
  ASSERT_GT(metrics_port, 0);
  const std::string readyz = "http://127.0.0.1:" + std::to_string(metrics_port) + "/readyz";
  auto stub =
      v1::ConfigService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  auto create = [&](int i) {
    v1::WriteConfigMapRequest request;
    request.mutable_config_map()->mutable_metadata()->set_name("filler-" + std::to_string(i));
    (*request.mutable_config_map()->mutable_data())["blob"] = std::string(64 * 1024, 'a' + i % 26);
    grpc::ClientContext ctx;
    v1::ConfigMap out;
    return stub->CreateConfigMap(&ctx, request, &out);
  };
  int acknowledged = 0;
  grpc::Status refused;
  for (int i = 0; i < 64; ++i) {
    grpc::Status s = create(i);
    if (!s.ok()) {
      refused = s;
      break;
    }
    ++acknowledged;
  }
  ASSERT_FALSE(refused.ok()) << "1 MiB never filled up";
  EXPECT_GT(acknowledged, 0);
  EXPECT_TRUE(refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
              refused.error_code() == grpc::StatusCode::UNAVAILABLE)
      << refused.error_code() << " " << refused.error_message();
  auto code = [&] {
    return RunCommand({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", readyz}).out;
  };
  EXPECT_EQ(code(), "503");
  EXPECT_THAT(RunCommand({"/usr/bin/curl", "-s", readyz}).out,
              HasSubstr("the store cannot be written"));
  EXPECT_EQ(HealthStatus(address), 2) << "NOT_SERVING";
  {
    grpc::ClientContext ctx;
    v1::ObjectKey key;
    key.set_name("filler-0");
    v1::ConfigMap out;
    EXPECT_TRUE(stub->GetConfigMap(&ctx, key, &out).ok()) << "reads go on";
  }
  // Space again: the store's probe finds it without any client write.
  RunResult grown = RunCommand({"/usr/bin/nsenter", "-t", std::to_string(server->pid()), "-m",
                                "mount", "-o", "remount,size=16m", data});
  ASSERT_EQ(grown.exit_code, 0) << grown.err;
  EXPECT_TRUE(WaitFor([&] { return code() == "200"; }, absl::Seconds(15)))
      << ReadFile(dir.File("server.log"));
  EXPECT_EQ(HealthStatus(address), 1) << "SERVING";
  EXPECT_TRUE(create(100).ok());
  grpc::ClientContext ctx;
  v1::ListConfigMapsResponse list;
  ASSERT_TRUE(stub->ListConfigMaps(&ctx, v1::ListRequest(), &list).ok());
  EXPECT_EQ(list.items_size(), acknowledged + 1) << "every acknowledged write is kept";
  EXPECT_EQ(server->Stop(absl::Seconds(20)), 0);
}

}  // namespace
}  // namespace kaito::testing
