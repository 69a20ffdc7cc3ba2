// kaito-server: the control plane. See docs/operations.md for flags and docs/architecture.md.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <google/protobuf/stubs/logging.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/logging.h"
#include "common/version.h"
#include "server/server_app.h"

namespace {

// Writes the port atomically, so a reader never sees a partial file.
bool WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << port << "\n";
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

}  // namespace

int main(int argc, char** argv) {
  kaito::server::ServerOptions options;
  std::string port_file, log_level = "info", log_format = "text";
  CLI::App app{"kaito-server: the Kaito control plane (Workspace API, durable state, "
               "reconciliation)"};
  app.set_version_flag("--version", kaito::Version());
  app.add_option("--listen", options.listen, "gRPC listen address HOST:PORT (port 0 = any)")
      ->capture_default_str();
  app.add_option("--metrics-listen", options.metrics_listen,
                 "HTTP address for /metrics, /healthz, /readyz (empty = off)")
      ->capture_default_str();
  app.add_option("--data-dir", options.data_dir, "Directory of the embedded store")
      ->capture_default_str();
  app.add_option("--store", options.store, "Store backend: sqlite | memory | etcd://H:P,...")
      ->capture_default_str();
  app.add_flag("--dev", options.dev,
               "Dev mode: embedded store, simulated cloud and agents (node auto-provisioning on)");
  app.add_option("--provisioner", options.provisioner,
                 "kaito-provisioner address HOST:PORT (none = bring-your-own nodes)");
  app.add_option("--port-file", port_file, "Write the chosen gRPC port to this file");
  app.add_option("--catalog-dir", options.catalog_dir,
                 "Directory with models.yaml and skus.yaml (default: the built-in catalog)");
  app.add_option("--cloud", options.cloud, "Cloud provider of the SKU table: azure | aws | arc")
      ->capture_default_str();
  std::string gates;
  app.add_option("--feature-gates", gates,
                 "Kaito feature gates, e.g. vLLM=false,enableMIG=true,enableAccelerator=true");
  app.add_option("--watch-history", options.watch_history,
                 "Events per kind kept in memory for watch resumption")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app.add_option("--watch-backlog", options.watch_backlog,
                 "Events a watch stream may queue for a slow client before it is cut off")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (absl::Status s = kaito::server::ParseFeatureGates(gates, options); !s.ok()) {
    std::fprintf(stderr, "kaito-server: %s\n", std::string(s.message()).c_str());
    return 2;
  }

  if (absl::Status s = kaito::SetupLogging(log_level, log_format, "kaito-server"); !s.ok()) {
    std::fprintf(stderr, "kaito-server: %s\n", std::string(s.message()).c_str());
    return 2;
  }

  // Protobuf reports bad input (e.g. invalid UTF-8 in a request) on its own log; a
  // client must not be able to flood ours with it, so it goes to debug.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel level, const char* file, int line,
                                     const std::string& message) {
    if (level >= google::protobuf::LOGLEVEL_FATAL) {
      spdlog::critical("protobuf {}:{}: {}", file, line, message);
    } else {
      spdlog::debug("protobuf {}:{}: {}", file, line, message);
    }
  });

  // Signals are taken by a dedicated thread, never by whichever thread they hit.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = kaito::server::ServerApp::Start(options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().ToString());
    return 1;
  }
  spdlog::info("kaito-server {} serving gRPC on port {} (listen {}), metrics on port {}{}",
               kaito::Version(), (*server)->grpc_port(), options.listen,
               (*server)->metrics_port(), options.dev ? ", dev mode" : "");
  if (options.dev) {
    spdlog::warn(
        "dev mode: node auto-provisioning is on and no cloud resources are created (the "
        "simulated provisioner and agents are not part of this build yet)");
  }
  if (!port_file.empty() && !WritePortFile(port_file, (*server)->grpc_port())) {
    spdlog::critical("cannot write --port-file {}", port_file);
    return 1;
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal {}: shutting down", sig);
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.join();
  server->reset();
  spdlog::info("stopped");
  return 0;
}
