#include "common/http_listener.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "absl/strings/numbers.h"

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

absl::StatusOr<std::unique_ptr<HttpListener>> HttpListener::Bind(
    const std::string& what, const std::string& listen, const TlsServerFiles& tls,
    const HttpListenerOptions& options) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(what + ": \"" + listen + "\" is not HOST:PORT");
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }

  std::unique_ptr<HttpListener> listener(new HttpListener());
  listener->tls_ = tls;
  if (tls.enabled()) {
    const TlsServerFiles* files = &listener->tls_;
    const bool verify = options.require_client_certificates && !tls.client_ca_file.empty();
    listener->server_ = std::make_unique<httplib::SSLServer>([files, verify](SSL_CTX& ctx) {
      SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
      SSL_CTX_set_cert_cb(&ctx, LoadCertificate, const_cast<TlsServerFiles*>(files));
      if (verify) {
        const char* ca = files->client_ca_file.c_str();
        if (SSL_CTX_load_verify_locations(&ctx, ca, nullptr) != 1) return false;
        SSL_CTX_set_client_CA_list(&ctx, SSL_load_client_CA_file(ca));
        SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      }
      return true;
    });
  } else {
    listener->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& http = *listener->server_;
  if (!http.is_valid()) return absl::InternalError(what + ": TLS setup failed");
  const int workers = options.workers;
  http.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  http.set_read_timeout(std::chrono::milliseconds(options.io_timeout_ms));
  http.set_write_timeout(std::chrono::milliseconds(options.io_timeout_ms));
  http.set_keep_alive_timeout(options.keep_alive_timeout_s);
  http.set_keep_alive_max_count(options.keep_alive_max_requests);
  http.set_payload_max_length(options.max_request_bytes);
  // Replies go out as two writes (headers, then body): without TCP_NODELAY the body waits
  // for the client's delayed ACK of the headers, 40 ms on Linux. Accepted sockets inherit
  // the option from the listening one.
  http.set_tcp_nodelay(true);
  // The listening socket, to raise its backlog after bind: Debian's split cpp-httplib
  // listens with a backlog of 5, which a burst of connects (1,000 watches) overflows.
  // SO_REUSEADDR as cpp-httplib sets it by default; no SO_REUSEPORT, so a port in use is
  // an error rather than shared.
  auto listening_fd = std::make_shared<int>(-1);
  http.set_socket_options([listening_fd](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    *listening_fd = sock;
  });

  if (port == 0) {
    port = http.bind_to_any_port(host);
    if (port <= 0) return absl::UnavailableError(what + " on " + listen + ": cannot bind");
  } else if (!http.bind_to_port(host, port)) {
    return absl::UnavailableError(what + " on " + listen + ": cannot bind");
  }
  if (*listening_fd >= 0) ::listen(*listening_fd, SOMAXCONN);
  listener->port_ = port;
  return listener;
}

void HttpListener::Start() {
  httplib::Server* http = server_.get();
  thread_ = std::thread([http] { http->listen_after_bind(); });
}

void HttpListener::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

HttpListener::~HttpListener() { Stop(); }

}  // namespace kaito
