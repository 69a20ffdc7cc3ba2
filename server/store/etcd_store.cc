#include "server/store/etcd_store.h"

#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <netdb.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/backoff.h"

namespace kaito::server::store {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::WatchRequest;
using etcdserverpb::WatchResponse;

// Ours are etcd's minus one (a fresh etcd is at revision 1).
int64_t Ours(int64_t etcd_revision) { return std::max<int64_t>(etcd_revision - 1, 0); }
int64_t Etcd(int64_t our_revision) { return our_revision + 1; }

// Raises `mark` to `to` unless it is already there or past (revision marks only go up).
void RaiseTo(std::atomic<int64_t>& mark, int64_t to) {
  int64_t seen = mark.load();
  while (to > seen && !mark.compare_exchange_weak(seen, to)) {
  }
}

constexpr int64_t kListPage = 500;

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  const std::string message = "etcd " + what + ": " + s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
      return absl::UnavailableError(message);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return absl::ResourceExhaustedError(message);
    case grpc::StatusCode::OUT_OF_RANGE:
      return absl::OutOfRangeError(message);
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(message);
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

// A failure that means etcd cannot take writes now (as opposed to a rejected request).
bool IsOutage(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsResourceExhausted(s);
}

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(std::string(flag) + " " + path + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "HOST:PORT" to "A.B.C.D:PORT" (resolved once, at start).
absl::StatusOr<std::string> Resolve(const std::string& endpoint) {
  const size_t colon = endpoint.rfind(':');
  const std::string host = endpoint.substr(0, colon);
  const std::string port = endpoint.substr(colon + 1);
  in_addr literal{};
  if (inet_pton(AF_INET, host.c_str(), &literal) == 1) return endpoint;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0 || !found) {
    return absl::UnavailableError("etcd endpoint " + endpoint + ": cannot resolve " + host + ": " +
                                  gai_strerror(rc));
  }
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr, text, sizeof(text));
  freeaddrinfo(found);
  return std::string(text) + ":" + port;
}

KeyValue FromEtcd(const mvccpb::KeyValue& kv, size_t prefix_size) {
  KeyValue out;
  out.key = kv.key().substr(std::min(prefix_size, kv.key().size()));
  out.value = kv.value();
  out.create_revision = Ours(kv.create_revision());
  out.mod_revision = Ours(kv.mod_revision());
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(const std::string& url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "etcd://")) {
    return absl::InvalidArgumentError("--store " + url + ": an etcd store is etcd://HOST:PORT,...");
  }
  std::vector<std::string> parts = absl::StrSplit(rest, ',');
  std::vector<std::string> endpoints;
  for (const std::string& part : parts) {
    const size_t colon = part.rfind(':');
    int port = 0;
    if (part.empty() || colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(part.substr(colon + 1), &port) || port < 1 || port > 65535) {
      return absl::InvalidArgumentError("--store " + url + ": endpoint \"" + part +
                                        "\" is not HOST:PORT with a port from 1 to 65535");
    }
    endpoints.push_back(part);
  }
  return endpoints;
}

namespace {

// Whether the election key read back by a fenced transaction's failure branch (its second
// response) is still the one the fence names.
bool FenceHolds(const etcdserverpb::TxnResponse& response, const WriteFence& fence) {
  if (response.responses_size() < 2) return false;
  const auto& range = response.responses(1).response_range();
  return range.kvs_size() > 0 && range.kvs(0).create_revision() == fence.create_revision;
}

// gRPC 1.51 runs the client callback API on a shared completion queue with threads of its
// own, created with the first channel that makes a callback call and deleted with the last
// one. When that last reference goes from one of those threads (a store destroyed while a
// transaction's completion still held its channel), the queue's threads cannot join
// themselves and the queue is deleted under them: a crash in grpc_completion_queue_next
// (gRPC pull request 32584 tells the story). One channel that made a callback call and is
// never destroyed keeps the queue for the life of the process.
void KeepCallbackQueue() {
  static const bool kept = [] {
    auto* channel = new std::shared_ptr<grpc::Channel>(grpc::CreateChannel(
        "unix:/nonexistent/kaito-grpc-keeper", grpc::InsecureChannelCredentials()));
    struct Probe {
      grpc::ClientContext context;
      etcdserverpb::RangeRequest request;
      etcdserverpb::RangeResponse response;
    };
    auto* stub = etcdserverpb::KV::NewStub(*channel).release();
    auto* probe = new Probe;
    probe->context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1));
    // Its answer (an error) is of no interest; the objects live as long as the process.
    stub->async()->Range(&probe->context, &probe->request, &probe->response, [](grpc::Status) {});
    return true;
  }();
  (void)kept;
}

}  // namespace

