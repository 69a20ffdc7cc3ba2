#include "provisioner/azure/arm_client.h"

#include <spdlog/spdlog.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "provisioner/azure/lro.h"

namespace kaito::provisioner::azure {
namespace {

bool IsRetryableStatus(int status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

// The URL without its query, for logs (a query may carry a skip token, never a secret).
std::string LogUrl(const std::string& url) { return url.substr(0, url.find('?')); }

}  // namespace

std::shared_ptr<ArmClient> ArmClient::Create(ArmClientOptions options, http::HttpClient* http,
                                             Clock* clock,
                                             std::shared_ptr<TokenCredential> credential) {
  return std::shared_ptr<ArmClient>(
      new ArmClient(std::move(options), http, clock, std::move(credential)));
}

ArmClient::ArmClient(ArmClientOptions options, http::HttpClient* http, Clock* clock,
                     std::shared_ptr<TokenCredential> credential)
    : options_(std::move(options)), http_(http), clock_(clock), credential_(std::move(credential)) {
  tokens_ = std::max(1, options_.burst);
  refilled_at_ = clock_->Monotonic();
}

void ArmClient::Send(std::string method, std::string url, std::string body, ArmDone done) {
  auto call = std::make_shared<Call>();
  call->method = std::move(method);
  call->url = std::move(url);
  call->body = std::move(body);
  call->done = std::move(done);
  Admit(std::move(call));
}

void ArmClient::Admit(std::shared_ptr<Call> call) {
  std::vector<std::shared_ptr<Call>> runnable;
  {
    absl::MutexLock lock(&mu_);
    if (!stopped_) {
      queue_.push_back(call);
      runnable = TakeRunnableLocked();
      call = nullptr;
    }
  }
  if (call != nullptr) {
    std::move(call->done)(absl::CancelledError("the ARM client is stopping"));
    return;
  }
  for (auto& next : runnable) Dispatch(std::move(next));
}

std::vector<std::shared_ptr<ArmClient::Call>> ArmClient::TakeRunnableLocked() {
  std::vector<std::shared_ptr<Call>> runnable;
  const absl::Duration now = clock_->Monotonic();
  const double rate = std::max(0.001, options_.requests_per_second);
  tokens_ = std::min<double>(std::max(1, options_.burst),
                             tokens_ + absl::ToDoubleSeconds(now - refilled_at_) * rate);
  refilled_at_ = now;
  while (!queue_.empty() && in_flight_ < options_.max_concurrency && tokens_ >= 1) {
    tokens_ -= 1;
    ++in_flight_;
    runnable.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  if (!queue_.empty() && tokens_ < 1 && refill_timer_ == 0 && !stopped_) {
    // Wake when the next token is there (a slot freed by a response drains on its own).
    const absl::Duration wait = absl::Seconds((1 - tokens_) / rate);
    refill_timer_ = clock_->RunAfter(wait, [self = shared_from_this()] {
      std::vector<std::shared_ptr<Call>> runnable;
      {
        absl::MutexLock lock(&self->mu_);
        self->refill_timer_ = 0;
        if (self->stopped_) return;
        runnable = self->TakeRunnableLocked();
      }
      for (auto& next : runnable) self->Dispatch(std::move(next));
    });
  }
  stats_.queued = static_cast<int>(queue_.size());
  stats_.in_flight = in_flight_;
  return runnable;
}

void ArmClient::Release() {
  std::vector<std::shared_ptr<Call>> runnable;
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    if (!stopped_) runnable = TakeRunnableLocked();
  }
  for (auto& next : runnable) Dispatch(std::move(next));
}

void ArmClient::Dispatch(std::shared_ptr<Call> call) {
  credential_->GetToken([self = shared_from_this(), call](absl::StatusOr<AccessToken> token) {
    if (!token.ok()) {
      self->Release();
      if (absl::IsUnavailable(token.status())) {
        return self->RetryOrFinish(call, token.status(), std::nullopt);
      }
      return std::move(call->done)(token.status());
    }
    call->token = token->token;
    http::Request request;
    request.method = call->method;
    request.url = call->url;
    request.body = call->body;
    request.timeout = self->options_.request_timeout;
    request.ca_file = self->options_.ca_file;
    request.headers = {{"Authorization", "Bearer " + token->token},
                       {"Accept", "application/json"},
                       {"User-Agent", self->options_.user_agent}};
    if (!call->body.empty()) request.headers.push_back({"Content-Type", "application/json"});
    {
      absl::MutexLock lock(&self->mu_);
      ++self->stats_.requests;
      request.headers.push_back(
          {"x-ms-client-request-id",
           absl::StrFormat("%08x-%04x-4%03x-%04x-%012x", absl::Uniform<uint32_t>(self->random_),
                           absl::Uniform<uint16_t>(self->random_),
                           absl::Uniform<uint16_t>(self->random_) & 0xfff,
                           (absl::Uniform<uint16_t>(self->random_) & 0x3fff) | 0x8000,
                           absl::Uniform<uint64_t>(self->random_) & 0xffffffffffffull)});
    }
    call->sent = self->clock_->Monotonic();
    self->http_->Send(std::move(request), [self, call](absl::StatusOr<http::Response> response) {
      self->Release();
      self->OnResponse(call, std::move(response));
    });
  });
}

void ArmClient::OnResponse(std::shared_ptr<Call> call, absl::StatusOr<http::Response> response) {
  {
    absl::MutexLock lock(&mu_);
    ++stats_.responses[absl::StrCat(call->method, " ",
                                    response.ok() ? std::to_string(response->status) : "error")];
    stats_.request_seconds.Observe(absl::ToDoubleSeconds(clock_->Monotonic() - call->sent));
    if (response.ok() && response->status == 429) ++stats_.throttled;
  }
  if (!response.ok()) {
    if (absl::IsCancelled(response.status()) || absl::IsInvalidArgument(response.status())) {
      return std::move(call->done)(std::move(response));
    }
    spdlog::debug("ARM {} {}: {}", call->method, LogUrl(call->url), response.status().ToString());
    return RetryOrFinish(call, std::move(response), std::nullopt);
  }
  const int status = response->status;
  if (status == 401 && !call->reauthenticated) {
    // The token was refused (expired early, revoked): one new token, one more try.
    call->reauthenticated = true;
    credential_->Invalidate(call->token);
    {
      absl::MutexLock lock(&mu_);
      ++stats_.reauthentications;
    }
    return Admit(call);
  }
  if (IsRetryableStatus(status)) {
    std::optional<absl::Duration> delay = RetryAfter(*response, clock_->Now());
    if (delay && *delay > options_.max_retry_delay) {
      spdlog::warn("ARM {} {}: HTTP {} asks to retry after {}, beyond the {} limit: giving up",
                   call->method, LogUrl(call->url), status, absl::FormatDuration(*delay),
                   absl::FormatDuration(options_.max_retry_delay));
      return std::move(call->done)(std::move(response));
    }
    spdlog::debug("ARM {} {}: HTTP {}, retrying", call->method, LogUrl(call->url), status);
    return RetryOrFinish(call, std::move(response), delay);
  }
  std::move(call->done)(std::move(response));
}

void ArmClient::RetryOrFinish(std::shared_ptr<Call> call, absl::StatusOr<http::Response> last,
                              std::optional<absl::Duration> delay) {
  if (call->retries >= options_.max_retries) {
    return std::move(call->done)(std::move(last));
  }
  ++call->retries;
  bool armed = false;
  {
    absl::MutexLock lock(&mu_);
    if (!stopped_) {
      ++stats_.retries;
      if (delay) ++stats_.retry_after_honoured;
      if (!delay) {
        const double factor = std::pow(2.0, call->retries) - 1;
        const double jitter = absl::Uniform(random_, 0.8, 1.3);
        delay = std::min(options_.max_retry_delay, options_.retry_delay * (factor * jitter));
      }
      stats_.retry_wait_seconds.Observe(absl::ToDoubleSeconds(*delay));
      auto holder = std::make_shared<Clock::TimerId>(0);
      const Clock::TimerId id = clock_->RunAfter(*delay, [self = shared_from_this(), holder] {
        std::shared_ptr<Call> due;
        {
          absl::MutexLock lock(&self->mu_);
          auto it = self->retry_timers_.find(*holder);
          if (it == self->retry_timers_.end()) return;
          due = std::move(it->second);
          self->retry_timers_.erase(it);
        }
        self->Admit(std::move(due));
      });
      *holder = id;
      retry_timers_[id] = call;
      armed = true;
    }
  }
  if (!armed) std::move(call->done)(absl::CancelledError("the ARM client is stopping"));
}

void ArmClient::Stop() {
  std::vector<std::shared_ptr<Call>> cancelled;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    if (refill_timer_ != 0) clock_->Cancel(refill_timer_);
    refill_timer_ = 0;
    for (auto& [id, call] : retry_timers_) {
      clock_->Cancel(id);
      cancelled.push_back(std::move(call));
    }
    retry_timers_.clear();
    for (auto& call : queue_) cancelled.push_back(std::move(call));
    queue_.clear();
  }
  for (auto& call : cancelled) {
    std::move(call->done)(absl::CancelledError("the ARM client stopped"));
  }
}

ArmClientStats ArmClient::stats() {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace kaito::provisioner::azure
