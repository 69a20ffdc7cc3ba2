// The agent's downloader against a real HTTP server on loopback (cpp-httplib, started by the
// test): a whole file, a connection dropped half-way and resumed with Range, a server that
// ignores Range, retries of 503, a 404 without retries, the size limit, redirects, and the
// SSRF guard on the address actually connected to.
#include "agent/data/downloader.h"
#include "agent/data/workload_data.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netdb.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/url_guard.h"
#include "support/container_engine.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::agent {
namespace {

std::string Payload(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
  return s;
}

class DownloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Get("/file", [&](const httplib::Request& req, httplib::Response& res) {
      Count(req);
      res.set_content(payload_, "application/octet-stream");
    });
    // Sends half of the body, then drops the connection; resumes honour Range.
    server_.Get("/flaky", [&](const httplib::Request& req, httplib::Response& res) {
      const int n = Count(req);
      if (n == 1) {
        const size_t half = payload_.size() / 2;
        res.set_content_provider(payload_.size(), "application/octet-stream",
                                 [this, half](size_t offset, size_t, httplib::DataSink& sink) {
                                   if (offset >= half) return false;  // Drop the connection.
                                   sink.write(payload_.data(), half);
                                   return true;
                                 });
        return;
      }
      // cpp-httplib answers a Range request with 206 and Content-Range by itself.
      res.set_content(payload_, "application/octet-stream");
    });
    // Drops half-way; then answers the Range with a 206 that has no Content-Range (cpp-httplib
    // does so for a chunked body): nothing says where it starts, so it cannot be appended.
    server_.Get("/norange", [&](const httplib::Request& req, httplib::Response& res) {
      const int n = Count(req);
      if (n == 1) {
        res.set_content_provider(payload_.size(), "application/octet-stream",
                                 [this](size_t offset, size_t, httplib::DataSink& sink) {
                                   if (offset > 0) return false;
                                   sink.write(payload_.data(), 1000);
                                   return true;
                                 });
        return;
      }
      res.set_chunked_content_provider("application/octet-stream",
                                       [this](size_t offset, httplib::DataSink& sink) {
                                         sink.write(payload_.data(), payload_.size());
                                         sink.done();
                                         return true;
                                       });
    });
    server_.Get("/busy", [&](const httplib::Request& req, httplib::Response& res) {
      if (Count(req) <= 2) {
        res.status = 503;
        return;
      }
      res.set_content("finally", "text/plain");
    });
    server_.Get("/missing", [&](const httplib::Request& req, httplib::Response& res) {
      Count(req);
      res.status = 404;
    });
    server_.Get("/moved", [&](const httplib::Request& req, httplib::Response& res) {
      Count(req);
      res.set_redirect("/file", 302);
    });
    port_ = server_.bind_to_any_port("0.0.0.0");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // bind_to_any_port listens already: connections queue until the loop runs.
  }
  void TearDown() override {
    http_.reset();  // Its kept-alive connections close, so the server stops at once.
    server_.stop();
    thread_.join();
  }

  int Count(const httplib::Request& req) {
    absl::MutexLock lock(&mu_);
    ranges_[req.path].push_back(req.get_header_value("Range"));
    return static_cast<int>(ranges_[req.path].size());
  }
  std::vector<std::string> Ranges(const std::string& path) {
    absl::MutexLock lock(&mu_);
    return ranges_[path];
  }

  std::string Url(const std::string& path, const std::string& host = "127.0.0.1") {
    return absl::StrCat("http://", host, ":", port_, path);
  }

  // Runs one download to its end; the result and the last progress.
  absl::Status Fetch(Downloader& d, const std::string& url, const std::string& path,
                     DownloadProgress* last = nullptr) {
    absl::Mutex mu;
    std::optional<absl::Status> result;
    DownloadProgress progress;
    d.Download(
        url, path,
        [&](const DownloadProgress& p) {
          absl::MutexLock lock(&mu);
          progress = p;
        },
        [&](absl::Status s) {
          absl::MutexLock lock(&mu);
          result = s;
        });
    absl::MutexLock lock(&mu);
    mu.AwaitWithTimeout(
        absl::Condition(
            +[](std::optional<absl::Status>* r) { return r->has_value(); }, &result),
        absl::Seconds(60));
    if (last != nullptr) *last = progress;
    return result.value_or(absl::DeadlineExceededError("no result"));
  }

  DownloadOptions Loopback() {
    DownloadOptions o;
    o.allow_private_addresses = true;
    o.initial_backoff = absl::Milliseconds(10);
    return o;
  }

  const std::string payload_ = Payload(300000);
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  absl::Mutex mu_;
  std::map<std::string, std::vector<std::string>> ranges_;
  testing::TempDir dir_;
  RealClock clock_;
  std::unique_ptr<http::CurlHttpClient> http_ = std::make_unique<http::CurlHttpClient>();
};