// One write on the wire.
struct EtcdStore::Call {
  grpc::ClientContext context;
  TxnRequest request;
  etcdserverpb::TxnResponse response;
  std::string key;  // Ours.
  int64_t expected_revision;
  bool is_delete;
  // The leader fence the write was sent under (see WriteFence); empty key for none.
  WriteFence fence;
  WriteCallback done;
  std::chrono::steady_clock::time_point sent;
};

class EtcdStore::Handle : public WatchHandle {
 public:
  Handle(EtcdStore* store, int64_t id) : store_(store), id_(id) {}
  ~Handle() override { store_->CancelWatcher(id_); }

 private:
  EtcdStore* store_;
  int64_t id_;
};

EtcdStore::EtcdStore(EtcdStoreOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(const EtcdStoreOptions& options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("etcd: no endpoints");
  KeepCallbackQueue();
  std::unique_ptr<EtcdStore> store(new EtcdStore(options));
  if (absl::Status s = store->Connect(); !s.ok()) return s;
  store->watch_thread_ = std::thread([s = store.get()] { s->WatchLoop(); });
  store->probe_thread_ = std::thread([s = store.get()] { s->ProbeLoop(); });
  return store;
}

absl::Status EtcdStore::Connect() {
  std::vector<std::string> addresses;
  for (const std::string& endpoint : options_.endpoints) {
    auto address = Resolve(endpoint);
    if (!address.ok()) return address.status();
    addresses.push_back(*address);
  }
  grpc::ChannelArguments args;
  // Notice a member that went away while idle, so the next call fails over at once.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Reconnect to a member that comes back within 5 s of its return. gRPC's default backoff
  // grows to 120 s, so a replica whose only reachable member was down for a while (and its
  // leader election, which shares this channel) stayed cut off long after the member was back.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  const bool tls = !options_.ca_file.empty() || !options_.cert_file.empty();
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options_.ca_file.empty()) {
      auto ca = ReadFile(options_.ca_file, "--etcd-cafile");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    if (options_.cert_file.empty() != options_.key_file.empty()) {
      return absl::InvalidArgumentError("--etcd-certfile and --etcd-keyfile go together");
    }
    if (!options_.cert_file.empty()) {
      auto cert = ReadFile(options_.cert_file, "--etcd-certfile");
      if (!cert.ok()) return cert.status();
      auto key = ReadFile(options_.key_file, "--etcd-keyfile");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    credentials = grpc::SslCredentials(ssl);
    // Certificates name the members as the endpoints were written, not as resolved.
    const std::string& first = options_.endpoints.front();
    args.SetSslTargetNameOverride(first.substr(0, first.rfind(':')));
  } else if (!options_.key_file.empty()) {
    return absl::InvalidArgumentError("--etcd-keyfile needs --etcd-certfile");
  }
  // One channel over every member: pick_first connects to the first that answers and moves
  // to the next when it goes away.
  channel_ = grpc::CreateCustomChannel("ipv4:" + absl::StrJoin(addresses, ","), credentials, args);
  kv_ = etcdserverpb::KV::NewStub(channel_);
  watch_ = etcdserverpb::Watch::NewStub(channel_);

  RangeRequest probe;
  probe.set_key(RangeStart(""));
  probe.set_range_end(RangeEnd(""));
  probe.set_count_only(true);
  grpc::ClientContext context;
  context.set_wait_for_ready(true);
  context.set_deadline(std::chrono::system_clock::now() + options_.connect_timeout);
  RangeResponse response;
  grpc::Status s = kv_->Range(&context, probe, &response);
  if (!s.ok() && s.error_code() != grpc::StatusCode::UNAVAILABLE &&
      s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
    return FromGrpc(s, absl::StrJoin(options_.endpoints, ","));
  }
  if (!s.ok()) {
    return absl::UnavailableError(
        "etcd " + absl::StrJoin(options_.endpoints, ",") + ": no member answered within " +
        std::to_string(options_.connect_timeout.count()) + " ms: " + s.error_message());
  }
  NoteRevision(response.header().revision());
  auto compacted = FindCompactedRevision();
  if (!compacted.ok()) return compacted.status();
  compacted_revision_ = *compacted;
  return absl::OkStatus();
}

EtcdStore::~EtcdStore() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  {
    std::lock_guard<std::mutex> wake(wake_mu_);
    wake_.notify_all();
  }
  {
    std::lock_guard<std::mutex> stream(stream_mu_);
    if (stream_context_) stream_context_->TryCancel();
  }
  if (watch_thread_.joinable()) watch_thread_.join();
  if (probe_thread_.joinable()) probe_thread_.join();
  std::vector<PendingAck> acks;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int64_t* in_flight) { return *in_flight == 0; }, &in_flight_));
    acks.swap(pending_);
  }
  // Durable in etcd; no watch is left to wait for.
  for (PendingAck& ack : acks) std::move(ack.done)(ack.revision);
}

