#include "agent/data/downloader.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/url_guard.h"
#include "spdlog/spdlog.h"

namespace kaito::agent {
namespace {

// The URL without its query (a SAS token or signature must not reach a log or a status).
std::string Redact(const std::string& url) {
  const size_t q = url.find_first_of("?#");
  return q == std::string::npos ? url : url.substr(0, q) + "?...";
}

// `location` resolved against `base` (absolute, scheme-relative or path-absolute).
std::string Resolve(const std::string& base, const std::string& location) {
  if (absl::StrContains(location.substr(0, location.find('/')), ":")) return location;
  const size_t scheme_end = base.find("://");
  if (scheme_end == std::string::npos) return location;
  if (absl::StartsWith(location, "//")) return base.substr(0, scheme_end + 1) + location;
  const size_t path_start = base.find('/', scheme_end + 3);
  const std::string origin = path_start == std::string::npos ? base : base.substr(0, path_start);
  if (absl::StartsWith(location, "/")) return origin + location;
  // Relative to the base's directory.
  std::string dir = base.substr(0, base.find_first_of("?#"));
  dir = dir.substr(0, dir.rfind('/') + 1);
  return dir + location;
}

bool Transient(int status) { return status == 429 || status >= 500; }

}  // namespace

struct Downloader::Job {
  std::string url;  // The current one (after redirects).
  std::string path;
  std::string part;
  ProgressCallback progress;
  absl::AnyInvocable<void(absl::Status)> done;
  int attempt = 0;
  int redirects = 0;
  absl::Duration backoff;
  // The attempt in flight.
  FILE* file = nullptr;
  int64_t bytes = 0;
  int64_t total = -1;
  absl::Status write_error;
  // The part cannot be resumed: it goes, and the next attempt starts from nothing.
  bool restart = false;
  bool redirected = false;
  std::string location;
  int status = 0;

