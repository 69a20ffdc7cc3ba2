// kaito-fake-arm: a fake Azure Resource Manager, AAD token endpoint and IMDS in one
// process, for testing the Azure provider without Azure (the contract is
// docs/fake-arm.md; the background §2-§6 of shared/reference/azure-arm.md). It serves
// one AKS cluster's agent pools with their long-running operations, the Compute views of
// their VMs and quota, tokens for client secrets, federated assertions and managed
// identity, fault injection, throttling and a request journal (`/_fake/*`, no auth).
// Everything is in memory. It is test infrastructure: never point real credentials at it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/tls.h"

namespace kaito {
class HttpListener;
}

namespace kaito::fakearm {

class FakeArmServer;

// Every flag of the binary. The timing and policy fields are the initial values of
// `/_fake/config`, which tests may change at run time.
struct FakeArmOptions {
  std::string tenant_id = "fake-tenant";
  std::string client_id = "fake-client";
  std::string client_secret = "fake-secret";
  // When set, a client_assertion must equal this file's content (re-read at each token
  // request; a trailing newline in the file is ignored). Else any non-empty assertion.
  std::string federated_token_file;
  // When set, an IMDS token request naming another client_id is refused; empty accepts
  // any client_id or none.
  std::string managed_identity_client_id;
  std::string subscription_id = "fake-sub";
  std::string resource_group = "fake-rg";
  std::string cluster_name = "fake-aks";
  std::string location = "eastus";
  // api-versions accepted on the managed cluster and agent pool routes.
  std::vector<std::string> api_versions = {"2024-01-01"};
  absl::Duration prov_delay = absl::Seconds(2);
  absl::Duration upd_delay = absl::Seconds(1);
  absl::Duration del_delay = absl::Seconds(1);
  // Seconds in the Retry-After of PUT, DELETE and poll responses; 0 omits the header.
  int poll_retry_after_s = 1;
  absl::Duration token_ttl = absl::Seconds(3599);
  // Agent pools per page of a list; 0 = one page.
  int list_page_size = 0;
  // Added to every response (not to `/_fake/*`).
  absl::Duration latency = absl::ZeroDuration();
  // vCPU limits by quota family ("standardNCADSA100v4Family") or "cores" (the regional
  // total); unset ones are 1000.
  std::map<std::string, int64_t> vcpu_quota;
  // Seeds the generator of fault rules' `probability`.
  uint64_t seed = 1;
  // HTTPS when set (the operation URLs then say https).
  TlsServerFiles tls;
  // Wall and monotonic time; null = the system clock. Not owned; must outlive the fake.
  // Injected delays (`delay_ms`, `latency`) always sleep in real time.
  Clock* clock = nullptr;
  // Connections served at once (each sleeping `delay_ms` holds one).
  int workers = 32;
};

class FakeArm {
 public:
  explicit FakeArm(FakeArmOptions options);
  ~FakeArm();
  FakeArm(const FakeArm&) = delete;
  FakeArm& operator=(const FakeArm&) = delete;

  // Binds `listen` (HOST:PORT, port 0 = any free port) and serves on a thread of its own.
  // Fails when the port cannot be bound or the embedded SKU catalog does not load.
  absl::Status Start(const std::string& listen = "127.0.0.1:0");
  // The bound port; 0 before `Start`.
  int port() const;
  // "http://127.0.0.1:PORT" (https with TLS): what ARM_ENDPOINT, AZURE_AUTHORITY_HOST and
  // IMDS_ENDPOINT of the code under test point at.
  std::string base_url() const;
  // Stops accepting and waits for requests in flight. Idempotent.
  void Stop();

 private:
  FakeArmOptions options_;
  std::unique_ptr<FakeArmServer> server_;
  std::unique_ptr<HttpListener> listener_;
  std::unique_ptr<RealClock> own_clock_;
};

}  // namespace kaito::fakearm