std::string EtcdStore::RangeEnd(const std::string& prefix) const {
  std::string end = Key(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // Every key.
}

std::unique_ptr<grpc::ClientContext> EtcdStore::NewContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  // Wait out a failover to another member instead of failing at once; the deadline bounds it.
  context->set_wait_for_ready(true);
  context->set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
  return context;
}

void EtcdStore::NoteRevision(int64_t etcd_revision) {
  RaiseTo(current_revision_, Ours(etcd_revision));
}

int64_t EtcdStore::CurrentRevision() { return current_revision_.load(); }
int64_t EtcdStore::CompactedRevision() { return compacted_revision_.load(); }

void EtcdStore::SetProblem(const std::string& problem) {
  absl::MutexLock lock(&mu_);
  if (problem == problem_) return;
  const bool changed = problem.empty() != problem_.empty();
  problem_ = problem;
  if (changed) {
    if (problem.empty()) {
      spdlog::info("store: etcd takes writes again");
    } else {
      spdlog::error("store: etcd cannot take writes: {}", problem);
    }
    if (health_listener_) health_listener_(problem_);
  }
  if (changed && !problem.empty()) {
    std::lock_guard<std::mutex> wake(wake_mu_);
    wake_.notify_all();
  }
}

std::string EtcdStore::WriteProblem() {
  absl::MutexLock lock(&mu_);
  return problem_;
}

void EtcdStore::OnWriteHealthChange(std::function<void(const std::string& problem)> listener) {
  absl::MutexLock lock(&mu_);
  health_listener_ = std::move(listener);
}

EtcdStore::Stats EtcdStore::stats() {
  absl::MutexLock lock(&mu_);
  Stats s = stats_;
  s.in_flight = in_flight_;
  return s;
}

// ---- Writes ----

void EtcdStore::Put(std::string key, std::string value, int64_t expected_revision,
                    WriteCallback done) {
  TxnRequest txn;
  const std::string etcd_key = Key(key);
  if (expected_revision == kMustNotExist) {
    Compare* c = txn.add_compare();
    c->set_key(etcd_key);
    c->set_target(Compare::CREATE);
    c->set_result(Compare::EQUAL);
    c->set_create_revision(0);
  } else if (expected_revision != kAnyRevision) {
    Compare* c = txn.add_compare();
    c->set_key(etcd_key);
    c->set_target(Compare::MOD);
    c->set_result(Compare::EQUAL);
    c->set_mod_revision(Etcd(expected_revision));
  }
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(etcd_key);
  put->set_value(std::move(value));
  txn.add_failure()->mutable_request_range()->set_key(etcd_key);
  Write(std::move(txn), std::move(key), expected_revision, /*is_delete=*/false, std::move(done));
}

void EtcdStore::Delete(std::string key, int64_t expected_revision, WriteCallback done) {
  TxnRequest txn;
  const std::string etcd_key = Key(key);
  Compare* c = txn.add_compare();
  c->set_key(etcd_key);
  c->set_target(Compare::MOD);
  if (expected_revision == kAnyRevision) {
    c->set_result(Compare::GREATER);  // The key exists.
    c->set_mod_revision(0);
  } else {
    c->set_result(Compare::EQUAL);
    c->set_mod_revision(Etcd(expected_revision));
  }
  txn.add_success()->mutable_request_delete_range()->set_key(etcd_key);
  txn.add_failure()->mutable_request_range()->set_key(etcd_key);
  Write(std::move(txn), std::move(key), expected_revision, /*is_delete=*/true, std::move(done));
}

