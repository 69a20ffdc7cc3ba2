// kaito-kube-shim: the Kubernetes REST API for Kaito's kinds, mapped onto kaito-server's
// gRPC API, so that kubectl and Kubernetes client libraries work unchanged, standalone
// (a kubeconfig pointing at the shim) or behind a cluster's API server as an aggregated API.
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "absl/time/time.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "common/metrics_server.h"
#include "common/tls.h"
#include "common/version.h"
#include "tools/kube-shim/shim_server.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "kaito-kube-shim: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  kaito::DisableMutexDeadlockDetection();
  std::string server = "127.0.0.1:50051", metrics_listen = "127.0.0.1:8082", port_file;
  std::string log_level = "info", log_format = "text", request_timeout = "60s";
  std::string read_cache_ttl = "10s";
  kaito::shim::ShimOptions options;
  kaito::TlsClientFiles upstream;

  CLI::App app{"kaito-kube-shim: the Kubernetes API for Kaito's kinds, over kaito-server"};
  app.set_version_flag("--version", kaito::Version());
  app.add_option("--server", server, "kaito-server's gRPC address HOST:PORT")
      ->capture_default_str();
  app.add_option("--listen", options.listen,
                 "Kubernetes API listen address HOST:PORT (port 0 = any)")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "Write the chosen port to this file");
  app.add_option("--metrics-listen", metrics_listen,
                 "HTTP address for /metrics, /healthz, /readyz (empty = off)")
      ->capture_default_str();
  app.add_option("--tls-cert-file", options.tls.cert_file,
                 "PEM certificate: serve HTTPS (reloaded when it changes)");
  app.add_option("--tls-key-file", options.tls.key_file, "PEM private key of --tls-cert-file");
  app.add_option("--client-ca-file", options.tls.client_ca_file,
                 "Require client certificates signed by this CA (as an aggregated API: "
                 "kube-apiserver's requestheader/front-proxy CA)");
  bool aggregated = false;
  app.add_flag("--aggregated", aggregated,
               "Serve behind kube-apiserver as an aggregated API: callers are authorized by "
               "the cluster, and kaito-server sees the shim's own identity (Authorization "
               "headers are not forwarded)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")->capture_default_str();
  const std::string upstream_group = "Connection to kaito-server";
  app.add_option("--certificate-authority", upstream.ca_file,
                 "CA bundle that kaito-server's certificate is checked against (TLS on)")
      ->group(upstream_group);
  app.add_option("--client-certificate", upstream.cert_file,
                 "PEM client certificate presented to kaito-server")
      ->group(upstream_group);
  app.add_option("--client-key", upstream.key_file, "PEM key of --client-certificate")
      ->group(upstream_group);
  app.add_option("--request-timeout", request_timeout,
                 "Deadline of each call to kaito-server (watches excepted)")
      ->capture_default_str()
      ->group(upstream_group);
  app.add_option("--max-connections", options.max_connections,
                 "Client connections served at once; each open watch holds one")
      ->capture_default_str()
      ->check(CLI::Range(8, 100000));
  app.add_option("--read-cache-authorization-ttl", read_cache_ttl,
                 "GETs of workspaces are answered from the shim's watch-fed copy for a caller "
                 "whose GET in that namespace kaito-server allowed within this long; 0 turns "
                 "the copy off (every GET asks kaito-server)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (absl::Status s = kaito::SetupLogging(log_level, log_format, "kaito-kube-shim"); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  if (!absl::ParseDuration(request_timeout, &options.request_timeout) ||
      options.request_timeout <= absl::ZeroDuration()) {
    return Fail("--request-timeout \"" + request_timeout +
                "\": expected a positive duration such as 30s or 1m");
  }
  if (!absl::ParseDuration(read_cache_ttl, &options.read_cache.authorization_ttl) ||
      options.read_cache.authorization_ttl < absl::ZeroDuration()) {
    return Fail("--read-cache-authorization-ttl \"" + read_cache_ttl +
                "\": expected a duration such as 10s or 1m, or 0 for no read cache");
  }
  options.forward_authorization = !aggregated;
  if (aggregated && options.tls.client_ca_file.empty()) {
    return Fail("--aggregated needs --client-ca-file (kube-apiserver's front-proxy CA), so "
                "that only the cluster's API server can call the shim");
  }
  if (absl::Status s = kaito::CheckTlsServerFiles(options.tls); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  if (absl::Status s = kaito::CheckTlsClientFiles(upstream); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  kaito::RouteProtobufLogs();
  kaito::TerminationSignals signals;

  auto channel = grpc::CreateChannel(server, kaito::GrpcChannelCredentials(upstream));
  // The read cache's watch on a connection of its own (kaito-server caps watches per
  // connection, and the clients' watches share the first).
  grpc::ChannelArguments own_connection;
  own_connection.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto cache_channel = grpc::CreateCustomChannel(
      server, kaito::GrpcChannelCredentials(upstream), own_connection);
  auto registry = std::make_shared<prometheus::Registry>();
  auto shim = kaito::shim::KubeShim::Start(options, channel, registry, cache_channel);
  if (!shim.ok()) {
    spdlog::critical("{}", std::string(shim.status().message()));
    return 1;
  }
  std::unique_ptr<kaito::MetricsServer> metrics_server;
  if (!metrics_listen.empty()) {
    auto started = kaito::MetricsServer::Start(
        metrics_listen, {registry},
        [channel] {
          auto state = channel->GetState(/*try_to_connect=*/true);
          return state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN
                     ? std::string("kaito-server is unreachable")
                     : std::string();
        });
    if (!started.ok()) {
      spdlog::critical("cannot serve metrics: {}", started.status().ToString());
      return 1;
    }
    metrics_server = std::move(*started);
  }
  if (!port_file.empty() && !kaito::WritePortFile(port_file, (*shim)->port())) {
    spdlog::critical("cannot write --port-file {}", port_file);
    return 1;
  }
  spdlog::info(
      "kaito-kube-shim {} serving the Kubernetes API on port {} ({}) for kaito-server {}, "
      "metrics on port {}",
      kaito::Version(), (*shim)->port(), options.tls.enabled() ? "https" : "http", server,
      metrics_server ? metrics_server->port() : 0);
  const int sig = signals.Wait();
  spdlog::info("signal {}: stopping", sig);
  (*shim)->Shutdown();
  return 0;
}
