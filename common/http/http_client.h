// The HTTP client of every daemon that talks to an HTTP API (Azure Resource Manager and
// AAD, the instance metadata service; later the Docker Engine API and OCI registries):
// asynchronous, over libcurl's multi interface, with one thread for any number of
// requests in flight. No thread is held by a request while it waits for the network.
//
// Contract of `HttpClient::Send`: returns at once; `done` runs exactly once, on the
// client's thread (or inline, on the caller's, when the client is stopping), and must
// not block: it may call `Send` again. A response of any HTTP status is an OK result;
// the status is an error only when no complete response arrived:
//   UNAVAILABLE        connection refused or reset, a truncated body, DNS failure;
//   DEADLINE_EXCEEDED  `timeout` (or `connect_timeout`) passed;
//   RESOURCE_EXHAUSTED the body exceeded `max_response_bytes`;
//   INVALID_ARGUMENT   the request itself is malformed (URL, method);
//   CANCELLED          the client stopped before the request finished, or `on_body_data`
//                      asked to stop.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kaito::http {

struct Request {
  std::string method = "GET";
  std::string url;
  // Sent as given, in order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Of the whole transfer; InfiniteDuration for none.
  absl::Duration timeout = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(10);
  // Talk HTTP over this unix socket instead of TCP (the Docker Engine API).
  std::string unix_socket_path;
  // Never use a proxy (the instance metadata service must not be proxied).
  bool no_proxy = false;
  // PEM bundle of the CAs trusted for https (empty: the system's).
  std::string ca_file;
  int64_t max_response_bytes = 64ll << 20;
  // When set, the body is not kept: each piece is handed to `on_body_data` as it arrives (on
  // the client's thread; it must not block), and the Response's body stays empty. Returning
  // false aborts the transfer (CANCELLED). For streams: Docker's events and pull progress,
  // logs that follow. `max_response_bytes` does not apply.
  std::function<bool(std::string_view)> on_body_data;
  // Called once, before the first piece of the body (or at the end when there is none), with
  // the status and the headers; returning false aborts the transfer (CANCELLED). For streams
  // whose handling depends on them (a download resumed with Range: 206 or 200).
  std::function<bool(int status, const std::multimap<std::string, std::string>& headers)>
      on_headers;
  // When set, asked with the address connected to (after DNS, before the request is sent);
  // an empty answer lets it go on, otherwise the transfer fails with PERMISSION_DENIED and
  // that answer (the SSRF guard of downloads).
  std::function<std::string(const std::string& ip)> check_peer;
};

struct Response {
  int status = 0;
  // Lower-case names; a repeated header keeps every value in order.
  std::multimap<std::string, std::string> headers;
  std::string body;
  // The address the response came from (the connected peer, after DNS).
  std::string peer_ip;
  // Time from the request's start to its completion.
  absl::Duration elapsed;

  // The first value of `name` (any case), or "".
  std::string Header(const std::string& name) const;
};

using ResponseDone = absl::AnyInvocable<void(absl::StatusOr<Response>) &&>;

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual void Send(Request request, ResponseDone done) = 0;
};

// `value` percent-encoded for a URL query or a form body (libcurl's escaping).
std::string UrlEncode(const std::string& value);
// `key=value&...` with both sides encoded, in the given order.
std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields);

// libcurl's multi interface on one thread. Destroying it stops the thread and completes
// every unfinished request with CANCELLED.
class CurlHttpClient : public HttpClient {
 public:
  CurlHttpClient();
  ~CurlHttpClient() override;
  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  void Send(Request request, ResponseDone done) override;

  // Requests accepted and not yet completed.
  int in_flight();
  // How long since the client's loop last turned (it turns at least once a second): for
  // `LivenessWatch`.
  absl::Duration stalled_for();

 private:
  struct Transfer;

  void Loop();
  // Moves queued requests into the multi handle (loop thread only).
  void StartQueued();
  void Finish(Transfer* transfer, CURLcode code);

  CURLM* multi_ = nullptr;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Transfer>> queued_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_turn_ ABSL_GUARDED_BY(mu_) = absl::Now();
  // Owned by the loop thread.
  std::map<CURL*, std::unique_ptr<Transfer>> running_;
  std::thread thread_;
};

}  // namespace kaito::http