void EtcdStore::Write(TxnRequest txn, std::string key, int64_t expected_revision, bool is_delete,
                      WriteCallback done) {
  bool closing;
  {
    absl::MutexLock lock(&mu_);
    closing = closing_;
    if (!closing) ++in_flight_;
  }
  if (closing) {
    std::move(done)(absl::UnavailableError("store is closed"));
    return;
  }
  const WriteFence* fence = CurrentWriteFence();
  if (fence != nullptr && fence->key.empty()) {
    // A fence that names no election key cannot be checked: refuse rather than write unfenced.
    {
      absl::MutexLock lock(&mu_);
      --in_flight_;
    }
    std::move(done)(absl::FailedPreconditionError((is_delete ? "delete " : "put ") + key +
                                                  ": the write fence names no election key"));
    return;
  }
  auto* call = new Call{};
  if (fence != nullptr) {
    // Only while the leader's election key is the one it created; the failure branch reads
    // it back so that a lost lease is told from a stale precondition.
    Compare* c = txn.add_compare();
    c->set_key(fence->key);
    c->set_target(Compare::CREATE);
    c->set_result(Compare::EQUAL);
    c->set_create_revision(fence->create_revision);
    txn.add_failure()->mutable_request_range()->set_key(fence->key);
    call->fence = *fence;
  }
  call->context.set_wait_for_ready(true);
  call->context.set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
  call->request = std::move(txn);
  call->key = std::move(key);
  call->expected_revision = expected_revision;
  call->is_delete = is_delete;
  call->done = std::move(done);
  call->sent = std::chrono::steady_clock::now();
  kv_->async()->Txn(&call->context, &call->request, &call->response,
                    [this, call](grpc::Status status) { OnTxnDone(call, status); });
}

void EtcdStore::OnTxnDone(Call* call, const grpc::Status& status) {
  std::unique_ptr<Call> owned(call);
  absl::StatusOr<int64_t> result;
  if (!status.ok()) {
    result = FromGrpc(status, call->is_delete ? "delete " + call->key : "put " + call->key);
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      result = absl::UnavailableError(std::string(result.status().message()) +
                                      " (etcd did not answer in time; the write may or may not "
                                      "have been applied)");
    }
    if (IsOutage(result.status())) SetProblem(std::string(result.status().message()));
  } else {
    NoteRevision(call->response.header().revision());
    SetProblem("");
    if (call->response.succeeded()) {
      result = Ours(call->response.header().revision());
    } else if (!call->fence.key.empty() && !FenceHolds(call->response, call->fence)) {
      result = absl::FailedPreconditionError((call->is_delete ? "delete " : "put ") + call->key +
                                             ": this replica no longer holds the leader lease (" +
                                             call->fence.key + "); nothing was written");
    } else {
      int64_t current_mod = 0;
      if (call->response.responses_size() > 0 &&
          call->response.responses(0).response_range().kvs_size() > 0) {
        current_mod = Ours(call->response.responses(0).response_range().kvs(0).mod_revision());
      }
      absl::Status failed =
          CheckPrecondition(call->key, current_mod, call->expected_revision, call->is_delete);
      if (failed.ok()) failed = absl::AbortedError("key " + call->key + " changed meanwhile");
      result = failed;
    }
  }
  std::vector<PendingAck> acks;
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    stats_.txn_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - call->sent).count());
    if (result.ok()) {
      ++stats_.writes;
      pending_.push_back(PendingAck{call->key, *result, std::move(call->done)});
      acks = TakeSatisfiedAcksLocked();
    } else if (IsOutage(result.status())) {
      ++stats_.failed_writes;
    }
  }
  if (result.ok()) MaybeCompact(*result);
  if (!result.ok()) std::move(call->done)(std::move(result));
  for (PendingAck& ack : acks) std::move(ack.done)(ack.revision);
}

