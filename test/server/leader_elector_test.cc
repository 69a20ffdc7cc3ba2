// Leader election on a real etcd (Debian's 3.4, started by the test): one leader among
// candidates, a clean hand-over, a dead leader's lease expiring, a leader cut off from etcd
// stepping down before its lease lapses, and the write fence refusing a deposed leader's
// writes.
#include "server/election/leader_elector.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "server/store/etcd_store.h"
#include "support/etcd.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::server {
namespace {

using ::kaito::testing::LocalEtcd;
using ::kaito::testing::TempDir;
using ::kaito::testing::WaitFor;

constexpr char kKey[] = "/test/leases/controllers";

// Counts the callbacks of one candidate and remembers its fence.
struct Candidate {
  std::atomic<int> started{0};
  std::atomic<int> stopped{0};
  absl::Mutex mu;
  store::WriteFence fence ABSL_GUARDED_BY(mu);
  std::unique_ptr<LeaderElector> elector;

  void Make(std::shared_ptr<grpc::Channel> channel, const std::string& name,
            LeaderElectionOptions options) {
    options.identity = name;
    options.key = kKey;
    elector = std::make_unique<LeaderElector>(channel, options,
                                              LeaderCallbacks{[this](const store::WriteFence& f) {
                                                                absl::MutexLock lock(&mu);
                                                                fence = f;
                                                                ++started;
                                                              },
                                                              [this] { ++stopped; }});
    elector->Start();
  }
};

LeaderElectionOptions Fast() {
  LeaderElectionOptions o;
  o.lease_duration = absl::Seconds(2);
  o.renew_deadline = absl::Milliseconds(1500);
  o.retry_period = absl::Milliseconds(200);
  return o;
}

class LeaderElectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto etcd = LocalEtcd::Start(dir_.path());
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = *std::move(etcd);
    channel_ = grpc::CreateChannel(etcd_->endpoint(), grpc::InsecureChannelCredentials());
  }
  TempDir dir_;
  std::unique_ptr<LocalEtcd> etcd_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST(LeaderElectionOptionsTest, DurationsMustNestAndNameTheirFlag) {
  LeaderElectionOptions o = Fast();
  o.identity = "a";
  EXPECT_TRUE(CheckLeaderElectionOptions(o).ok());
  LeaderElectionOptions bad = o;
  bad.renew_deadline = o.lease_duration;
  EXPECT_NE(CheckLeaderElectionOptions(bad).message().find("--leader-elect-renew-deadline"),
            std::string::npos);
  bad = o;
  bad.retry_period = o.renew_deadline;
  EXPECT_NE(CheckLeaderElectionOptions(bad).message().find("--leader-elect-retry-period"),
            std::string::npos);
  bad = o;
  bad.identity = "";
  EXPECT_NE(CheckLeaderElectionOptions(bad).message().find("--replica-name"), std::string::npos);
}

TEST_F(LeaderElectorTest, OneOfThreeLeadsAndAStoppedLeaderHandsOverAtOnce) {
  Candidate c[3];
  for (int i = 0; i < 3; ++i) c[i].Make(channel_, "replica-" + std::to_string(i), Fast());
  auto leaders = [&] {
    int n = 0;
    for (auto& x : c) n += x.elector && x.elector->leading() ? 1 : 0;
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return leaders() == 1; }, absl::Seconds(10)));
  int first = 0;
  while (!c[first].elector->leading()) ++first;
  const std::string name = c[first].elector->identity();
  // Everyone agrees on who leads, and it stays that way over several renewals.
  ASSERT_TRUE(WaitFor(
      [&] {
        for (auto& x : c) {
          if (x.elector->leader() != name) return false;
        }
        return true;
      },
      absl::Seconds(5)));
  absl::SleepFor(absl::Seconds(1));  // Five renewals: still one leader, no new term.
  EXPECT_EQ(leaders(), 1);
  EXPECT_EQ(c[first].started.load(), 1);
  EXPECT_EQ(c[first].stopped.load(), 0);

  // A clean stop revokes the lease: another takes over within a few retry periods, far
  // sooner than the lease duration.
  const auto stopped_at = std::chrono::steady_clock::now();
  c[first].elector->Stop();
  EXPECT_EQ(c[first].stopped.load(), 1);
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < 3; ++i) {
          if (i != first && c[i].elector->leading()) return true;
        }
        return false;
      },
      absl::Seconds(10)));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, std::chrono::milliseconds(1500));
  c[first].elector.reset();
  EXPECT_EQ(leaders(), 1);
}

