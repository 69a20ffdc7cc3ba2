#include "server/election/leader_elector.h"

#include <spdlog/spdlog.h>

#include <cmath>

namespace kaito::server {

using Steady = std::chrono::steady_clock;

absl::Status CheckLeaderElectionOptions(const LeaderElectionOptions& o) {
  if (o.identity.empty()) return absl::InvalidArgumentError("--replica-name: must not be empty");
  if (o.lease_duration < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--leader-elect-lease-duration: at least 1s");
  }
  if (o.renew_deadline <= absl::ZeroDuration() || o.renew_deadline >= o.lease_duration) {
    return absl::InvalidArgumentError(
        "--leader-elect-renew-deadline: must be above 0 and below "
        "--leader-elect-lease-duration (a leader steps down before its lease can lapse)");
  }
  if (o.retry_period <= absl::ZeroDuration() || o.retry_period >= o.renew_deadline) {
    return absl::InvalidArgumentError(
        "--leader-elect-retry-period: must be above 0 and below --leader-elect-renew-deadline");
  }
  return absl::OkStatus();
}

LeaderElector::LeaderElector(std::shared_ptr<grpc::Channel> channel, LeaderElectionOptions options,
                             LeaderCallbacks callbacks)
    : options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      kv_(etcdserverpb::KV::NewStub(channel)),
      lease_(etcdserverpb::Lease::NewStub(channel)) {}

LeaderElector::~LeaderElector() { Stop(); }

void LeaderElector::Start() {
  absl::MutexLock lock(&lifecycle_mu_);
  if (started_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void LeaderElector::Stop() {
  absl::MutexLock lock(&lifecycle_mu_);
  {
    absl::MutexLock state(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  // The thread stepped down and revoked on its way out.
}

std::string LeaderElector::leader() const {
  absl::MutexLock lock(&mu_);
  return leader_;
}

void LeaderElector::SetLeader(std::string leader) {
  absl::MutexLock lock(&mu_);
  leader_ = std::move(leader);
}

bool LeaderElector::Sleep(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

std::unique_ptr<grpc::ClientContext> LeaderElector::Context(absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

void LeaderElector::Run() {
  bool stopping = false;
  while (!stopping) {
    if (!leading_.load()) {
      if (TryAcquire()) continue;  // Renew right away, then every retry period.
      stopping = !Sleep(options_.retry_period);
      continue;
    }
    // Leading: renew each retry period; step down once renew_deadline passed without one.
    absl::Status renewed = Renew();
    const auto since = Steady::now() - last_renewal_sent_;
    const absl::Duration unrenewed = absl::FromChrono(since);
    if (!renewed.ok() &&
        (absl::IsFailedPrecondition(renewed) || unrenewed >= options_.renew_deadline)) {
      StepDown(std::string(renewed.message()));
      stopping = !Sleep(options_.retry_period);
      continue;
    }
    if (!renewed.ok()) {
      spdlog::warn("leader election: renewing the lease failed ({} since the last renewal): {}",
                   absl::FormatDuration(unrenewed), std::string(renewed.message()));
    }
    // The next attempt comes no later than the step-down point.
    const absl::Duration wait = std::min(
        options_.retry_period,
        std::max(options_.renew_deadline - absl::FromChrono(Steady::now() - last_renewal_sent_),
                 absl::Milliseconds(10)));
    stopping = !Sleep(wait);
  }
  if (leading_.load()) StepDown("the replica is stopping");
}

bool LeaderElector::TryAcquire() {
  const absl::Duration timeout = options_.retry_period;
  {
    etcdserverpb::RangeRequest get;
    get.set_key(options_.key);
    etcdserverpb::RangeResponse current;
    auto context = Context(timeout);
    grpc::Status s = kv_->Range(context.get(), get, &current);
    if (!s.ok()) {
      spdlog::debug("leader election: cannot read {}: {}", options_.key, s.error_message());
      return false;
    }
    if (current.kvs_size() > 0) {
      SetLeader(current.kvs(0).value());
      return false;
    }
  }
  // Vacant: a lease of our own, then the key, created only if it still does not exist.
  const Steady::time_point sent = Steady::now();
  if (lease_id_ == 0) {
    etcdserverpb::LeaseGrantRequest grant;
    grant.set_ttl(static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(options_.lease_duration))));
    etcdserverpb::LeaseGrantResponse granted;
    auto context = Context(timeout);
    grpc::Status s = lease_->LeaseGrant(context.get(), grant, &granted);
    if (!s.ok() || !granted.error().empty()) {
      spdlog::warn("leader election: cannot grant a lease: {}",
                   s.ok() ? granted.error() : s.error_message());
      return false;
    }
    lease_id_ = granted.id();
  }
  etcdserverpb::TxnRequest txn;
  auto* compare = txn.add_compare();
  compare->set_key(options_.key);
  compare->set_target(etcdserverpb::Compare::CREATE);
  compare->set_result(etcdserverpb::Compare::EQUAL);
  compare->set_create_revision(0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(options_.key);
  put->set_value(options_.identity);
  put->set_lease(lease_id_);
  txn.add_failure()->mutable_request_range()->set_key(options_.key);
  etcdserverpb::TxnResponse response;
  auto context = Context(timeout);
  grpc::Status s = kv_->Txn(context.get(), txn, &response);
  if (!s.ok()) {
    // Unknown outcome: a key created with our lease would be found by the next read.
    spdlog::warn("leader election: the transaction for {} failed: {}", options_.key,
                 s.error_message());
    return false;
  }
  if (!response.succeeded()) {
    // Another replica won; our lease lapses unused (it is revoked to spare etcd the wait).
    RevokeLease();
    if (response.responses_size() > 0 && response.responses(0).response_range().kvs_size() > 0) {
      SetLeader(response.responses(0).response_range().kvs(0).value());
    }
    return false;
  }
  fence_ = store::WriteFence{options_.key, response.header().revision()};
  last_renewal_sent_ = sent;
  SetLeader(options_.identity);
  leading_.store(true);
  transitions_.fetch_add(1);
  spdlog::info("leader election: {} leads now ({} at revision {}, lease {:x})", options_.identity,
               options_.key, fence_.create_revision, lease_id_);
  if (callbacks_.started_leading) callbacks_.started_leading(fence_);
  return true;
}

absl::Status LeaderElector::Renew() {
  const Steady::time_point sent = Steady::now();
  {
    auto context = Context(options_.retry_period);
    auto stream = lease_->LeaseKeepAlive(context.get());
    etcdserverpb::LeaseKeepAliveRequest request;
    request.set_id(lease_id_);
    etcdserverpb::LeaseKeepAliveResponse response;
    const bool answered = stream->Write(request) && stream->Read(&response);
    stream->WritesDone();
    context->TryCancel();
    grpc::Status s = stream->Finish();
    if (!answered) {
      return absl::UnavailableError("etcd did not renew the lease: " +
                                    (s.ok() ? std::string("no answer") : s.error_message()));
    }
    if (response.ttl() <= 0) {
      return absl::FailedPreconditionError("the lease expired before it was renewed");
    }
  }
  // The key must still be the one this replica created (an operator may have deleted it).
  etcdserverpb::RangeRequest get;
  get.set_key(options_.key);
  etcdserverpb::RangeResponse current;
  auto context = Context(options_.retry_period);
  grpc::Status s = kv_->Range(context.get(), get, &current);
  if (!s.ok()) return absl::UnavailableError("cannot read the election key: " + s.error_message());
  if (current.kvs_size() == 0 || current.kvs(0).create_revision() != fence_.create_revision) {
    SetLeader(current.kvs_size() > 0 ? current.kvs(0).value() : "");
    return absl::FailedPreconditionError("the election key " + options_.key +
                                         " is no longer this replica's");
  }
  last_renewal_sent_ = sent;
  return absl::OkStatus();
}

void LeaderElector::StepDown(const std::string& why) {
  spdlog::warn("leader election: {} stops leading: {}", options_.identity, why);
  leading_.store(false);
  if (callbacks_.stopped_leading) callbacks_.stopped_leading();
  {
    absl::MutexLock lock(&mu_);
    if (leader_ == options_.identity) leader_.clear();
  }
  // The key goes with the lease: another replica takes over at its next look.
  RevokeLease();
}

void LeaderElector::RevokeLease() {
  if (lease_id_ == 0) return;
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(lease_id_);
  etcdserverpb::LeaseRevokeResponse revoked;
  auto context = Context(options_.retry_period);
  grpc::Status s = lease_->LeaseRevoke(context.get(), revoke, &revoked);
  if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND) {
    spdlog::debug("leader election: revoking lease {:x}: {}", lease_id_, s.error_message());
  }
  lease_id_ = 0;
}

}  // namespace kaito::server