void EtcdStore::MaybeCompact(int64_t revision) {
  const int64_t keep = options_.history_retention;
  if (keep <= 0 || revision - compacted_revision_.load() <= keep + keep / 4) return;
  bool idle = false;
  if (!compacting_.compare_exchange_strong(idle, true)) return;
  {
    absl::MutexLock lock(&mu_);
    if (closing_) {
      compacting_ = false;
      return;
    }
    ++in_flight_;  // The destructor waits for the answer.
  }
  struct CompactCall {
    grpc::ClientContext context;
    etcdserverpb::CompactionRequest request;
    etcdserverpb::CompactionResponse response;
  };
  auto* call = new CompactCall;
  const int64_t to = revision - keep;
  call->context.set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
  // History from our `to + 1` on stays (as Compact keeps it).
  call->request.set_revision(Etcd(to + 1));
  kv_->async()->Compact(
      &call->context, &call->request, &call->response, [this, call, to](grpc::Status s) {
        std::unique_ptr<CompactCall> owned(call);
        if (s.ok() || absl::StrContains(s.error_message(), "compacted")) {
          RaiseTo(compacted_revision_, to);
          spdlog::info("store: compacted etcd's history up to revision {} (keeping {})", to,
                       options_.history_retention);
        } else {
          spdlog::warn("store: compacting etcd's history up to revision {} failed: {}", to,
                       s.error_message());
        }
        compacting_ = false;
        absl::MutexLock lock(&mu_);
        if (s.ok()) ++stats_.compactions;
        --in_flight_;
      });
}

bool EtcdStore::CoveredLocked(const std::string& key, int64_t revision) const {
  for (const auto& [id, w] : watchers_) {
    if (!w.dead && w.catch_up_to == 0 && w.delivered < revision && HasPrefix(key, w.prefix)) {
      return false;
    }
  }
  return true;
}

std::vector<EtcdStore::PendingAck> EtcdStore::TakeSatisfiedAcksLocked() {
  std::vector<PendingAck> ready;
  if (pending_.empty()) return ready;
  auto keep = std::stable_partition(pending_.begin(), pending_.end(), [this](const PendingAck& a) {
    return !CoveredLocked(a.key, a.revision);
  });
  for (auto it = keep; it != pending_.end(); ++it) ready.push_back(std::move(*it));
  pending_.erase(keep, pending_.end());
  std::sort(ready.begin(), ready.end(),
            [](const PendingAck& a, const PendingAck& b) { return a.revision < b.revision; });
  return ready;
}

// ---- Reads ----

absl::StatusOr<RangeResponse> EtcdStore::Range(const RangeRequest& request) {
  auto context = NewContext();
  RangeResponse response;
  grpc::Status s = kv_->Range(context.get(), request, &response);
  if (!s.ok()) return FromGrpc(s, "range");
  NoteRevision(response.header().revision());
  return response;
}

absl::StatusOr<KeyValue> EtcdStore::Get(const std::string& key) {
  RangeRequest request;
  request.set_key(Key(key));
  auto response = Range(request);
  if (!response.ok()) return response.status();
  if (response->kvs_size() == 0) return absl::NotFoundError("key " + key + " not found");
  return FromEtcd(response->kvs(0), options_.key_prefix.size());
}

absl::StatusOr<ListResult> EtcdStore::List(const std::string& prefix) {
  ListResult result;
  RangeRequest request;
  request.set_key(RangeStart(prefix));
  request.set_range_end(RangeEnd(prefix));
  request.set_limit(kListPage);
  while (true) {
    auto page = Range(request);
    if (!page.ok()) return page.status();
    if (request.revision() == 0) {
      // Every page reads the revision of the first, so the list is one snapshot.
      request.set_revision(page->header().revision());
      result.revision = Ours(page->header().revision());
    }
    for (const mvccpb::KeyValue& kv : page->kvs()) {
      result.items.push_back(FromEtcd(kv, options_.key_prefix.size()));
    }
    if (!page->more() || page->kvs_size() == 0) break;
    request.set_key(page->kvs(page->kvs_size() - 1).key() + std::string(1, '\0'));
  }
  return result;
}