TEST_F(DownloaderTest, AWholeFileWithProgress) {
  Downloader d(&clock_, http_.get(), Loopback());
  DownloadProgress last;
  ASSERT_TRUE(Fetch(d, Url("/file"), dir_.File("data.bin"), &last).ok());
  EXPECT_TRUE(testing::ReadFile(dir_.File("data.bin")) == payload_)
      << "got " << testing::ReadFile(dir_.File("data.bin")).size() << " bytes";
  EXPECT_FALSE(std::filesystem::exists(dir_.File("data.bin.part")));
  EXPECT_EQ(last.bytes, static_cast<int64_t>(payload_.size()));
  EXPECT_EQ(last.total, static_cast<int64_t>(payload_.size()));
}

TEST_F(DownloaderTest, AConnectionDroppedHalfWayIsResumedWithRange) {
  Downloader d(&clock_, http_.get(), Loopback());
  absl::Status s = Fetch(d, Url("/flaky"), dir_.File("data.bin"));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(testing::ReadFile(dir_.File("data.bin")) == payload_) << "byte for byte";
  std::vector<std::string> ranges = Ranges("/flaky");
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0], "");
  EXPECT_EQ(ranges[1], absl::StrCat("bytes=", payload_.size() / 2, "-"));
}

TEST_F(DownloaderTest, AResumeThatDoesNotSayWhereItStartsStartsOver) {
  Downloader d(&clock_, http_.get(), Loopback());
  absl::Status s = Fetch(d, Url("/norange"), dir_.File("data.bin"));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(testing::ReadFile(dir_.File("data.bin")) == payload_)
      << "got " << testing::ReadFile(dir_.File("data.bin")).size() << " bytes";
  std::vector<std::string> ranges = Ranges("/norange");
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[1], "bytes=1000-");
  EXPECT_EQ(ranges[2], "") << "the part was dropped: the third asks for everything";
}

TEST_F(DownloaderTest, TransientStatusesAreRetriedAndA404IsNot) {
  Downloader d(&clock_, http_.get(), Loopback());
  ASSERT_TRUE(Fetch(d, Url("/busy"), dir_.File("busy.txt")).ok());
  EXPECT_EQ(testing::ReadFile(dir_.File("busy.txt")), "finally");
  EXPECT_EQ(Ranges("/busy").size(), 3u);
  absl::Status missing = Fetch(d, Url("/missing"), dir_.File("missing.txt"));
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_NE(missing.message().find("HTTP 404"), std::string::npos);
  EXPECT_EQ(Ranges("/missing").size(), 1u) << "not retried";
  DownloadOptions few = Loopback();
  few.attempts = 2;
  Downloader once(&clock_, http_.get(), few);
  {
    absl::MutexLock lock(&mu_);
    ranges_.erase("/busy");
  }
  absl::Status spent = Fetch(once, Url("/busy"), dir_.File("busy2.txt"));
  EXPECT_EQ(spent.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(spent.message().find("gave up after 2 attempts"), std::string::npos) << spent;
}

TEST_F(DownloaderTest, TheSizeLimitStopsItAndLeavesNothing) {
  DownloadOptions small = Loopback();
  small.max_bytes = 1000;
  Downloader d(&clock_, http_.get(), small);
  absl::Status s = Fetch(d, Url("/file"), dir_.File("big.bin"));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_FALSE(std::filesystem::exists(dir_.File("big.bin")));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("big.bin.part")));
}

TEST_F(DownloaderTest, RedirectsAreFollowed) {
  Downloader d(&clock_, http_.get(), Loopback());
  ASSERT_TRUE(Fetch(d, Url("/moved?sig=secret"), dir_.File("moved.bin")).ok());
  EXPECT_TRUE(testing::ReadFile(dir_.File("moved.bin")) == payload_);
}

