// The inside of kaito-fake-arm: request classification, the pipeline every request goes
// through, and the handlers (fake_arm_server.cc: pipeline and ARM; fake_arm_identity.cc:
// AAD and IMDS; fake_arm_control.cc: `/_fake/*`). Threading: cpp-httplib's workers call
// `Serve` concurrently; all state is behind `mu_`, held for the whole of one request's
// decision (never across a sleep, a file read or the socket write).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "presets/catalog.h"
#include "tools/fake-arm/agent_pool_model.h"
#include "tools/fake-arm/arm_wire.h"
#include "tools/fake-arm/fake_arm.h"
#include "tools/fake-arm/fault_rules.h"
#include "tools/fake-arm/request_journal.h"
#include "tools/fake-arm/throttle.h"
#include "tools/fake-arm/token_registry.h"
#include "tools/fake-arm/vm_size_table.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace kaito::fakearm {

// What a request addresses, from its method and path (ARM literals compared
// case-insensitively).
struct Route {
  enum Kind {
    kTokenV2,              // POST /{tenant}/oauth2/v2.0/token
    kTokenV1,              // POST /{tenant}/oauth2/token
    kOpenIdConfiguration,  // GET /{tenant}/v2.0/.well-known/openid-configuration
    kInstanceDiscovery,    // GET /common/discovery/instance
    kImdsToken,            // GET /metadata/identity/oauth2/token
    kImdsInstance,         // GET /metadata/instance[/path]
    kCluster,              // {CL}
    kPoolList,             // {CL}/agentPools
    kPool,                 // {CL}/agentPools/{pool}
    kOperation,  // /subscriptions/{s}/providers/Microsoft.ContainerService/locations/{l}/operations/{id}
    kOperationResult,  // .../operationresults/{id}
    kVmssList,         // {NRG}/providers/Microsoft.Compute/virtualMachineScaleSets
    kVmList,           // .../virtualMachineScaleSets/{vmss}/virtualMachines
    kUsages,           // /subscriptions/{s}/providers/Microsoft.Compute/locations/{l}/usages
    kArmOther,         // any other /subscriptions/... path
    kControl,          // /_fake/...
    kUnknown,
  };
  Kind kind = kUnknown;
  std::string op = "other";  // The journal's op (KnownOps()); "other" when the method does not fit.
  std::string tenant;
  std::string subscription;
  std::string resource_group;  // Also the node resource group of the Compute routes.
  std::string cluster;
  std::string pool;
  std::string location;
  std::string operation_id;
  std::string vmss;
  std::vector<std::string> rest;  // IMDS path under /metadata/instance; control path under /_fake.
};
Route ClassifyRoute(const std::string& method, const std::string& path);

// A response as handlers build it; `Write` puts it on the wire.
struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = kJsonContentType;
  std::vector<std::pair<std::string, std::string>> headers;

  // Replaces a header of the same name (case-insensitively).
  void SetHeader(const std::string& name, const std::string& value);
  bool HasHeader(const std::string& name) const;
  static Reply WithJson(int status, const Json& body);
  // The ARM error body with `x-ms-error-code`.
  static Reply Arm(const ArmError& error);
};

// The settings `/_fake/config` reads and writes.
struct FakeArmConfig {
  absl::Duration prov_delay;
  absl::Duration upd_delay;
  absl::Duration del_delay;
  int64_t poll_retry_after_s = 1;
  absl::Duration token_ttl;
  int64_t list_page_size = 0;
  absl::Duration latency;
  std::string quota_mode = "sync";          // sync | async | off
  std::map<std::string, int64_t> quotas;    // family or "cores" as given -> vCPU limit
  std::string delete_creating = "preempt";  // preempt | conflict
  std::string delete_absent = "204";        // 204 | 404

  static FakeArmConfig FromOptions(const FakeArmOptions& options);
  Json ToJson() const;
  // Applies the fields `body` names (any subset). InvalidArgument, naming the field, for
  // an unknown field or a bad value; nothing changes then. A quota set to null goes back
  // to the default.
  absl::Status Apply(const Json& body);
  PoolPolicy Policy() const;
};

class FakeArmServer {
 public:
  FakeArmServer(FakeArmOptions options, const presets::Catalog& catalog, Clock* clock);