absl::StatusOr<int64_t> EtcdStore::FindCompactedRevision() {
  // etcd keeps the history at and after its compaction revision C: a read at revision x
  // fails with "compacted" exactly when x < C. Find C by bisection.
  auto readable = [this](int64_t etcd_revision) -> absl::StatusOr<bool> {
    RangeRequest request;
    request.set_key(RangeStart(""));
    request.set_range_end(RangeEnd(""));
    request.set_count_only(true);
    request.set_revision(etcd_revision);
    auto response = Range(request);
    if (response.ok()) return true;
    if (absl::IsOutOfRange(response.status()) &&
        absl::StrContains(response.status().message(), "compacted")) {
      return false;
    }
    return response.status();
  };
  RangeRequest now;  // Learn etcd's current revision: the upper bound.
  now.set_key(RangeStart(""));
  now.set_range_end(RangeEnd(""));
  now.set_count_only(true);
  if (auto r = Range(now); !r.ok()) return r.status();
  int64_t lo = 1, hi = Etcd(current_revision_.load());
  auto first = readable(lo);
  if (!first.ok()) return first.status();
  if (*first) return 0;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    auto ok = readable(mid);
    if (!ok.ok()) return ok.status();
    if (*ok) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  // etcd revision C holds our C - 1; a watch after ours C - 2 starts there.
  return std::max<int64_t>(lo - 2, 0);
}

absl::Status EtcdStore::Compact(int64_t revision) {
  if (revision <= compacted_revision_.load()) return absl::OkStatus();
  if (revision > current_revision_.load()) {
    return absl::OutOfRangeError("cannot compact the future");
  }
  // Keep etcd's history from our revision + 1 on, but etcd cannot compact past its own
  // current revision: then it keeps one revision more than asked, and our mark says the rest.
  etcdserverpb::CompactionRequest request;
  request.set_revision(std::min(Etcd(revision + 1), Etcd(current_revision_.load())));
  request.set_physical(true);
  auto context = NewContext();
  etcdserverpb::CompactionResponse response;
  grpc::Status s = kv_->Compact(context.get(), request, &response);
  if (!s.ok() && !absl::StrContains(s.error_message(), "compacted")) {
    return FromGrpc(s, "compact");
  }
  RaiseTo(compacted_revision_, revision);
  return absl::OkStatus();
}

// ---- Watches ----

WatchRequest EtcdStore::CreateRequest(int64_t id, const Watcher& w) const {
  WatchRequest request;
  auto* create = request.mutable_create_request();
  if (w.catch_up_to > 0) {  // Every key: see the event at catch_up_to, wherever it is.
    create->set_key(std::string(1, '\0'));
    create->set_range_end(std::string(1, '\0'));
  } else {
    create->set_key(RangeStart(w.prefix));
    create->set_range_end(RangeEnd(w.prefix));
  }
  create->set_start_revision(Etcd(w.delivered + 1));
  create->set_prev_kv(true);  // A delete event carries the last value.
  create->set_watch_id(id);
  return request;
}

bool EtcdStore::SendWatch(const WatchRequest& request) {
  // Caller holds stream_mu_.
  return stream_ && stream_->Write(request);
}

absl::StatusOr<std::unique_ptr<WatchHandle>> EtcdStore::Watch(const std::string& prefix,
                                                              int64_t after_revision,
                                                              WatchCallback callback) {
  if (after_revision < compacted_revision_.load()) {
    return absl::OutOfRangeError("history after revision " + std::to_string(after_revision) +
                                 " is compacted (compacted up to " +
                                 std::to_string(compacted_revision_.load()) + ")");
  }
  {
    // Another replica (or an operator) may have compacted etcd since we looked: read at the
    // first revision the watch needs (a revision etcd has not reached yet is no problem).
    RangeRequest probe;
    probe.set_key(RangeStart(prefix));
    probe.set_range_end(RangeEnd(prefix));
    probe.set_count_only(true);
    probe.set_revision(Etcd(after_revision + 1));
    auto response = Range(probe);
    if (!response.ok()) {
      if (absl::IsOutOfRange(response.status()) &&
          absl::StrContains(response.status().message(), "compacted")) {
        if (auto c = FindCompactedRevision(); c.ok()) {
          RaiseTo(compacted_revision_, *c);
        }
        return absl::OutOfRangeError("history after revision " + std::to_string(after_revision) +
                                     " is compacted in etcd");
      }
      if (!absl::StrContains(response.status().message(), "future revision")) {
        return response.status();
      }
    }
  }
  auto shared = std::make_shared<WatchCallback>(std::move(callback));
  // History first, delivered before Watch returns (as SQLite delivers its backlog): etcd
  // gives no sign that a watch has caught up, so a watch of every key replays up to the
  // current revision, which certainly has an event of its own, and ends there.
  const int64_t target = current_revision_.load();
  if (target > after_revision) {
    auto replay = AddWatcher(prefix, after_revision, shared, Etcd(target));
    if (!replay.ok()) return replay.status();
    CancelWatcher(*replay);
    after_revision = target;
  }
  auto id = AddWatcher(prefix, after_revision, shared, 0);
  if (!id.ok()) return id.status();
  return std::unique_ptr<WatchHandle>(new Handle(this, *id));
}

