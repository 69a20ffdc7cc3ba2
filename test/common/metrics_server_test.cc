// The HTTP listener of every daemon stays answerable while clients hold connections open
// without finishing their requests (slowloris) or without sending anything.
#include "common/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "common/liveness.h"
#include "common/process_metrics.h"
#include "common/version.h"
#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito {
namespace {

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends a whole GET and reads the reply until the server closes, for at most `deadline`.
// Returns the reply ("" when none came in time).
std::string Get(int port, const std::string& path, std::chrono::milliseconds deadline) {
  int fd = Connect(port);
  if (fd < 0) return "";
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string reply;
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

TEST(MetricsServerTest, AnswersProbesWhileClientsStallOrIdle) {
  auto server = MetricsServer::Start("127.0.0.1:0", {}, [] { return std::string(); });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  // Half of the workers held by half-sent requests, a few more by silent connections:
  // with the two workers of old, two of these were enough to block every probe.
  std::vector<int> held;
  for (int i = 0; i < kHttpWorkers / 2; ++i) {
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    const std::string partial = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    ASSERT_EQ(send(fd, partial.data(), partial.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(partial.size()));
    held.push_back(fd);
  }
  for (int i = 0; i < 4; ++i) {
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    held.push_back(fd);
  }

  // Well inside the request timeout, so the answer does not come from a stalled
  // connection being dropped.
  const auto within = std::chrono::milliseconds(kHttpRequestTimeoutMs / 2);
  for (const char* path : {"/healthz", "/readyz", "/metrics"}) {
    std::string reply = Get(port, path, within);
    EXPECT_NE(reply.find("200 OK"), std::string::npos) << path << ": " << reply;
  }
  for (int fd : held) close(fd);
}

TEST(MetricsServerTest, DropsARequestThatNeverCompletes) {
  auto server = MetricsServer::Start("127.0.0.1:0", {}, [] { return std::string(); });
  ASSERT_TRUE(server.ok()) << server.status();
  int fd = Connect((*server)->port());
  ASSERT_GE(fd, 0);
  const std::string partial = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  ASSERT_EQ(send(fd, partial.data(), partial.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(partial.size()));
  // The server gives up on the request after its timeout and closes the connection
  // (read returns 0 or an error); wait a little longer than the timeout for it.
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, kHttpRequestTimeoutMs * 3), 1) << "connection still open";
  char buf[512];
  ssize_t n = read(fd, buf, sizeof(buf));
  // Closed, or answered with an error status; never a 200 for a request never sent.
  if (n > 0) {
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).find("200 OK"), std::string::npos);
  }
  close(fd);
}

TEST(MetricsServerTest, ServesHttpsOnlyWithTheConfiguredCertificate) {
  testing::TempDir dir;
  testing::TestPki pki(dir.path());
  testing::CertificateFiles cert = pki.Server("server");
  TlsServerFiles tls{cert.cert, cert.key, "", false};
  auto server = MetricsServer::Start("127.0.0.1:0", {}, [] { return std::string(); }, tls);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string base = "127.0.0.1:" + std::to_string((*server)->port());
  auto curl = [&](const std::string& ca) {
    return testing::RunCommand(
        {"/usr/bin/curl", "-sS", "--max-time", "10", "--cacert", ca, "https://" + base + "/healthz"});
  };
  testing::RunResult ok = curl(pki.ca_file());
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "ok\n");
  // Plain HTTP gets no answer, and a client that trusts another CA refuses the server.
  EXPECT_EQ(Get((*server)->port(), "/healthz", std::chrono::milliseconds(2000)).find("200 OK"),
            std::string::npos);
  testing::TestPki other(dir.path(), "other");
  EXPECT_NE(curl(other.ca_file()).exit_code, 0);
  // A certificate replaced on disk is served from the next connection on.
  testing::CertificateFiles rotated = other.Server("rotated");
  std::filesystem::copy_file(rotated.cert, cert.cert, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(rotated.key, cert.key, std::filesystem::copy_options::overwrite_existing);
  testing::RunResult after = curl(other.ca_file());
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_NE(curl(pki.ca_file()).exit_code, 0);
}

}  // namespace
}  // namespace kaito