  // Adds the routes and the error handler to `http`.
  void Register(httplib::Server& http);
  // The bound port: the operation URLs' fallback host when a request has no Host header.
  void set_port(int port) { port_ = port; }
  std::string base_url() const;

 private:
  // One request as the handlers see it.
  struct Incoming {
    const httplib::Request* http = nullptr;
    Route route;
    std::string base_url;  // scheme://host:port as the client addressed the fake
    Moment now;
    // The content of --federated-token-file, read before locking (token routes only);
    // `federated_error` says why it could not be read.
    std::optional<std::string> federated_assertion;
    std::string federated_error;
    std::string principal;  // The bearer token's client, when the token is known.
    RequestFacts facts;     // As fault rules match the request.
  };

  void Serve(const httplib::Request& req, httplib::Response& res);
  // The fake's answer to a request that is not a `/_fake` one, with `action` from the
  // rules that fired; the caller holds `mu_`.
  Reply ServeLocked(Incoming& in, const FaultAction& action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The answer of a rule with `status`: no state changes.
  Reply FaultReply(const Incoming& in, const FaultAction& action) const;
  // Fills `in.facts` and `in.principal`.
  void FactsLocked(Incoming& in) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fills {pool}, {vm_size}, {location}, {subscription} and {client} in injected text.
  std::string Expand(const std::string& text, const Incoming& in) const;
  Moment Now() const { return Moment{clock_->Now(), clock_->Monotonic()}; }
  static void Write(const Reply& reply, const FaultAction& action, const std::string& method,
                    httplib::Response& res);

  // ARM (fake_arm_server.cc).
  Reply ServeArmLocked(Incoming& in, const FaultAction& action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The bearer token's principal, or the 401 to answer.
  std::optional<Reply> AuthenticateLocked(Incoming& in) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply PoolPutLocked(Incoming& in, const FaultAction& action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply PoolGetLocked(const Incoming& in) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply PoolListLocked(const Incoming& in) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply PoolDeleteLocked(Incoming& in, const FaultAction& action)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply OperationLocked(const Incoming& in, bool result_form) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply VmssListLocked(const Incoming& in) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply VmListLocked(const Incoming& in) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply UsagesLocked(const Incoming& in) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply ClusterLocked(const Incoming& in) const;
  // "{base}/subscriptions/{s}/providers/Microsoft.ContainerService/locations/{l}/{kind}/{id}
  // ?api-version=2016-03-30".
  std::string OperationUrl(const Incoming& in, const char* kind, const std::string& id) const;
  void AddRetryAfterLocked(Reply& reply) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The lro_fail and stick_in_progress parts of `action`, messages expanded.
  OperationFaults FaultsFor(const FaultAction& action, const Incoming& in) const;

  // AAD and IMDS (fake_arm_identity.cc).
  Reply TokenLocked(const Incoming& in, bool v1) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply ImdsTokenLocked(const Incoming& in) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply ImdsInstanceLocked(const Incoming& in) ABSL_SHARED_LOCKS_REQUIRED(mu_);
  Reply OpenIdConfiguration(const Incoming& in) const;
  Reply InstanceDiscovery(const Incoming& in) const;
  Reply AadError(const Incoming& in, int status, const std::string& error, int aadsts,
                 const std::string& description);

  // The control API (fake_arm_control.cc).
  Reply ServeControl(const Incoming& in);
  Reply PresetLocked(const std::string& name, const Json& params, absl::Duration now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reply PoolActionLocked(const std::string& pool, const std::string& action, const Json& body,
                         Moment now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Json StateLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void ResetLocked(Moment now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FakeArmOptions options_;
  const ClusterIdentity identity_;
  Clock* const clock_;
  const VmSizeTable sizes_;
  const absl::Duration started_;  // Monotonic: the journal's t_ms origin.
  UuidSource uuids_;
  int port_ = 0;

  mutable absl::Mutex mu_;
  FakeArmConfig config_ ABSL_GUARDED_BY(mu_);
  AgentPoolModel pools_ ABSL_GUARDED_BY(mu_);
  FaultRules faults_ ABSL_GUARDED_BY(mu_);
  Throttle throttle_ ABSL_GUARDED_BY(mu_);
  TokenRegistry tokens_ ABSL_GUARDED_BY(mu_);
  RequestJournal journal_ ABSL_GUARDED_BY(mu_);
  Json imds_document_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::fakearm
