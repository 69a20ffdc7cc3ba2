// Downloads of a tuning job's input URLs into its data directory, by the agent itself with
// the shared libcurl client (no curl container):
// - the SSRF guard of validation applied again, to the URL, to every redirect's target, and to
//   the address actually connected to (DNS can change between validation and download);
// - retries with backoff of transient failures (connection errors, 5xx, 429), each resuming
//   where the last stopped (`Range`; a server that ignores it sends the whole file again);
// - a size limit (Content-Length above it fails at once; a body that grows past it is cut);
// - progress (bytes so far and the total when known) for the workload's status.
// The file is written as `PATH.part` and renamed when complete, so a half-written file never
// looks done; a part left by an agent that died is resumed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http/http_client.h"

namespace kaito::agent {

struct DownloadOptions {
  int64_t max_bytes = 100ll << 30;
  int attempts = 5;
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
  // Of one attempt.
  absl::Duration timeout = absl::Hours(6);
  int max_redirects = 5;
  // Lets loopback and private addresses through (tests and dev mode only).
  bool allow_private_addresses = false;
};

struct DownloadProgress {
  int64_t bytes = 0;
  // -1 when the server did not say.
  int64_t total = -1;
};

// Thread-safe; each download's callbacks run on the HTTP client's thread (or the clock's).
// The downloader, the client and the clock outlive every download they carry.
// Errors: INVALID_ARGUMENT (a URL the guard refuses, a bad redirect), PERMISSION_DENIED (a
// connection to a refused address; 401/403), NOT_FOUND (404, 410), RESOURCE_EXHAUSTED (over
// the size limit), the last transient error after the attempts are spent, INTERNAL (the file
// cannot be written). Messages name the URL and never a query string's secrets beyond it.
class Downloader {
 public:
  using ProgressCallback = std::function<void(const DownloadProgress&)>;

  Downloader(Clock* clock, http::HttpClient* http, DownloadOptions options = {});

  void Download(const std::string& url, const std::string& path, ProgressCallback progress,
                absl::AnyInvocable<void(absl::Status)> done);

 private:
  struct Job;
  void Attempt(std::shared_ptr<Job> job);
  void Finished(std::shared_ptr<Job> job, absl::StatusOr<http::Response> response);
  void Retry(std::shared_ptr<Job> job, absl::Status why);

  Clock* const clock_;
  http::HttpClient* const http_;
  const DownloadOptions options_;
};

}  // namespace kaito::agent
