#include "common/metrics_server.h"

#include <httplib.h>
#include <prometheus/text_serializer.h>

#include "absl/strings/str_cat.h"
#include "common/process_metrics.h"

namespace kaito {

MetricsServer::MetricsServer() = default;

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
    std::function<std::string()> ready, const TlsServerFiles& tls,
    std::function<std::string()> alive) {
  // Each connection holds a worker while its request is read, so a few slow or idle
  // clients must neither take every worker nor hold one for long: enough workers for
  // Prometheus, probes and some stragglers, a short timeout for reading a request, and
  // connections not kept open between requests for long.
  HttpListenerOptions options;
  options.workers = kHttpWorkers;
  options.io_timeout_ms = kHttpRequestTimeoutMs;
  auto listener = HttpListener::Bind("metrics listener", listen, tls, options);
  if (!listener.ok()) return listener.status();
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->listener_ = std::move(*listener);
  httplib::Server& http = server->listener_->http();
  // Every daemon's exposition has the process metrics and kaito_build_info.
  collectables.push_back(std::make_shared<ProcessCollector>());
  http.Get("/metrics", [collectables](const httplib::Request&, httplib::Response& res) {
    std::vector<prometheus::MetricFamily> families;
    for (const auto& c : collectables) {
      auto more = c->Collect();
      families.insert(families.end(), std::make_move_iterator(more.begin()),
                      std::make_move_iterator(more.end()));
    }
    res.set_content(prometheus::TextSerializer().Serialize(families), "text/plain; version=0.0.4");
  });
  // A probe: 200 "ok" when `check` (if any) says nothing, else 503 with what it said.
  // GET and HEAD, as every route here.
  auto probe = [&http](const char* path, std::function<std::string()> check) {
    http.Get(path, [check](const httplib::Request&, httplib::Response& res) {
      std::string reason = check ? check() : "";
      if (reason.empty()) {
        res.set_content("ok\n", "text/plain");
      } else {
        res.status = 503;
        res.set_content(reason + "\n", "text/plain");
      }
    });
  };
  // Alive: the process answers and the loops `alive` watches turn (a wedged one fails).
  probe("/healthz", alive);
  probe("/livez", alive);
  probe("/readyz", ready);

  server->listener_->Start();
  return server;
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const { return listener_->port(); }

}  // namespace kaito
