#include "common/http/http_client.h"

#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kaito::http {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The headers of the response `easy` is receiving (or has received), lower-cased names.
std::multimap<std::string, std::string> ResponseHeaders(CURL* easy) {
  std::multimap<std::string, std::string> headers;
  curl_header* previous = nullptr;
  while (curl_header* h = curl_easy_nextheader(easy, CURLH_HEADER, -1, previous)) {
    headers.emplace(absl::AsciiStrToLower(h->name), h->value);
    previous = h;
  }
  return headers;
}

absl::Status TransferError(CURLcode code, const char* detail, bool too_big, bool aborted,
                           const std::string& peer_refused, int64_t limit) {
  const std::string text =
      absl::StrCat(curl_easy_strerror(code), detail[0] != '\0' ? ": " : "", detail);
  if (!peer_refused.empty()) {
    return absl::PermissionDeniedError("refused to fetch from " + peer_refused);
  }
  if (aborted) return absl::CancelledError("the receiver of the body stopped the transfer");
  if (too_big) {
    return absl::ResourceExhaustedError(
        absl::StrCat("response body exceeds the limit of ", limit, " bytes"));
  }
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(text);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return absl::InvalidArgumentError(text);
    default:
      return absl::UnavailableError(text);
  }
}

}  // namespace

std::string Response::Header(const std::string& name) const {
  auto it = headers.find(absl::AsciiStrToLower(name));
  return it == headers.end() ? "" : it->second;
}

std::string UrlEncode(const std::string& value) {
  GlobalInit();
  char* escaped = curl_easy_escape(nullptr, value.data(), static_cast<int>(value.size()));
  if (escaped == nullptr) return "";
  std::string out(escaped);
  curl_free(escaped);
  return out;
}

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [key, value] : fields) {
    if (!out.empty()) out += '&';
    absl::StrAppend(&out, UrlEncode(key), "=", UrlEncode(value));
  }
  return out;
}

struct CurlHttpClient::Transfer {
  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (header_list != nullptr) curl_slist_free_all(header_list);
  }

  Request request;
  ResponseDone done;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  std::string body;
  bool too_big = false;
  bool aborted = false;
  bool headers_delivered = false;
  std::string peer_refused;
  absl::Time started;
  char error[CURL_ERROR_SIZE] = {0};
};

CurlHttpClient::CurlHttpClient() {
  GlobalInit();
  multi_ = curl_multi_init();
  thread_ = std::thread([this] { Loop(); });
}

CurlHttpClient::~CurlHttpClient() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  curl_multi_wakeup(multi_);
  thread_.join();
  curl_multi_cleanup(multi_);
}

absl::Duration CurlHttpClient::stalled_for() {
  absl::MutexLock lock(&mu_);
  return absl::Now() - last_turn_;
}

int CurlHttpClient::in_flight() {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

void CurlHttpClient::Send(Request request, ResponseDone done) {
  auto transfer = std::make_unique<Transfer>();
  transfer->request = std::move(request);
  transfer->done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queued_.push_back(std::move(transfer));
      ++in_flight_;
    }
  }
  if (transfer != nullptr) {
    std::move(transfer->done)(absl::CancelledError("the HTTP client is stopping"));
    return;
  }
  curl_multi_wakeup(multi_);
}

