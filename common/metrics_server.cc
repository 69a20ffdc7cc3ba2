#include "common/metrics_server.h"

#include <httplib.h>
#include <openssl/ssl.h>
#include <prometheus/text_serializer.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kaito {
namespace {

// The serving certificate of each TLS handshake, read from the files then: a certificate
// replaced on disk is served from the next connection on, with no restart.
int LoadCertificate(SSL* ssl, void* arg) {
  const auto* tls = static_cast<const TlsServerFiles*>(arg);
  if (SSL_use_certificate_chain_file(ssl, tls->cert_file.c_str()) != 1) return 0;
  if (SSL_use_PrivateKey_file(ssl, tls->key_file.c_str(), SSL_FILETYPE_PEM) != 1) return 0;
  return SSL_check_private_key(ssl) == 1 ? 1 : 0;
}

}  // namespace

MetricsServer::MetricsServer() = default;

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
    std::function<std::string()> ready, const TlsServerFiles& tls) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError("metrics listener: \"" + listen + "\" is not HOST:PORT");
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }

  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->tls_ = tls;
  if (tls.enabled()) {
    const TlsServerFiles* files = &server->tls_;
    server->server_ = std::make_unique<httplib::SSLServer>([files](SSL_CTX& ctx) {
      SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
      SSL_CTX_set_cert_cb(&ctx, LoadCertificate, const_cast<TlsServerFiles*>(files));
      return true;
    });
  } else {
    server->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& http = *server->server_;
  if (!http.is_valid()) return absl::InternalError("metrics listener: TLS setup failed");
  // Each connection holds a worker while its request is read, so a few slow or idle
  // clients must neither take every worker nor hold one for long: enough workers for
  // Prometheus, probes and some stragglers, a short timeout for reading a request, and
  // connections not kept open between requests for long.
  http.new_task_queue = [] { return new httplib::ThreadPool(kHttpWorkers); };
  http.set_read_timeout(std::chrono::milliseconds(kHttpRequestTimeoutMs));
  http.set_write_timeout(std::chrono::milliseconds(kHttpRequestTimeoutMs));
  http.set_keep_alive_timeout(1);
  http.set_keep_alive_max_count(10);

  http.Get("/metrics", [collectables](const httplib::Request&, httplib::Response& res) {
    std::vector<prometheus::MetricFamily> families;
    for (const auto& c : collectables) {
      auto more = c->Collect();
      families.insert(families.end(), std::make_move_iterator(more.begin()),
                      std::make_move_iterator(more.end()));
    }
    res.set_content(prometheus::TextSerializer().Serialize(families), "text/plain; version=0.0.4");
  });
  http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  http.Get("/readyz", [ready](const httplib::Request&, httplib::Response& res) {
    std::string reason = ready ? ready() : "";
    if (reason.empty()) {
      res.set_content("ok\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content(reason + "\n", "text/plain");
    }
  });

  if (port == 0) {
    port = http.bind_to_any_port(host);
    if (port <= 0) return absl::UnavailableError("metrics listener on " + listen + ": cannot bind");
  } else if (!http.bind_to_port(host, port)) {
    return absl::UnavailableError("metrics listener on " + listen + ": cannot bind");
  }
  server->port_ = port;
  server->thread_ = std::thread([&http] { http.listen_after_bind(); });
  return server;
}

MetricsServer::~MetricsServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace kaito
