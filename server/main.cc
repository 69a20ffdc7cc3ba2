// kaito-server: the control plane. See docs/operations.md for flags and docs/architecture.md.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <google/protobuf/stubs/logging.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "common/version.h"
#include "server/server_app.h"

int main(int argc, char** argv) {
  kaito::DisableMutexDeadlockDetection();
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
  app.add_option("--etcd-prefix", options.etcd_prefix,
                 "Key prefix of this installation in etcd (one etcd can serve several)")
      ->capture_default_str();
  app.add_option("--etcd-cafile", options.etcd_ca_file,
                 "Verify the etcd members' certificates against this CA (TLS to etcd)");
  app.add_option("--etcd-certfile", options.etcd_cert_file,
                 "Client certificate presented to etcd (etcd --client-cert-auth)");
  app.add_option("--etcd-keyfile", options.etcd_key_file, "Private key of --etcd-certfile");
  app.add_option("--leader-elect", options.leader_elect,
                 "etcd: elect one replica to run the controllers (false: this one always does; "
                 "never run two replicas so)")
      ->capture_default_str();
  app.add_option("--replica-name", options.replica_name,
                 "This replica's name in the leader election (default HOSTNAME_<random>)");
  app.add_flag("--dev", options.dev,
               "Dev mode: embedded store, simulated cloud and agents (node auto-provisioning on)");
  bool no_controllers = false;
  app.add_flag("--no-controllers", no_controllers,
               "Serve the API only: no reconciliation (workspaces keep the status they have)");
  app.add_option("--provisioner", options.provisioner,
                 "kaito-provisioner address HOST:PORT (none = bring-your-own nodes)");
  app.add_option("--port-file", port_file, "Write the chosen gRPC port to this file");
  app.add_option("--encryption-key-file", options.encryption_key_file,
                 "Encrypt Secrets at rest (AES-256-GCM) with the keys of this file: base64 of a "
                 "32-byte key per line, the first encrypts, all decrypt; mode 0600");
  app.add_option("--tls-cert-file", options.tls_cert_file,
                 "PEM certificate served on the gRPC and HTTP ports (reloaded when it changes)");
  app.add_option("--tls-key-file", options.tls_key_file, "PEM private key of --tls-cert-file");
  app.add_option("--client-ca-file", options.client_ca_file,
                 "Verify client certificates against this CA; CN = user, O = groups");
  app.add_option("--token-auth-file", options.token_auth_file,
                 "Static bearer tokens: token,user,uid,\"group1,group2\" per line");
  app.add_option("--authorization-policy-file", options.authorization_policy_file,
                 "Roles (viewer, editor, admin) bound to users and groups per namespace (YAML)");
  app.add_option("--provisioner-ca-file", options.provisioner_ca_file,
                 "Dial --provisioner over TLS, verifying it against this CA (and presenting "
                 "--tls-cert-file)");
  app.add_option("--catalog-dir", options.catalog_dir,
                 "Directory with models.yaml and skus.yaml (default: the built-in catalog)");
  app.add_option("--cloud", options.cloud, "Cloud provider of the SKU table: azure | aws | arc")
      ->capture_default_str();
  std::string gates;
  app.add_option("--feature-gates", gates,
                 "Kaito feature gates, e.g. vLLM=false,enableMIG=true,enableAccelerator=true");
  app.add_option("--store-history", options.store_history,
                 "Revisions of history the store keeps for watches to resume from; SQLite trims "
                 "itself, on etcd the server compacts etcd (all of it, every prefix). 0: never")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option("--watch-history", options.watch_history,
                 "Events per kind kept in memory for watch resumption")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app.add_option("--watch-history-bytes", options.watch_history_bytes,
                 "Bytes of events per kind kept for watch resumption (bounds memory)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1} << 16, size_t{1} << 40));
  app.add_option("--watch-backlog", options.watch_backlog,
                 "Events a watch stream may queue for a slow client before it is cut off")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app.add_option("--watch-backlog-bytes", options.watch_backlog_bytes,
                 "Bytes of events a watch stream may queue for a slow client before it is cut off")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1} << 16, size_t{1} << 40));
  app.add_option("--max-transport-memory", options.max_transport_memory,
                 "Bytes gRPC's transports may hold for requests being received (0 = no bound)")
      ->capture_default_str();
  app.add_option("--max-watches", options.max_watches, "Open watch streams, in total")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app.add_option("--max-watches-per-connection", options.max_watches_per_connection,
                 "Open watch streams from one client connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  // Durations are given as "20s", "500ms", "1m" (absl::ParseDuration).
  std::map<std::string, std::pair<absl::Duration*, std::string>> durations = {
      {"--watch-stall-timeout",
       {&options.watch_stall_timeout, "A watch client that takes no event this long is cut off"}},
      {"--node-lease-ttl", {&options.node_lease_ttl, "An agent's lease: NotReady when older"}},
      {"--node-heartbeat-interval",
       {&options.node_heartbeat_interval, "How often agents are told to renew"}},
      {"--shutdown-grace-period",
       {&options.shutdown_grace_period,
        "After SIGTERM, serve this long reporting not ready (/readyz 503, gRPC health "
        "NOT_SERVING) before shutting down"}},
      {"--node-lost-grace",
       {&options.node_lost_grace, "After a lapsed lease, until the node is lost and its "
                                  "workloads are placed again"}},
      {"--claim-retry-base",
       {&options.claim_retry_base, "Backoff after a failed node claim (doubles, 5m cap)"}},
      {"--claim-poll-interval",
       {&options.claim_poll_interval, "How often a node being created is polled"}},
      {"--event-ttl",
       {&options.event_ttl, "Events not seen again for this long are deleted"}},
      {"--node-initialization-timeout",
       {&options.node_initialization_timeout,
        "A created machine whose node is not registered, Ready and showing its instance "
        "type's GPUs this long after its creation is released and created again (0: no "
        "limit)"}},
      {"--leader-elect-lease-duration",
       {&options.leader_elect_lease_duration,
        "etcd: TTL of the controllers' leader lease; a dead leader is replaced after it"}},
      {"--leader-elect-renew-deadline",
       {&options.leader_elect_renew_deadline,
        "etcd: a leader that could not renew its lease this long stops reconciling (below "
        "the lease duration)"}},
      {"--leader-elect-retry-period",
       {&options.leader_elect_retry_period,
        "etcd: how often the leader renews and the other replicas look for a vacancy"}},
      {"--simulated-create-delay",
       {&options.simulated_create_delay, "Dev mode: a node claim becomes a node after this"}},
      {"--simulated-delete-delay",
       {&options.simulated_delete_delay, "Dev mode: a node is released after this"}},
      {"--simulated-pull-delay",
       {&options.simulated_runtime.pull_delay, "Dev mode: simulated image pull"}},
      {"--simulated-start-delay",
       {&options.simulated_runtime.start_delay, "Dev mode: simulated container start"}},
      {"--simulated-ready-delay",
       {&options.simulated_runtime.ready_delay, "Dev mode: simulated readiness"}},
      {"--simulated-job-duration",
       {&options.simulated_runtime.job_duration, "Dev mode: how long a tuning job runs"}},
  };
  std::map<std::string, std::string> duration_text;
  for (auto& [flag, target] : durations) {
    duration_text[flag] = absl::FormatDuration(*target.first);
    app.add_option(flag, duration_text[flag], target.second)->capture_default_str();
  }
  app.add_option("--claim-max-attempts", options.claim_max_attempts,
                 "Create attempts of a node claim before the workspace is Failed")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--workspace-workers", options.workspace_workers,
                 "Workers of the workspace controller")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--advertise-address", options.advertise_address,
                 "HOST:PORT the provisioned nodes' agents dial (default 127.0.0.1:<gRPC port>)");
  std::vector<std::string> faults;
  app.add_option("--simulated-fault", faults,
                 "Dev mode: fail node claims with a cloud error, TYPE=CODE[:retryable] "
                 "(TYPE * for all), e.g. Standard_NC24ads_A100_v4=QuotaExceeded");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  options.controllers = !no_controllers;
  for (auto& [flag, target] : durations) {
    if (!absl::ParseDuration(duration_text[flag], target.first) ||
        *target.first < absl::ZeroDuration()) {
      std::fprintf(stderr, "kaito-server: %s: \"%s\" is not a duration (e.g. 20s, 500ms)\n",
                   flag.c_str(), duration_text[flag].c_str());
      return 2;
    }
  }
  for (const std::string& f : faults) {
    auto fault = kaito::provisioner::ParseSimulatedFault(f);
    if (!fault.ok()) {
      std::fprintf(stderr, "kaito-server: --simulated-fault %s: %s\n", f.c_str(),
                   std::string(fault.status().message()).c_str());
      return 2;
    }
    options.simulated_faults.push_back(*fault);
  }
  if (absl::Status s = kaito::server::ParseFeatureGates(gates, options); !s.ok()) {
    std::fprintf(stderr, "kaito-server: %s\n", std::string(s.message()).c_str());
    return 2;
  }

  if (absl::Status s = kaito::SetupLogging(log_level, log_format, "kaito-server"); !s.ok()) {
    std::fprintf(stderr, "kaito-server: %s\n", std::string(s.message()).c_str());
    return 2;
  }

  kaito::RouteProtobufLogs();

  // SIGINT and SIGTERM are taken on one thread (blocked before any thread starts).
  kaito::TerminationSignals signals;

  auto server = kaito::server::ServerApp::Start(options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().ToString());
    return 1;
  }
  spdlog::info("kaito-server {} serving gRPC on port {} (listen {}), metrics on port {}{}",
               kaito::Version(), (*server)->grpc_port(), options.listen,
               (*server)->metrics_port(), options.dev ? ", dev mode" : "");
  if (options.dev && options.provisioner.empty()) {
    spdlog::warn(
        "dev mode: the cloud and the node agents are SIMULATED in this process: node claims "
        "become simulated nodes after {}, their agents run nothing (workloads only pass "
        "through their phases); no cloud resource is created",
        absl::FormatDuration(options.simulated_create_delay));
  }
  if (!port_file.empty() && !kaito::WritePortFile(port_file, (*server)->grpc_port())) {
    spdlog::critical("cannot write --port-file {}", port_file);
    return 1;
  }
  std::thread waiter([&] {
    const int sig = signals.Wait();
    (*server)->Drain();
    if (options.shutdown_grace_period > absl::ZeroDuration()) {
      spdlog::info("signal {}: not ready; shutting down in {}", sig,
                   absl::FormatDuration(options.shutdown_grace_period));
      absl::SleepFor(options.shutdown_grace_period);
    }
    spdlog::info("signal {}: shutting down", sig);
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.join();
  server->reset();
  spdlog::info("stopped");
  return 0;
}