void CurlHttpClient::StartQueued() {
  std::deque<std::unique_ptr<Transfer>> queued;
  {
    absl::MutexLock lock(&mu_);
    queued.swap(queued_);
  }
  for (std::unique_ptr<Transfer>& transfer : queued) {
    const Request& r = transfer->request;
    CURL* easy = curl_easy_init();
    transfer->easy = easy;
    transfer->started = absl::Now();
    curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error);
    // An infinite timeout is none (a stream that stays open).
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     r.timeout == absl::InfiniteDuration()
                         ? 0L
                         : static_cast<long>(absl::ToInt64Milliseconds(r.timeout)));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(r.connect_timeout)));
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!r.unix_socket_path.empty()) {
      curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, r.unix_socket_path.c_str());
    }
    if (r.no_proxy) curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
    if (!r.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, r.ca_file.c_str());
    if (r.method == "HEAD") {
      curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (r.method != "GET" || !r.body.empty()) {
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
      // A body (possibly empty, for PUT, POST and PATCH); DELETE and GET send none.
      if (!r.body.empty() || (r.method != "GET" && r.method != "DELETE")) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.data());
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      }
    }
    for (const auto& [name, value] : r.headers) {
      transfer->header_list =
          curl_slist_append(transfer->header_list, absl::StrCat(name, ": ", value).c_str());
    }
    // No "Expect: 100-continue" round trip before a body.
    transfer->header_list = curl_slist_append(transfer->header_list, "Expect:");
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->header_list);
    curl_easy_setopt(
        easy, CURLOPT_WRITEFUNCTION,
        +[](char* data, size_t size, size_t count, void* user) -> size_t {
          auto* t = static_cast<Transfer*>(user);
          const size_t n = size * count;
          if (!t->headers_delivered && t->request.on_headers) {
            t->headers_delivered = true;
            long status = 0;
            curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
            if (!t->request.on_headers(static_cast<int>(status), ResponseHeaders(t->easy))) {
              t->aborted = true;
              return 0;
            }
          }
          if (t->request.on_body_data) {
            if (t->request.on_body_data(std::string_view(data, n))) return n;
            t->aborted = true;
            return 0;
          }
          if (static_cast<int64_t>(t->body.size() + n) > t->request.max_response_bytes) {
            t->too_big = true;
            return 0;  // Aborts the transfer with CURLE_WRITE_ERROR.
          }
          t->body.append(data, n);
          return n;
        });
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
    if (r.check_peer) {
      curl_easy_setopt(
          easy, CURLOPT_PREREQFUNCTION,
          +[](void* user, char* primary_ip, char*, int, int) -> int {
            auto* t = static_cast<Transfer*>(user);
            std::string why = t->request.check_peer(primary_ip == nullptr ? "" : primary_ip);
            if (why.empty()) return CURL_PREREQFUNC_OK;
            t->peer_refused = std::move(why);
            return CURL_PREREQFUNC_ABORT;
          });
      curl_easy_setopt(easy, CURLOPT_PREREQDATA, transfer.get());
    }
    curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.get());
    curl_multi_add_handle(multi_, easy);
    running_[easy] = std::move(transfer);
  }
}

void CurlHttpClient::Finish(Transfer* transfer, CURLcode code) {
  curl_multi_remove_handle(multi_, transfer->easy);
  absl::StatusOr<Response> result;
  if (code != CURLE_OK) {
    result = TransferError(code, transfer->error, transfer->too_big, transfer->aborted,
                           transfer->peer_refused, transfer->request.max_response_bytes);
  } else {
    Response response;
    long status = 0;
    curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
    response.status = static_cast<int>(status);
    char* ip = nullptr;
    if (curl_easy_getinfo(transfer->easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != nullptr) {
      response.peer_ip = ip;
    }
    // The headers of the last response (after any 1xx), as libcurl parsed them.
    response.headers = ResponseHeaders(transfer->easy);
    if (!transfer->headers_delivered && transfer->request.on_headers) {
      // No body came: the headers are told now.
      transfer->headers_delivered = true;
      (void)transfer->request.on_headers(response.status, response.headers);
    }
    response.body = std::move(transfer->body);
    response.elapsed = absl::Now() - transfer->started;
    result = std::move(response);
  }
  ResponseDone done = std::move(transfer->done);
  running_.erase(transfer->easy);  // Destroys `transfer`.
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }
  std::move(done)(std::move(result));
}

void CurlHttpClient::Loop() {
  while (true) {
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      stopping = stopping_;
      last_turn_ = absl::Now();
    }
    if (stopping) break;
    StartQueued();
    int still_running = 0;
    curl_multi_perform(multi_, &still_running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* transfer = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &transfer);
      Finish(transfer, msg->data.result);
    }
    curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
  }
  // Stopping: nothing more starts; every unfinished request is cancelled.
  std::deque<std::unique_ptr<Transfer>> queued;
  {
    absl::MutexLock lock(&mu_);
    queued.swap(queued_);
  }
  for (auto& [easy, transfer] : running_) curl_multi_remove_handle(multi_, easy);
  std::vector<std::unique_ptr<Transfer>> cancelled;
  for (auto& [easy, transfer] : running_) cancelled.push_back(std::move(transfer));
  running_.clear();
  for (auto& transfer : queued) cancelled.push_back(std::move(transfer));
  for (auto& transfer : cancelled) {
    {
      absl::MutexLock lock(&mu_);
      --in_flight_;
    }
    std::move(transfer->done)(absl::CancelledError("the HTTP client stopped"));
  }
}

}  // namespace kaito::http
