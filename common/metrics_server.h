// The HTTP side of every daemon: `/metrics` (Prometheus text format from
// prometheus-cpp collectables), `/healthz` (the process is alive) and `/readyz` (ready to
// serve, by an injected check). Port 0 picks a free port; `port()` tells which.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>

#include "absl/status/statusor.h"

class CivetServer;

namespace kaito {

class MetricsServer {
 public:
  // `listen` is HOST:PORT. `ready` returns an empty string when ready, else the reason.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
      std::function<std::string()> ready);
  ~MetricsServer();

  int port() const { return port_; }

 private:
  class Handler;
  MetricsServer() = default;

  std::unique_ptr<CivetServer> server_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  int port_ = 0;
};

}  // namespace kaito