namespace kaito {
namespace {

const prometheus::MetricFamily* Family(const std::vector<prometheus::MetricFamily>& families,
                                       const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

TEST(ProcessCollectorTest, ReportsThisProcess) {
  const auto families = ProcessCollector().Collect();
  const auto* rss = Family(families, "process_resident_memory_bytes");
  ASSERT_NE(rss, nullptr);
  EXPECT_GT(rss->metric.at(0).gauge.value, 1 << 20);  // A test binary holds over 1 MiB.
  const auto* start = Family(families, "process_start_time_seconds");
  ASSERT_NE(start, nullptr);
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_LE(start->metric.at(0).gauge.value, now + 1);
  EXPECT_GT(start->metric.at(0).gauge.value, now - 3600);  // Started within the hour.
  const auto* fds = Family(families, "process_open_fds");
  ASSERT_NE(fds, nullptr);
  EXPECT_GE(fds->metric.at(0).gauge.value, 3);  // stdin, stdout, stderr at least.
  const auto* cpu = Family(families, "process_cpu_seconds_total");
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->type, prometheus::MetricType::Counter);
  const auto* build = Family(families, "kaito_build_info");
  ASSERT_NE(build, nullptr);
  EXPECT_EQ(build->metric.at(0).label.at(0).value, Version());
}

// A wedged timer thread turns /livez (and /healthz) to 503 with the reason; /readyz is
// separate. The watch's time is injected: the fake clock's timers run only when it advances,
// as a stuck timer thread's would not.
TEST(LivenessTest, AClockThatStopsTurningFailsLivez) {
  FakeClock clock;
  absl::Duration now = absl::ZeroDuration();
  LivenessWatch watch(absl::Seconds(60), [&now] { return now; });
  watch.WatchClock("the clock's timer thread", &clock, absl::Seconds(1));
  auto server = MetricsServer::Start(
      "127.0.0.1:0", {}, [] { return std::string(); }, {}, [&watch] { return watch.Check(); });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const auto within = std::chrono::milliseconds(kHttpRequestTimeoutMs / 2);
  // The timer keeps firing as time passes: alive, however long it runs.
  for (int i = 0; i < 120; ++i) {
    now += absl::Seconds(1);
    clock.Advance(absl::Seconds(1));
  }
  EXPECT_EQ(watch.Check(), "");
  EXPECT_NE(Get(port, "/livez", within).find("200 OK"), std::string::npos);
  // Time goes on, the timers do not run: after 60 s it is wedged.
  now += absl::Seconds(59);
  EXPECT_EQ(watch.Check(), "");
  now += absl::Seconds(2);
  EXPECT_NE(watch.Check().find("the clock's timer thread has not run for 1m"), std::string::npos)
      << watch.Check();
  for (const char* path : {"/livez", "/healthz"}) {
    std::string reply = Get(port, path, within);
    EXPECT_NE(reply.find("503"), std::string::npos) << path << ": " << reply;
    EXPECT_NE(reply.find("the clock's timer thread"), std::string::npos) << reply;
  }
  EXPECT_NE(Get(port, "/readyz", within).find("200 OK"), std::string::npos);
  // It turns again: alive again.
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(watch.Check(), "");
  // A watched loop that reports itself.
  absl::Duration http_still = absl::Seconds(5);
  watch.Watch("the HTTP client's loop", [&http_still] { return http_still; });
  EXPECT_EQ(watch.Check(), "");
  http_still = absl::Minutes(3);
  EXPECT_NE(watch.Check().find("the HTTP client's loop has not run for 3m"), std::string::npos);
}

}  // namespace
}  // namespace kaito
