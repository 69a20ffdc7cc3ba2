#include "tools/bench/azure_bench.h"

#include <httplib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/http/http_client.h"
#include "provisioner/azure/arm_client.h"
#include "provisioner/azure/azure_provider.h"
#include "provisioner/azure/credentials.h"
#include "tools/bench/child_process.h"
#include "tools/fake-arm/fake_arm.h"

namespace kaito::bench {
namespace {

using nlohmann::json;
namespace azure = provisioner::azure;

// Threads: and VmRSS: of /proc/self/status.
std::pair<int, int64_t> ThreadsAndRssKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  int threads = 0;
  int64_t rss = 0;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) threads = std::stoi(line.substr(8));
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stoll(line.substr(6));
  }
  return {threads, rss};
}

v1::CreateNodeRequest Request(const std::string& name) {
  v1::CreateNodeRequest request;
  request.set_claim_name(name);
  request.mutable_spec()->set_instance_type("Standard_NC24ads_A100_v4");
  request.mutable_spec()->set_disk_size_gib(256);
  (*request.mutable_spec()->mutable_labels())["kaito.sh/workspace"] = "bench";
  return request;
}

}  // namespace

json RunAzureBench(const AzureBenchOptions& options) {
  const fakearm::FakeArmOptions fake_options;  // Its identities (the defaults).
  // kaito-fake-arm as a child process, so that the threads and memory measured here are
  // the provider's alone.
  const std::string port_file = (std::filesystem::temp_directory_path() /
                                 absl::StrCat("kaito-bench-fake-arm-", getpid(), ".port"))
                                    .string();
  ChildProcess fake;
  if (absl::Status s = fake.Start(
          {SelfDir() + "/kaito-fake-arm", "--listen", "127.0.0.1:0", "--port-file", port_file,
           "--latency", absl::FormatDuration(options.latency), "--prov-delay",
           absl::FormatDuration(options.operation), "--poll-retry-after", "1", "--vcpu-quota",
           "standardNCADSA100v4Family=1000000", "--vcpu-quota", "cores=1000000", "--workers",
           std::to_string(std::max(64, options.claims * 3)), "--log-level", "warn"},
          port_file, absl::Seconds(20));
      !s.ok()) {
    return {{"error", s.ToString()}};
  }
  const std::string fake_url = "http://127.0.0.1:" + std::to_string(fake.port());
  httplib::Client control("127.0.0.1", fake.port());
  control.set_read_timeout(60, 0);

  auto clock = std::make_unique<RealClock>();
  auto http = std::make_unique<http::CurlHttpClient>();
  azure::CredentialConfig credential_config;
  credential_config.kind = azure::CredentialKind::kClientSecret;
  credential_config.tenant_id = fake_options.tenant_id;
  credential_config.client_id = fake_options.client_id;
  credential_config.client_secret = fake_options.client_secret;
  credential_config.authority_host = fake_url;
  auto credential = azure::AzureCredential::Create(credential_config, http.get(), clock.get());
  azure::ArmClientOptions arm_options;
  arm_options.requests_per_second = options.requests_per_second;
  arm_options.burst = options.burst;
  arm_options.max_concurrency = std::max(64, options.claims * 2);
  auto arm = azure::ArmClient::Create(arm_options, http.get(), clock.get(), credential);
  azure::AzureProviderOptions provider_options;
  provider_options.arm_endpoint = fake_url;
  provider_options.subscription_id = fake_options.subscription_id;
  provider_options.resource_group = fake_options.resource_group;
  provider_options.cluster_name = fake_options.cluster_name;
  provider_options.location = fake_options.location;
  provider_options.poll_interval = absl::Seconds(1);
  auto provider = azure::AzureProvider::Create(provider_options, arm, clock.get());

  // Creates `names` at once and returns each one's create-to-Running seconds (negative: it
  // never ran within the deadline). Samples threads and RSS while they are in flight.
  int max_threads = 0;
  int64_t max_rss = 0;
  auto run = [&](const std::vector<std::string>& names) {
    std::vector<double> seconds(names.size(), -1);
    const absl::Time start = absl::Now();
    for (const std::string& name : names) {
      provider->CreateNode(Request(name), [](absl::StatusOr<v1::ProvisionedNode>) {});
    }
    const absl::Time deadline = start + absl::Minutes(5) + options.operation * 4;
    size_t done = 0;
    int rounds = 0;
    while (done < names.size() && absl::Now() < deadline) {
      for (size_t i = 0; i < names.size(); ++i) {
        if (seconds[i] >= 0) continue;
        provider->GetNode(names[i], [&, i](absl::StatusOr<v1::ProvisionedNode> node) {
          if (node.ok() && node->phase() == "Running") {
            seconds[i] = absl::ToDoubleSeconds(absl::Now() - start);
            ++done;
          }
        });
      }
      if (++rounds % 10 == 0) {
        auto [threads, rss] = ThreadsAndRssKiB();
        max_threads = std::max(max_threads, threads);
        max_rss = std::max(max_rss, rss);
      }
      // Each claim's time is known to within this step (about 0.2 % of a create).
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return seconds;
  };
  // The fake's own time for one claim created alone: its requests' server time plus the
  // waits it asked for (one Retry-After after the PUT and after each poll but the last).
  // With several claims, the same per claim on average.
  auto fake_own_seconds = [&](int claims) -> std::pair<double, int> {
    httplib::Result r = control.Get("/_fake/requests");
    if (!r || r->status != 200) return {0, 0};
    json entries = json::parse(r->body, nullptr, false);
    double ms = 0;
    int requests = 0, waits = 0;
    for (const json& e : entries) {
      const std::string op = e.value("op", "");
      if (op == "token") continue;  // Cached after the warm-up.
      ms += e.value("latency_ms", 0.0);
      ++requests;
      if (op == "pool.put" || op == "op.poll") ++waits;
    }
    return {(ms / 1000.0 + std::max(0, waits - claims) * 1.0) / claims, requests / claims};
  };

  provider->Start([](absl::Status) {});
  // Warm-up: the token, the node resource group and the usages are read once.
  if (run({"wsbench00000"})[0] < 0) return {{"error", "the warm-up claim never ran"}};
  control.Delete("/_fake/requests");
  // Past the usages cache, so the single claim reads them as the first of a burst does.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double single = run({"wsbench00001"})[0];
  const auto [fake_own, requests_per_claim] = fake_own_seconds(1);
  if (single < 0 || fake_own <= 0) return {{"error", "the single claim never ran"}};

  const auto [threads_before, rss_before] = ThreadsAndRssKiB();
  max_threads = threads_before;
  max_rss = rss_before;
  std::vector<std::string> names;
  for (int i = 0; i < options.claims; ++i) names.push_back(absl::StrFormat("wsc%09d", i));
  control.Delete("/_fake/requests");
  const std::vector<double> times = run(names);
  const auto [fake_own_concurrent, requests_concurrent] = fake_own_seconds(options.claims);
  if (const char* dump = std::getenv("KAITO_BENCH_JOURNAL"); dump != nullptr) {
    if (httplib::Result r = control.Get("/_fake/requests")) std::ofstream(dump) << r->body;
  }
  const int converged =
      static_cast<int>(std::count_if(times.begin(), times.end(), [](double t) { return t >= 0; }));
  const azure::ArmClientStats stats = arm->stats();

  auto added = [&](double t) { return (t - fake_own) / fake_own; };
  json out;
  out["config"] = {{"claims", options.claims},
                   {"latency_ms", absl::ToDoubleMilliseconds(options.latency)},
                   {"operation_s", absl::ToDoubleSeconds(options.operation)},
                   {"requests_per_second", options.requests_per_second},
                   {"burst", options.burst}};
  out["single"] = {{"create_to_running_s", single},
                   {"fake_own_s", fake_own},
                   {"requests", requests_per_claim},
                   {"added_fraction", added(single)}};
  out["concurrent"] = {{"converged", converged},
                       {"p50_s", Percentile(times, 0.5)},
                       {"p95_s", Percentile(times, 0.95)},
                       {"max_s", Percentile(times, 1.0)},
                       {"added_fraction_p50", added(Percentile(times, 0.5))},
                       {"added_fraction_max", added(Percentile(times, 1.0))},
                       {"fake_own_s_mean", fake_own_concurrent},
                       {"requests_per_claim", requests_concurrent},
                       {"threads_before", threads_before},
                       {"threads_max", max_threads},
                       {"rss_before_kib", rss_before},
                       {"rss_max_kib", max_rss},
                       {"rss_per_claim_kib",
                        static_cast<double>(max_rss - rss_before) / std::max(1, options.claims)},
                       {"arm_requests", stats.requests},
                       {"arm_retries", stats.retries},
                       {"arm_throttled", stats.throttled}};
  provider->Stop();
  arm->Stop();
  clock.reset();
  http.reset();
  fake.Stop();
  std::filesystem::remove(port_file);
  return out;
}

}  // namespace kaito::bench