  ~Job() {
    if (file != nullptr) std::fclose(file);
  }
};

Downloader::Downloader(Clock* clock, http::HttpClient* http, DownloadOptions options)
    : clock_(clock), http_(http), options_(std::move(options)) {}

void Downloader::Download(const std::string& url, const std::string& path,
                          ProgressCallback progress, absl::AnyInvocable<void(absl::Status)> done) {
  auto job = std::make_shared<Job>();
  job->url = url;
  job->path = path;
  job->part = path + ".part";
  job->progress = std::move(progress);
  job->done = std::move(done);
  job->backoff = options_.initial_backoff;
  if (!options_.allow_private_addresses) {
    if (std::string why = CheckInputUrl(url); !why.empty()) {
      clock_->RunAfter(absl::ZeroDuration(),
                       [job, why] { std::move(job->done)(absl::InvalidArgumentError(why)); });
      return;
    }
  }
  Attempt(std::move(job));
}

void Downloader::Attempt(std::shared_ptr<Job> job) {
  ++job->attempt;
  std::error_code ec;
  const auto existing = std::filesystem::file_size(job->part, ec);
  const int64_t have = ec ? 0 : static_cast<int64_t>(existing);
  job->bytes = have;
  job->total = -1;
  job->status = 0;
  job->redirected = false;
  job->write_error = absl::OkStatus();
  job->restart = false;
  http::Request request;
  request.url = job->url;
  request.timeout = options_.timeout;
  if (have > 0) request.headers.emplace_back("Range", absl::StrCat("bytes=", have, "-"));
  if (!options_.allow_private_addresses) {
    request.check_peer = [](const std::string& ip) { return CheckPeerAddress(ip); };
  }
  const int64_t limit = options_.max_bytes;
  Job* j = job.get();  // Owned by the callbacks' captures below, which outlive the request.
  request.on_headers = [j, have, limit](int status,
                                        const std::multimap<std::string, std::string>& h) {
    j->status = status;
    if (status >= 300 && status < 400) {
      auto loc = h.find("location");
      j->redirected = true;
      j->location = loc == h.end() ? "" : loc->second;
      return true;
    }
    if (status != 200 && status != 206) return true;  // Judged at the end; the body is dropped.
    const bool resumed = status == 206 && have > 0;
    int64_t length = -1;
    if (auto cl = h.find("content-length"); cl != h.end())
      (void)absl::SimpleAtoi(cl->second, &length);
    if (resumed) {
      // Content-Range: bytes START-END/TOTAL, and START must be where the part ends: a 206
      // that starts elsewhere (or does not say) cannot be appended.
      int64_t start = -1;
      if (auto cr = h.find("content-range"); cr != h.end()) {
        const std::string& v = cr->second;
        const size_t space = v.find(' '), dash = v.find('-'), slash = v.rfind('/');
        int64_t total = -1;
        if (space != std::string::npos && dash != std::string::npos && dash > space) {
          (void)absl::SimpleAtoi(v.substr(space + 1, dash - space - 1), &start);
        }
        if (slash != std::string::npos && absl::SimpleAtoi(v.substr(slash + 1), &total)) {
          j->total = total;
        }
      }
      if (start != have) {
        j->restart = true;
        j->write_error = absl::UnavailableError(absl::StrCat(
            "the server resumed at byte ", start, " instead of ", have, "; starting over"));
        return false;
      }
      if (j->total < 0 && length >= 0) j->total = have + length;
    } else {
      j->bytes = 0;
      j->total = length;
    }
    if (j->total > limit) {
      j->write_error = absl::ResourceExhaustedError(
          absl::StrCat("it is ", j->total, " bytes, over the limit of ", limit));
      return false;
    }
    j->file = std::fopen(j->part.c_str(), resumed ? "ab" : "wb");
    if (j->file == nullptr) {
      j->write_error = absl::InternalError("cannot write " + j->part);
      return false;
    }
    return true;
  };
  request.on_body_data = [j, limit](std::string_view data) {
    if (j->file == nullptr) return true;  // Not a success status: the body is not kept.
    if (j->bytes + static_cast<int64_t>(data.size()) > limit) {
      j->write_error =
          absl::ResourceExhaustedError(absl::StrCat("it grew past the limit of ", limit, " bytes"));
      return false;
    }
    if (std::fwrite(data.data(), 1, data.size(), j->file) != data.size()) {
      j->write_error = absl::InternalError("cannot write " + j->part);
      return false;
    }
    j->bytes += static_cast<int64_t>(data.size());
    if (j->progress) j->progress({j->bytes, j->total});
    return true;
  };
  http_->Send(std::move(request), [this, job](absl::StatusOr<http::Response> r) mutable {
    Finished(std::move(job), std::move(r));
  });
}

void Downloader::Finished(std::shared_ptr<Job> job, absl::StatusOr<http::Response> response) {
  if (job->file != nullptr) {
    const bool flushed = std::fclose(job->file) == 0;
    job->file = nullptr;
    if (!flushed && job->write_error.ok()) {
      job->write_error = absl::InternalError("cannot write " + job->part);
    }
  }
  const std::string what = "downloading " + Redact(job->url);
  if (job->restart) {
    std::filesystem::remove(job->part);
    Retry(std::move(job),
          absl::UnavailableError(absl::StrCat(what, ": ", job->write_error.message())));
    return;
  }
  if (!job->write_error.ok()) {
    absl::Status s(job->write_error.code(), absl::StrCat(what, ": ", job->write_error.message()));
    if (absl::IsResourceExhausted(s)) std::filesystem::remove(job->part);
    std::move(job->done)(s);
    return;
  }
  if (!response.ok()) {
    if (absl::IsPermissionDenied(response.status())) {
      std::move(job->done)(
          absl::PermissionDeniedError(absl::StrCat(what, ": ", response.status().message())));
      return;
    }
    Retry(std::move(job), absl::Status(response.status().code(),
                                       absl::StrCat(what, ": ", response.status().message())));
    return;
  }
  const int status = response->status;
  if (job->redirected) {
    const std::string next = Resolve(job->url, job->location);
    if (job->location.empty() || ++job->redirects > options_.max_redirects) {
      std::move(job->done)(absl::InvalidArgumentError(absl::StrCat(
          what, ": ",
          job->location.empty() ? "a redirect without a Location" : "too many redirects")));
      return;
    }
    if (!options_.allow_private_addresses) {
      if (std::string why = CheckInputUrl(next); !why.empty()) {
        std::move(job->done)(
            absl::InvalidArgumentError(absl::StrCat(what, ": redirected to a refused URL: ", why)));
        return;
      }
    }
    job->url = next;
    --job->attempt;  // A redirect is not a failed attempt.
    Attempt(std::move(job));
    return;
  }
  if (status == 416) {
    // The part is not a prefix of what the server has now: start over.
    std::filesystem::remove(job->part);
    Retry(std::move(job), absl::UnavailableError(absl::StrCat(what, ": HTTP 416, starting over")));
    return;
  }
  if (status == 200 || status == 206) {
    if (job->total >= 0 && job->bytes < job->total) {
      Retry(std::move(job),
            absl::UnavailableError(absl::StrCat(what, ": the connection ended after ", job->bytes,
                                                " of ", job->total, " bytes")));
      return;
    }
    std::error_code ec;
    if (!std::filesystem::exists(job->part)) {
      // An empty body: an empty file.
      if (FILE* f = std::fopen(job->part.c_str(), "wb")) std::fclose(f);
    }
    std::filesystem::rename(job->part, job->path, ec);
    if (ec) {
      std::move(job->done)(absl::InternalError(
          absl::StrCat(what, ": cannot rename ", job->part, ": ", ec.message())));
      return;
    }
    spdlog::info("downloaded {} ({} bytes, {} attempt(s))", Redact(job->url), job->bytes,
                 job->attempt);
    if (job->progress) job->progress({job->bytes, job->bytes});
    std::move(job->done)(absl::OkStatus());
    return;
  }
  const std::string http = absl::StrCat(what, ": HTTP ", status);
  if (Transient(status)) {
    Retry(std::move(job), absl::UnavailableError(http));
  } else if (status == 401 || status == 403) {
    std::move(job->done)(absl::PermissionDeniedError(http));
  } else if (status == 404 || status == 410) {
    std::move(job->done)(absl::NotFoundError(http));
  } else {
    std::move(job->done)(absl::FailedPreconditionError(http));
  }
}

void Downloader::Retry(std::shared_ptr<Job> job, absl::Status why) {
  if (job->attempt >= options_.attempts) {
    std::move(job->done)(absl::Status(
        why.code(), absl::StrCat(why.message(), " (gave up after ", job->attempt, " attempts)")));
    return;
  }
  const absl::Duration wait = job->backoff;
  job->backoff = std::min(job->backoff * 2, options_.max_backoff);
  spdlog::warn("{}; attempt {} of {} in {}", std::string(why.message()), job->attempt + 1,
               options_.attempts, absl::FormatDuration(wait));
  clock_->RunAfter(wait, [this, job]() mutable { Attempt(std::move(job)); });
}

}  // namespace kaito::agent
