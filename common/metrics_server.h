// The HTTP side of every daemon: `/metrics` (Prometheus text format from
// prometheus-cpp collectables), `/healthz` and `/livez` (the process is alive) and `/readyz` (ready to
// serve, by an injected check), over cpp-httplib, HTTPS when a certificate is given.
// Port 0 picks a free port; `port()` tells which.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>

#include "absl/status/statusor.h"
#include "common/http_listener.h"
#include "common/tls.h"

namespace kaito {

// Worker threads of the HTTP listener, and how long one may wait for a request's bytes.
inline constexpr int kHttpWorkers = 16;
inline constexpr int kHttpRequestTimeoutMs = 5000;

class MetricsServer {
 public:
  // `listen` is HOST:PORT. `ready` returns an empty string when ready, else the reason.
  // With `tls` enabled the listener serves HTTPS only, with that certificate. `alive` (for
  // `/livez` and `/healthz`) likewise, e.g. `LivenessWatch::Check`; none: always alive.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
      std::function<std::string()> ready, const TlsServerFiles& tls = {},
      std::function<std::string()> alive = nullptr);
  ~MetricsServer();

  int port() const;

 private:
  MetricsServer();

  std::unique_ptr<HttpListener> listener_;
};

}  // namespace kaito