// A leader that died (its lease granted, never renewed, never revoked) is replaced once
// etcd expires the lease.
TEST_F(LeaderElectorTest, ADeadLeadersLeaseExpiresAndAnotherTakesOver) {
  auto lease = etcdserverpb::Lease::NewStub(channel_);
  auto kv = etcdserverpb::KV::NewStub(channel_);
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(2);
  etcdserverpb::LeaseGrantResponse granted;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(lease->LeaseGrant(&ctx, grant, &granted).ok());
  }
  etcdserverpb::PutRequest put;
  put.set_key(kKey);
  put.set_value("dead-replica");
  put.set_lease(granted.id());
  etcdserverpb::PutResponse put_response;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(kv->Put(&ctx, put, &put_response).ok());
  }
  const auto put_at = std::chrono::steady_clock::now();
  Candidate live;
  live.Make(channel_, "live", Fast());
  ASSERT_TRUE(WaitFor([&] { return live.elector->leader() == "dead-replica"; }, absl::Seconds(5)));
  EXPECT_FALSE(live.elector->leading());
  ASSERT_TRUE(WaitFor([&] { return live.elector->leading(); }, absl::Seconds(10)));
  const auto took = std::chrono::steady_clock::now() - put_at;
  EXPECT_GE(took, std::chrono::milliseconds(1500)) << "not before the lease lapsed";
  EXPECT_LT(took, std::chrono::milliseconds(3500)) << "within the TTL and a retry period";
  EXPECT_EQ(live.elector->leader(), "live");
}

// Cut off from etcd, a leader stops leading within its renew deadline, while its lease
// (which etcd keeps for the lease duration) could not have been taken yet; once etcd is
// back it leads again.
TEST_F(LeaderElectorTest, ALeaderCutOffFromEtcdStepsDownBeforeItsLeaseCouldLapse) {
  Candidate c;
  c.Make(channel_, "alone", Fast());
  ASSERT_TRUE(WaitFor([&] { return c.elector->leading(); }, absl::Seconds(10)));
  const auto killed_at = std::chrono::steady_clock::now();
  etcd_->Kill(0);
  ASSERT_TRUE(WaitFor([&] { return c.stopped.load() == 1; }, absl::Seconds(10)));
  const auto took = std::chrono::steady_clock::now() - killed_at;
  EXPECT_FALSE(c.elector->leading());
  EXPECT_LT(took, std::chrono::milliseconds(2000)) << "before the 2s lease could lapse";
  ASSERT_TRUE(etcd_->Restart(0).ok());
  ASSERT_TRUE(WaitFor([&] { return c.elector->leading(); }, absl::Seconds(20)));
  EXPECT_EQ(c.started.load(), 2);
}

// Writes under the leader's fence succeed while it leads; once another replica holds the
// lease the same fence fails them with FAILED_PRECONDITION and nothing is written.
TEST_F(LeaderElectorTest, TheFenceRefusesADeposedLeadersWrites) {
  store::EtcdStoreOptions so;
  so.endpoints = {etcd_->endpoint()};
  so.key_prefix = "/test";
  auto opened = store::EtcdStore::Open(so);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<store::EtcdStore> st = std::move(*opened);
  Candidate a, b;
  a.Make(st->channel(), "a", Fast());
  // Started: leading, and the callback that hands out the fence has run.
  ASSERT_TRUE(WaitFor([&] { return a.started.load() > 0; }, absl::Seconds(10)));
  b.Make(st->channel(), "b", Fast());
  store::WriteFence fence;
  {
    absl::MutexLock lock(&a.mu);
    fence = a.fence;
  }
  EXPECT_EQ(fence.key, kKey);
  {
    store::ScopedWriteFence scope(&fence);
    EXPECT_TRUE(store::PutSync(*st, "/claims/one", "v", store::kMustNotExist).ok());
  }
  a.elector->Stop();
  ASSERT_TRUE(WaitFor([&] { return b.started.load() > 0; }, absl::Seconds(10)));
  {
    store::ScopedWriteFence scope(&fence);
    auto put = store::PutSync(*st, "/claims/two", "v", store::kMustNotExist);
    EXPECT_EQ(put.status().code(), absl::StatusCode::kFailedPrecondition) << put.status();
    EXPECT_NE(put.status().message().find("leader lease"), std::string::npos);
    auto del = store::DeleteSync(*st, "/claims/one", store::kAnyRevision);
    EXPECT_EQ(del.status().code(), absl::StatusCode::kFailedPrecondition) << del.status();
  }
  EXPECT_EQ(st->Get("/claims/two").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(st->Get("/claims/one").ok());
  // Unfenced writes (the API's) are not affected; b's fence works.
  EXPECT_TRUE(store::PutSync(*st, "/claims/three", "v", store::kMustNotExist).ok());
  store::WriteFence b_fence;
  {
    absl::MutexLock lock(&b.mu);
    b_fence = b.fence;
  }
  store::ScopedWriteFence scope(&b_fence);
  EXPECT_TRUE(store::PutSync(*st, "/claims/two", "v", store::kMustNotExist).ok());
  // A stale precondition under a valid fence is still the precondition's error.
  EXPECT_EQ(store::PutSync(*st, "/claims/two", "v", store::kMustNotExist).status().code(),
            absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace kaito::server
