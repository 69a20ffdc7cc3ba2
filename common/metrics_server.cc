#include "common/metrics_server.h"

#include <CivetServer.h>
#include <prometheus/text_serializer.h>

#include "absl/strings/str_cat.h"

namespace kaito {

class MetricsServer::Handler : public CivetHandler {
 public:
  explicit Handler(std::function<std::pair<int, std::string>()> respond)
      : respond_(std::move(respond)) {}

  bool handleGet(CivetServer*, struct mg_connection* conn) override {
    auto [code, body] = respond_();
    const char* reason = code == 200 ? "OK" : "Service Unavailable";
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Connection: close\r\n\r\n",
              code, reason,
              body.rfind("# ", 0) == 0 || body.empty() ? "text/plain; version=0.0.4"
                                                       : "text/plain",
              body.size());
    mg_write(conn, body.data(), body.size());
    return true;
  }

 private:
  std::function<std::pair<int, std::string>()> respond_;
};

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
    std::function<std::string()> ready) {
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  std::vector<std::string> options = {"listening_ports", listen, "num_threads", "2"};
  try {
    server->server_ = std::make_unique<CivetServer>(options);
  } catch (const CivetException& e) {
    return absl::UnavailableError(absl::StrCat("metrics listener on ", listen, ": ", e.what()));
  }
  if (server->server_->getContext() == nullptr) {
    return absl::UnavailableError("metrics listener on " + listen + " failed to start");
  }
  auto metrics = std::make_unique<Handler>([collectables] {
    std::vector<prometheus::MetricFamily> families;
    for (const auto& c : collectables) {
      auto more = c->Collect();
      families.insert(families.end(), std::make_move_iterator(more.begin()),
                      std::make_move_iterator(more.end()));
    }
    prometheus::TextSerializer serializer;
    return std::make_pair(200, serializer.Serialize(families));
  });
  auto healthz = std::make_unique<Handler>([] { return std::make_pair(200, std::string("ok\n")); });
  auto readyz = std::make_unique<Handler>([ready] {
    std::string reason = ready ? ready() : "";
    if (reason.empty()) return std::make_pair(200, std::string("ok\n"));
    return std::make_pair(503, reason + "\n");
  });
  server->server_->addHandler("/metrics", metrics.get());
  server->server_->addHandler("/healthz", healthz.get());
  server->server_->addHandler("/readyz", readyz.get());
  server->handlers_.push_back(std::move(metrics));
  server->handlers_.push_back(std::move(healthz));
  server->handlers_.push_back(std::move(readyz));
  std::vector<int> ports = server->server_->getListeningPorts();
  server->port_ = ports.empty() ? 0 : ports[0];
  return server;
}

MetricsServer::~MetricsServer() {
  if (server_) server_->close();
}

}  // namespace kaito
