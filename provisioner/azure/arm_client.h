// Azure Resource Manager requests: a bearer token from the credential on each, retries
// with capped exponential backoff and jitter on 408, 429, 5xx and connection faults
// (Retry-After honoured in its three forms; a Retry-After beyond `max_retry_delay` ends
// the retries, as Azure's SDKs do), one token refresh and retry on a 401, and a client-side
// rate limit and concurrency limit per subscription, so that a burst of claims does not
// start a throttling storm. Requests wait in a queue for their turn; no thread waits.
//
// Threading: `done` runs on the HTTP client's thread or the clock's timer thread, never
// under a lock of this class, and must not block. Shutdown: `Stop()` first (no new timer
// or request after it returns), then the clock, then the HTTP client.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/bucket_counts.h"
#include "common/clock.h"
#include "common/http/http_client.h"
#include "provisioner/azure/credentials.h"

namespace kaito::provisioner::azure {

struct ArmClientOptions {
  // Retries after the first try (of transient failures; a 401 refresh is one more).
  int max_retries = 10;
  // Backoff without Retry-After: (2^retry - 1) x retry_delay x [0.8, 1.3), capped.
  absl::Duration retry_delay = absl::Seconds(2);
  absl::Duration max_retry_delay = absl::Seconds(60);
  // Client-side limits (token bucket; requests in flight).
  double requests_per_second = 20;
  int burst = 100;
  int max_concurrency = 64;
  absl::Duration request_timeout = absl::Seconds(60);
  std::string user_agent = "kaito-provisioner";
  std::string ca_file;
};

// The last response of a request (any status: the caller reads ARM's error), or
// UNAVAILABLE / DEADLINE_EXCEEDED when no response came after the retries,
// UNAUTHENTICATED when no token could be had, CANCELLED when stopping.
using ArmDone = absl::AnyInvocable<void(absl::StatusOr<http::Response>) &&>;

struct ArmClientStats {
  int64_t requests = 0;  // HTTP requests sent (retries included).
  int64_t retries = 0;
  int64_t throttled = 0;  // 429 responses.
  int64_t reauthentications = 0;
  // Responses by "METHOD STATUS" ("PUT 201", "GET 429"; transport failures as "GET error").
  std::map<std::string, int64_t> responses;
  int queued = 0;
  int in_flight = 0;
  // Each HTTP request, send to response (or transport failure).
  BucketCounts request_seconds{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
  // The waits before retries: asked for by Retry-After, or our backoff.
  BucketCounts retry_wait_seconds{{0.1, 0.5, 1, 2, 5, 10, 30, 60}};
  int64_t retry_after_honoured = 0;
};

class ArmClient : public std::enable_shared_from_this<ArmClient> {
 public:
  static std::shared_ptr<ArmClient> Create(ArmClientOptions options, http::HttpClient* http,
                                           Clock* clock,
                                           std::shared_ptr<TokenCredential> credential);

  // `url` is absolute. `body` empty for GET and DELETE.
  void Send(std::string method, std::string url, std::string body, ArmDone done);
  // Ends the retries and queued requests with CANCELLED; later calls are cancelled at once.
  void Stop();
  ArmClientStats stats();

 private:
  struct Call {
    std::string method, url, body;
    ArmDone done;
    int retries = 0;
    bool reauthenticated = false;
    std::string token;
    absl::Duration sent;  // Monotonic, when the current request was sent.
  };

  ArmClient(ArmClientOptions options, http::HttpClient* http, Clock* clock,
            std::shared_ptr<TokenCredential> credential);

  void Admit(std::shared_ptr<Call> call);
  // Takes the calls that may start now; arms the refill timer when some must wait.
  std::vector<std::shared_ptr<Call>> TakeRunnableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Dispatch(std::shared_ptr<Call> call);
  void OnResponse(std::shared_ptr<Call> call, absl::StatusOr<http::Response> response);
  // Schedules another try after `delay` (or the backoff), or ends the call with `last`.
  void RetryOrFinish(std::shared_ptr<Call> call, absl::StatusOr<http::Response> last,
                     std::optional<absl::Duration> delay);
  void Release();

  const ArmClientOptions options_;
  http::HttpClient* const http_;
  Clock* const clock_;
  const std::shared_ptr<TokenCredential> credential_;

  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::shared_ptr<Call>> queue_ ABSL_GUARDED_BY(mu_);
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Duration refilled_at_ ABSL_GUARDED_BY(mu_);
  Clock::TimerId refill_timer_ ABSL_GUARDED_BY(mu_) = 0;
  // Retry timers armed: id -> call.
  std::map<Clock::TimerId, std::shared_ptr<Call>> retry_timers_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
  ArmClientStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::provisioner::azure