absl::StatusOr<int64_t> EtcdStore::AddWatcher(const std::string& prefix, int64_t after_revision,
                                              std::shared_ptr<WatchCallback> callback,
                                              int64_t catch_up_to) {
  int64_t id;
  {
    std::lock_guard<std::mutex> stream(stream_mu_);
    WatchRequest create;
    {
      absl::MutexLock lock(&mu_);
      if (closing_) return absl::UnavailableError("store is closed");
      id = next_watch_id_++;
      Watcher& w = watchers_[id];
      w.prefix = prefix;
      w.callback = std::move(callback);
      w.delivered = after_revision;
      w.catch_up_to = catch_up_to;
      create = CreateRequest(id, w);
    }
    // Without a stream now, WatchLoop creates it when the stream is back.
    SendWatch(create);
  }
  absl::MutexLock lock(&mu_);
  auto settled = [this, id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const Watcher& w = watchers_.at(id);
    return (w.created && (w.catch_up_to == 0 || w.caught_up)) || w.dead || closing_;
  };
  // A replay may be long; it gets a deadline per request's worth of time all the same.
  const bool in_time = mu_.AwaitWithTimeout(absl::Condition(&settled),
                                            absl::Milliseconds(options_.request_timeout.count()));
  const Watcher& w = watchers_.at(id);
  if (w.created && !w.dead && (w.catch_up_to == 0 || w.caught_up)) return id;
  const bool compacted = w.dead && w.delivered < compacted_revision_.load();
  watchers_.erase(id);
  if (compacted) {
    return absl::OutOfRangeError("history after revision " + std::to_string(after_revision) +
                                 " is compacted in etcd");
  }
  return absl::UnavailableError(in_time
                                    ? "etcd refused the watch of " + prefix
                                    : "etcd did not confirm the watch of " + prefix + " in time");
}

void EtcdStore::CancelWatcher(int64_t id) {
  std::vector<PendingAck> acks;
  {
    std::lock_guard<std::mutex> deliver(deliver_mu_);  // Waits for a running callback.
    absl::MutexLock lock(&mu_);
    watchers_.erase(id);
    acks = TakeSatisfiedAcksLocked();
  }
  {
    std::lock_guard<std::mutex> stream(stream_mu_);
    WatchRequest cancel;
    cancel.mutable_cancel_request()->set_watch_id(id);
    SendWatch(cancel);
  }
  for (PendingAck& ack : acks) std::move(ack.done)(ack.revision);
}

