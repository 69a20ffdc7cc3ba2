// kaito-fake-arm: a fake Azure Resource Manager, AAD and IMDS for testing the Azure
// provider (see tools/fake-arm/fake_arm.h). Prints "kaito-fake-arm listening on port N" on
// stdout once it serves; SIGTERM or SIGINT stop it.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "common/tls.h"
#include "common/version.h"
#include "tools/fake-arm/fake_arm.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "kaito-fake-arm: %s\n", message.c_str());
  return 2;
}

// `text` as a non-negative duration ("2s", "500ms", "0"); false when it is not one.
bool ParseDelay(const std::string& text, absl::Duration* out) {
  return absl::ParseDuration(text, out) && *out >= absl::ZeroDuration();
}

}  // namespace

int main(int argc, char** argv) {
  kaito::DisableMutexDeadlockDetection();
  kaito::fakearm::FakeArmOptions options;
  std::string listen = "127.0.0.1:0", port_file, log_level = "info", log_format = "text";
  std::string prov_delay = "2s", upd_delay = "1s", del_delay = "1s", token_ttl = "3599s",
              latency = "0ms";
  std::vector<std::string> quotas;

  CLI::App app{"kaito-fake-arm: a fake Azure Resource Manager, AAD and IMDS for tests"};
  app.set_version_flag("--version", kaito::Version());
  app.add_option("--listen", listen, "HOST:PORT to serve on (port 0 = any free port)")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "Write the chosen port to this file");
  app.add_option("--tenant-id", options.tenant_id, "The AAD tenant")->capture_default_str();
  app.add_option("--client-id", options.client_id, "The one application client id")
      ->capture_default_str();
  app.add_option("--client-secret", options.client_secret, "Its client secret")
      ->capture_default_str();
  app.add_option("--federated-token-file", options.federated_token_file,
                 "A client_assertion must equal this file's content (re-read at each request); "
                 "unset: any non-empty assertion");
  app.add_option("--managed-identity-client-id", options.managed_identity_client_id,
                 "The IMDS identity's client id (empty: any or none)");
  app.add_option("--subscription-id", options.subscription_id, "")->capture_default_str();
  app.add_option("--resource-group", options.resource_group, "")->capture_default_str();
  app.add_option("--cluster-name", options.cluster_name, "")->capture_default_str();
  app.add_option("--location", options.location, "")->capture_default_str();
  app.add_option("--api-version", options.api_versions,
                 "api-version accepted on the managed cluster and agent pool routes "
                 "(repeatable)")
      ->capture_default_str();
  app.add_option("--prov-delay", prov_delay, "How long a pool create takes")->capture_default_str();
  app.add_option("--upd-delay", upd_delay, "How long a pool update takes")->capture_default_str();
  app.add_option("--del-delay", del_delay, "How long a pool delete takes")->capture_default_str();
  app.add_option("--poll-retry-after", options.poll_retry_after_s,
                 "Retry-After seconds of PUT, DELETE and poll responses (0 = omitted)")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));
  app.add_option("--token-ttl", token_ttl, "Lifetime of issued tokens")->capture_default_str();
  app.add_option("--list-page-size", options.list_page_size,
                 "Agent pools per page of a list (0 = one page)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--latency", latency, "Added to every response")->capture_default_str();
  app.add_option("--vcpu-quota", quotas,
                 "FAMILY=N vCPU limit (repeatable; cores=N is the regional total; unset = 1000)");
  app.add_option("--seed", options.seed, "Seed of fault rules' probability")->capture_default_str();
  app.add_option("--workers", options.workers,
                 "Connections served at once (each sleeping --latency holds one)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--tls-cert-file", options.tls.cert_file, "PEM certificate: serve HTTPS");
  app.add_option("--tls-key-file", options.tls.key_file, "PEM private key of --tls-cert-file");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (absl::Status s = kaito::SetupLogging(log_level, log_format, "kaito-fake-arm"); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  struct {
    const char* flag;
    const std::string* text;
    absl::Duration* out;
  } durations[] = {{"--prov-delay", &prov_delay, &options.prov_delay},
                   {"--upd-delay", &upd_delay, &options.upd_delay},
                   {"--del-delay", &del_delay, &options.del_delay},
                   {"--token-ttl", &token_ttl, &options.token_ttl},
                   {"--latency", &latency, &options.latency}};
  for (const auto& d : durations) {
    if (!ParseDelay(*d.text, d.out)) {
      return Fail(std::string(d.flag) + " \"" + *d.text +
                  "\": expected a duration such as 2s, 500ms or 0");
    }
  }
  if (options.token_ttl < absl::Seconds(1)) return Fail("--token-ttl must be at least 1s");
  for (const std::string& quota : quotas) {
    const size_t eq = quota.find('=');
    int64_t limit = -1;
    if (eq == std::string::npos || eq == 0 || !absl::SimpleAtoi(quota.substr(eq + 1), &limit) ||
        limit < 0) {
      return Fail("--vcpu-quota \"" + quota +
                  "\": expected FAMILY=N, e.g. "
                  "standardNCADSA100v4Family=48 or cores=100");
    }
    options.vcpu_quota[quota.substr(0, eq)] = limit;
  }
  if (options.api_versions.empty()) return Fail("--api-version needs at least one version");
  if (absl::Status s = kaito::CheckTlsServerFiles(options.tls); !s.ok()) {
    return Fail(std::string(s.message()));
  }

  kaito::TerminationSignals signals;
  kaito::fakearm::FakeArm fake(options);
  if (absl::Status s = fake.Start(listen); !s.ok()) {
    spdlog::critical("{}", s.ToString());
    return 1;
  }
  if (!port_file.empty() && !kaito::WritePortFile(port_file, fake.port())) {
    spdlog::critical("cannot write --port-file {}", port_file);
    return 1;
  }
  std::printf("kaito-fake-arm listening on port %d\n", fake.port());
  std::fflush(stdout);
  spdlog::info("kaito-fake-arm {} serving {} (subscription {}, cluster {}/{}, {})",
               kaito::Version(), fake.base_url(), options.subscription_id, options.resource_group,
               options.cluster_name, options.location);
  const int sig = signals.Wait();
  spdlog::info("signal {}: stopping", sig);
  fake.Stop();
  return 0;
}
