// An HTTP(S) listener over cpp-httplib, as every daemon's HTTP side needs it: HOST:PORT
// parsed and checked, port 0 picking a free port, HTTPS when a certificate is given (read at
// each handshake, so a renewed certificate is served with no restart), a bounded worker pool
// and timeouts, and the accept loop on a thread of its own. Routes are added to `http()`
// before `Start()`.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tls.h"

namespace httplib {
class Server;
}

namespace kaito {

struct HttpListenerOptions {
  // Each connection holds a worker while it is open (while its request is read, and between
  // the requests of a kept-alive connection).
  int workers = 16;
  // How long one may wait for a request's bytes, and a write to a client may block.
  int io_timeout_ms = 5000;
  int keep_alive_timeout_s = 1;
  int keep_alive_max_requests = 10;
  size_t max_request_bytes = 1 << 20;
  // With TLS and the files' client_ca_file: every client must present a certificate that
  // CA signed (the handshake fails otherwise).
  bool require_client_certificates = false;
};

class HttpListener {
 public:
  // `what` names the listener in errors ("metrics listener"). Binds now, serves from
  // `Start()`.
  static absl::StatusOr<std::unique_ptr<HttpListener>> Bind(const std::string& what,
                                                            const std::string& listen,
                                                            const TlsServerFiles& tls,
                                                            const HttpListenerOptions& options);
  ~HttpListener();

  httplib::Server& http() { return *server_; }
  int port() const { return port_; }
  void Start();
  // Stops accepting and waits for the accept loop (open requests finish on their workers).
  void Stop();

 private:
  HttpListener() = default;

  TlsServerFiles tls_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace kaito