TEST_F(DownloaderTest, TheGuardRefusesPrivateAddressesByNameAndByConnection) {
  DownloadOptions guarded;
  guarded.initial_backoff = absl::Milliseconds(10);
  Downloader d(&clock_, http_.get(), guarded);
  // By the URL, before any connection.
  absl::Status literal = Fetch(d, Url("/file?sig=secret"), dir_.File("x.bin"));
  EXPECT_EQ(literal.code(), absl::StatusCode::kInvalidArgument) << literal;
  EXPECT_TRUE(Ranges("/file").empty());
  // By the address connected to: a host name that passes the URL check but resolves to a
  // loopback or private address of this machine (its own name, from /etc/hosts).
  char name[256] = {0};
  ASSERT_EQ(gethostname(name, sizeof(name) - 1), 0);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* found = nullptr;
  ASSERT_EQ(getaddrinfo(name, nullptr, &hints, &found), 0) << "cannot resolve " << name;
  char ip[INET_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr, ip, sizeof(ip));
  freeaddrinfo(found);
  ASSERT_TRUE(CheckInputUrl(Url("/file", name)).empty()) << "the name itself passes";
  if (CheckPeerAddress(ip).empty()) {
    GTEST_SKIP() << name << " resolves to " << ip << ", a public address";
  }
  absl::Status connected = Fetch(d, Url("/file?sig=secret", name), dir_.File("y.bin"));
  EXPECT_EQ(connected.code(), absl::StatusCode::kPermissionDenied) << connected;
  EXPECT_NE(connected.message().find(ip), std::string::npos) << connected;
  EXPECT_EQ(connected.message().find("secret"), std::string::npos) << "the query is redacted";
  EXPECT_TRUE(Ranges("/file").empty()) << "no request was sent";
  EXPECT_FALSE(std::filesystem::exists(dir_.File("y.bin")));
}

// AgentWorkloadData (the supervisor's real data plane): a download into a workspace's
// directory, counted byte for byte across a resumed connection, and a push to a real
// registry over plain HTTP, counted by the sizes of its files.
TEST_F(DownloaderTest, TheAgentsDataPlaneCountsWhatItMoves) {
  std::map<std::string, int64_t> moved;
  absl::Mutex moved_mu;
  AgentWorkloadDataOptions o;
  o.root = dir_.File("data");
  o.download = Loopback();
  auto registry = kaito::testing::LocalRegistry::Start(dir_.File("registry"));
  ASSERT_TRUE(registry.ok()) << registry.status();
  o.insecure_registries.insert((*registry)->host());
  o.on_bytes = [&](const char* direction, int64_t bytes) {
    absl::MutexLock lock(&moved_mu);
    moved[direction] += bytes;
  };
  AgentWorkloadData data(&clock_, http_.get(), o);
  auto dir = data.VolumeDir("default", "ws", "data-volume");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, dir_.File("data") + "/default/ws/data-volume");
  EXPECT_FALSE(data.VolumeDir("default", "..", "x").ok()) << "no path outside the root";

  v1::DataDownload d;
  d.set_url(Url("/flaky"));
  d.set_volume("data-volume");
  d.set_file_name("train.bin");
  absl::Notification downloaded;
  absl::Status download_status;
  data.Download(d, *dir, nullptr, [&](absl::Status s) {
    download_status = s;
    downloaded.Notify();
  });
  ASSERT_TRUE(downloaded.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(download_status.ok()) << download_status;
  EXPECT_TRUE(kaito::testing::ReadFile(*dir + "/train.bin") == payload_);

  auto results = data.VolumeDir("default", "ws", "results-volume");
  ASSERT_TRUE(results.ok());
  std::ofstream(*results + "/adapter_model.safetensors") << "weights of the adapter";
  v1::ArtifactPush push;
  push.set_image((*registry)->host() + "/kaito-test/adapter:1");
  push.set_volume("results-volume");
  push.add_files("adapter_model.safetensors");
  push.add_files("adapter_config.json");  // Not written by this job: left out.
  (*push.mutable_annotations())["sh.kaito.model.name"] = "phi-3";
  absl::Notification pushed;
  absl::StatusOr<std::string> digest;
  data.Push(push, "default", *results, [&](absl::StatusOr<std::string> d) {
    digest = std::move(d);
    pushed.Notify();
  });
  ASSERT_TRUE(pushed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_TRUE(absl::StartsWith(*digest, "sha256:")) << *digest;
  {
    absl::MutexLock lock(&moved_mu);
    EXPECT_EQ(moved["downloaded"], static_cast<int64_t>(payload_.size()))
        << "the resumed half is not counted twice";
    EXPECT_EQ(moved["pushed"], static_cast<int64_t>(std::string("weights of the adapter").size()));
  }
  data.Forget("default", "ws");
  EXPECT_FALSE(std::filesystem::exists(dir_.File("data") + "/default/ws"));
}

}  // namespace
}  // namespace kaito::agent