void EtcdStore::HandleWatchResponse(const WatchResponse& response) {
  NoteRevision(response.header().revision());
  std::vector<PendingAck> acks;
  std::unique_lock<std::mutex> deliver(deliver_mu_);
  Watcher* w = nullptr;
  std::vector<Event> events;
  {
    absl::MutexLock lock(&mu_);
    auto it = watchers_.find(response.watch_id());
    if (it == watchers_.end() || it->second.dead) return;  // Cancelled meanwhile.
    w = &it->second;
    if (response.created()) w->created = true;
    if (response.canceled()) {
      w->dead = true;
      if (response.compact_revision() > 0) {
        RaiseTo(compacted_revision_, std::max<int64_t>(response.compact_revision() - 2, 0));
        spdlog::error(
            "store: the watch of {} is lost: etcd compacted its history up to revision {} "
            "before the watch could resume after {}; restart kaito-server to reload",
            w->prefix, response.compact_revision() - 1, w->delivered);
      } else if (w->created) {
        spdlog::error("store: etcd cancelled the watch of {}: {}", w->prefix,
                      response.cancel_reason());
      }
      acks = TakeSatisfiedAcksLocked();
    }
    const std::string etcd_prefix = Key(w->prefix);
    for (const mvccpb::Event& e : response.events()) {
      if (w->caught_up) break;
      if (w->catch_up_to > 0 && e.kv().mod_revision() > w->catch_up_to) {
        w->caught_up = true;  // Passed the end without an event at it: a compacted gap.
        break;
      }
      if (w->catch_up_to > 0 && e.kv().mod_revision() == w->catch_up_to) w->caught_up = true;
      const int64_t revision = Ours(e.kv().mod_revision());
      if (revision <= w->delivered) continue;               // Replayed after a reconnect.
      if (!HasPrefix(e.kv().key(), etcd_prefix)) continue;  // A replay sees every key.
      Event event;
      if (e.type() == mvccpb::Event::DELETE) {
        event.type = Event::Type::kDelete;
        event.kv = FromEtcd(e.prev_kv(), options_.key_prefix.size());
        event.kv.key = FromEtcd(e.kv(), options_.key_prefix.size()).key;
        event.kv.mod_revision = revision;
      } else {
        event.type = Event::Type::kPut;
        event.kv = FromEtcd(e.kv(), options_.key_prefix.size());
      }
      events.push_back(std::move(event));
    }
  }
  if (!events.empty()) {
    // Under deliver_mu_ only: the entry cannot be erased while we hold it.
    (*w->callback)(events);
    absl::MutexLock lock(&mu_);
    w->delivered = std::max(w->delivered, events.back().kv.mod_revision);
    auto more = TakeSatisfiedAcksLocked();
    for (PendingAck& a : more) acks.push_back(std::move(a));
  }
  // Watch() waits on mu_ for created/canceled: absl::Mutex re-checks its condition on unlock.
  deliver.unlock();
  for (PendingAck& ack : acks) std::move(ack.done)(ack.revision);
}

void EtcdStore::WatchLoop() {
  JitteredBackoff backoff(absl::Milliseconds(100), absl::Seconds(5));
  while (true) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_wait_for_ready(true);
    {
      std::lock_guard<std::mutex> stream(stream_mu_);
      {
        absl::MutexLock lock(&mu_);
        if (closing_) return;
      }
      stream_context_ = std::move(context);
      stream_ = watch_->Watch(stream_context_.get());
      // Re-create every live watch from just after what it delivered.
      std::vector<WatchRequest> creates;
      {
        absl::MutexLock lock(&mu_);
        for (auto& [id, w] : watchers_) {
          if (w.dead || w.caught_up) continue;
          w.created = false;
          creates.push_back(CreateRequest(id, w));
        }
      }
      for (const WatchRequest& create : creates) SendWatch(create);
    }
    WatchResponse response;
    bool received = false;
    while (stream_->Read(&response)) {
      received = true;
      HandleWatchResponse(response);
    }
    grpc::Status status = stream_->Finish();
    {
      std::lock_guard<std::mutex> stream(stream_mu_);
      stream_.reset();
      stream_context_.reset();
    }
    {
      absl::MutexLock lock(&mu_);
      if (closing_) return;
      ++stats_.watch_reconnects;
    }
    if (received) backoff.Reset();
    spdlog::warn("store: etcd watch stream ended ({}); resuming", status.error_message());
    const auto wait = absl::ToChronoMilliseconds(backoff.Next());
    std::unique_lock<std::mutex> lock(wake_mu_);
    wake_.wait_for(lock, wait);
  }
}

void EtcdStore::ProbeLoop() {
  // While writes fail for want of etcd, a cheap read tells when it is back (writes of
  // others may be rare), so /readyz recovers without waiting for a client's write.
  while (true) {
    {
      std::unique_lock<std::mutex> lock(wake_mu_);
      wake_.wait_for(lock, std::chrono::seconds(1));
    }
    std::string problem;
    {
      absl::MutexLock lock(&mu_);
      if (closing_) return;
      problem = problem_;
    }
    if (problem.empty()) continue;
    RangeRequest probe;
    probe.set_key(RangeStart(""));
    probe.set_range_end(RangeEnd(""));
    probe.set_count_only(true);
    if (Range(probe).ok()) SetProblem("");
  }
}

}  // namespace kaito::server::store
