// An `HttpClient` for tests: records every request and answers it at once, inline, with
// what `handler` returns (by default a 404). Thread-safe. As `CurlHttpClient` does, a request
// with `on_body_data` gets the body through it (in pieces of at most 64 KiB) and a response
// whose body is empty; CANCELLED when `on_body_data` returns false.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/http/http_client.h"

namespace kaito::http {

class FakeHttpClient : public HttpClient {
 public:
  using Handler = std::function<absl::StatusOr<Response>(const Request&)>;

  explicit FakeHttpClient(Handler handler = nullptr) : handler_(std::move(handler)) {}

  void Send(Request request, ResponseDone done) override {
    Handler handler;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      handler = handler_;
    }
    absl::StatusOr<Response> response = Response{404};
    if (handler) response = handler(request);
    if (response.ok() && request.on_body_data) {
      const std::string body = std::move(response->body);
      response->body.clear();
      constexpr size_t kPiece = 64 << 10;
      for (size_t at = 0; at < body.size(); at += kPiece) {
        if (!request.on_body_data(std::string_view(body).substr(at, kPiece))) {
          response = absl::CancelledError("the receiver of the body stopped the transfer");
          break;
        }
      }
    }
    std::move(done)(std::move(response));
  }

  void set_handler(Handler handler) {
    absl::MutexLock lock(&mu_);
    handler_ = std::move(handler);
  }
  std::vector<Request> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  absl::Mutex mu_;
  Handler handler_;
  std::vector<Request> requests_;
};

// A response with `status`, a JSON `body` and `headers` (names lower-cased as the real
// client gives them).
inline Response MakeResponse(int status, std::string body = "",
                             std::vector<std::pair<std::string, std::string>> headers = {}) {
  Response response;
  response.status = status;
  response.body = std::move(body);
  for (auto& [name, value] : headers) {
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    response.headers.emplace(std::move(lower), std::move(value));
  }
  return response;
}

}  // namespace kaito::http
