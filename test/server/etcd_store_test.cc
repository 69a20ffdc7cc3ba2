// What the etcd backend adds to the store contract (which store_contract_test runs on it):
// read-your-writes through watches, key prefixes, a second client (another replica) on the
// same etcd, compaction found again after a restart, a member restart under a watch, a
// three-member cluster losing the member we talk to, and TLS with client certificates.
// Every etcd here is a real one (Debian's 3.4) started by the test on 127.0.0.1.
#include "server/store/etcd_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "support/etcd.h"
#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "watch_recorder.h"

namespace kaito::server::store {
namespace {

using ::kaito::testing::EtcdTls;
using ::kaito::testing::LocalEtcd;
using ::kaito::testing::TempDir;
using ::kaito::testing::TestPki;
using ::kaito::testing::WaitFor;

std::unique_ptr<EtcdStore> OpenOrDie(EtcdStoreOptions options) {
  auto store = EtcdStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto etcd = LocalEtcd::Start(dir_.path());
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = *std::move(etcd);
  }
  EtcdStoreOptions Options(const std::string& prefix = "/kaito") {
    EtcdStoreOptions o;
    o.endpoints = {etcd_->endpoint()};
    o.key_prefix = prefix;
    return o;
  }
  TempDir dir_;
  std::unique_ptr<LocalEtcd> etcd_;
};

TEST(EtcdEndpointsTest, ParsesAndNamesTheBadPart) {
  auto two = ParseEtcdEndpoints("etcd://10.0.0.1:2379,etcd-1.example:2379");
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(*two, (std::vector<std::string>{"10.0.0.1:2379", "etcd-1.example:2379"}));
  for (const char* bad : {"etcd://", "etcd://host", "etcd://h:0", "etcd://h:99999",
                          "etcd://a:1,,b:2", "http://h:1", "etcd://:2379"}) {
    auto parsed = ParseEtcdEndpoints(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseEtcdEndpoints("etcd://a:1,b").status().message().find("\"b\""), std::string::npos);
}

TEST_F(EtcdStoreTest, AnAcknowledgedWriteHasReachedEveryWatchThatCoversIt) {
  auto store = OpenOrDie(Options());
  ASSERT_NE(store, nullptr);
  Recorder all, other;
  auto w1 = store->Watch("/w/", 0, all.Callback());
  auto w2 = store->Watch("/x/", 0, other.Callback());
  ASSERT_TRUE(w1.ok() && w2.ok());
  for (int i = 1; i <= 50; ++i) {
    auto r = PutSync(*store, "/w/" + std::to_string(i), "v", kMustNotExist);
    ASSERT_TRUE(r.ok()) << r.status();
    // No waiting: the watch had the event before the write was acknowledged.
    ASSERT_EQ(all.size(), static_cast<size_t>(i));
    EXPECT_EQ(all.events().back().kv.mod_revision, *r);
  }
  EXPECT_EQ(other.size(), 0u);
}

// A fence that names no election key cannot be checked: such a write is refused, never sent
// unfenced.
TEST_F(EtcdStoreTest, AWriteUnderAFenceWithoutAKeyIsRefused) {
  auto store = OpenOrDie(Options());
  ASSERT_NE(store, nullptr);
  WriteFence empty;
  {
    ScopedWriteFence scope(&empty);
    auto put = PutSync(*store, "/claims/a", "v", kMustNotExist);
    EXPECT_EQ(put.status().code(), absl::StatusCode::kFailedPrecondition) << put.status();
    EXPECT_EQ(DeleteSync(*store, "/claims/a", kAnyRevision).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(store->Get("/claims/a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(PutSync(*store, "/claims/a", "v", kMustNotExist).ok());
}

// With a history retention the store compacts etcd itself, never closer to its newest
// write than the retention; etcd keeps the compaction (another client finds it at start, and
// a watch from before it is OUT_OF_RANGE), and watches within the retention still resume.
TEST_F(EtcdStoreTest, HistoryBeyondTheRetentionIsCompactedInEtcd) {
  EtcdStoreOptions options = Options();
  options.history_retention = 20;
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  int64_t last = 0;
  for (int i = 0; i < 60; ++i) {
    auto r = PutSync(*store, "/h/k", std::to_string(i), kAnyRevision);
    ASSERT_TRUE(r.ok()) << r.status();
    last = *r;
  }
  ASSERT_TRUE(WaitFor([&] { return store->CompactedRevision() >= last - 20 - 20 / 4 - 1; },
                      absl::Seconds(10)))
      << store->CompactedRevision() << " after " << last;
  EXPECT_LE(store->CompactedRevision(), last - 20);
  EXPECT_GT(store->stats().compactions, 0);
  auto other = OpenOrDie(Options());
  ASSERT_NE(other, nullptr);
  EXPECT_GE(other->CompactedRevision(), last - 20 - 20 / 4 - 1);
  Recorder old, recent;
  EXPECT_EQ(other->Watch("/h/", 0, old.Callback()).status().code(), absl::StatusCode::kOutOfRange);
  auto resumed = store->Watch("/h/", last - 20, recent.Callback());
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(recent.size(), 20u);
}

TEST_F(EtcdStoreTest, KeyPrefixesSeparateInstallations) {
  auto a = OpenOrDie(Options("/team-a"));
  auto b = OpenOrDie(Options("/team-b"));
  auto raw = OpenOrDie(Options(""));
  ASSERT_TRUE(a && b && raw);
  ASSERT_TRUE(PutSync(*a, "/workspaces/default/w", "from a", kMustNotExist).ok());
  ASSERT_TRUE(PutSync(*b, "/workspaces/default/w", "from b", kMustNotExist).ok());
  EXPECT_EQ(a->Get("/workspaces/default/w")->value, "from a");
  EXPECT_EQ(b->Get("/workspaces/default/w")->value, "from b");
  auto listed = a->List("/");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->items.size(), 1u);
  EXPECT_EQ(listed->items[0].key, "/workspaces/default/w") << "keys come back without the prefix";
  auto everything = raw->List("");
  ASSERT_TRUE(everything.ok());
  ASSERT_EQ(everything->items.size(), 2u);
  EXPECT_EQ(everything->items[0].key, "/team-a/workspaces/default/w");
  EXPECT_EQ(everything->items[1].key, "/team-b/workspaces/default/w");
}

TEST_F(EtcdStoreTest, ListPagesThroughMoreKeysThanOnePage) {
  auto store = OpenOrDie(Options());
  ASSERT_NE(store, nullptr);
  std::atomic<int> failed{0}, done{0};
  constexpr int kKeys = 1234;
  for (int i = 0; i < kKeys; ++i) {
    char key[32];
    snprintf(key, sizeof(key), "/p/%05d", i);
    store->Put(key, "v", kMustNotExist, [&](absl::StatusOr<int64_t> r) {
      if (!r.ok()) ++failed;
      ++done;
    });
  }
  ASSERT_TRUE(WaitFor([&] { return done.load() == kKeys; }, absl::Seconds(60)));
  EXPECT_EQ(failed.load(), 0);
  auto list = store->List("/p/");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), static_cast<size_t>(kKeys));
  for (int i = 1; i < kKeys; ++i) ASSERT_LT(list->items[i - 1].key, list->items[i].key);
  EXPECT_EQ(list->revision, kKeys);
}

TEST_F(EtcdStoreTest, TwoClientsOnOneEtcdSeeEachOtherAndOneWinsAConflict) {
  auto first = OpenOrDie(Options());
  auto second = OpenOrDie(Options());
  ASSERT_TRUE(first && second);
  Recorder seen_by_second;
  auto watch = second->Watch("/", 0, seen_by_second.Callback());
  ASSERT_TRUE(watch.ok());
  auto created = PutSync(*first, "/k", "v1", kMustNotExist);
  ASSERT_TRUE(created.ok());
  ASSERT_TRUE(WaitFor([&] { return seen_by_second.size() == 1; }, absl::Seconds(10)));
  EXPECT_EQ(second->CurrentRevision(), *created);
  // Both update from the same revision: etcd lets exactly one win.
  auto a = PutSync(*first, "/k", "a", *created);
  auto b = PutSync(*second, "/k", "b", *created);
  EXPECT_TRUE(a.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kAborted) << b.status();
  EXPECT_EQ(second->Get("/k")->value, "a");
}

TEST_F(EtcdStoreTest, ACompactionIsFoundAgainByTheNextProcess) {
  {
    auto store = OpenOrDie(Options());
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(PutSync(*store, "/a", "v", kAnyRevision).ok());
    ASSERT_TRUE(store->Compact(6).ok());
    EXPECT_EQ(store->CompactedRevision(), 6);
  }
  auto reopened = OpenOrDie(Options());
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->CurrentRevision(), 10);
  EXPECT_EQ(reopened->CompactedRevision(), 6);
  Recorder rec;
  EXPECT_EQ(reopened->Watch("/", 5, rec.Callback()).status().code(), absl::StatusCode::kOutOfRange);
  auto ok = reopened->Watch("/", 6, rec.Callback());
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_TRUE(WaitFor([&] { return rec.size() == 4; }, absl::Seconds(10)));
  EXPECT_EQ(rec.events().front().kv.mod_revision, 7);
}

TEST_F(EtcdStoreTest, AnotherClientsCompactionMakesOldWatchesOutOfRange) {
  auto first = OpenOrDie(Options());
  auto second = OpenOrDie(Options());
  ASSERT_TRUE(first && second);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(PutSync(*first, "/a", "v", kAnyRevision).ok());
  ASSERT_TRUE(first->Compact(5).ok());
  Recorder rec;
  EXPECT_EQ(second->Watch("/", 2, rec.Callback()).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_GE(second->CompactedRevision(), 5) << "it learned of the compaction";
}

TEST_F(EtcdStoreTest, AWatchResumesWithoutGapsWhenItsMemberRestarts) {
  EtcdStoreOptions options = Options();
  options.request_timeout = std::chrono::milliseconds(1500);
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  std::atomic<int> health_changes{0};
  store->OnWriteHealthChange([&](const std::string&) { ++health_changes; });
  Recorder rec;
  auto watch = store->Watch("/", 0, rec.Callback());
  ASSERT_TRUE(watch.ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(PutSync(*store, "/a", "before", kAnyRevision).ok());

  etcd_->Kill(0);
  auto during = PutSync(*store, "/a", "during", kAnyRevision);
  EXPECT_EQ(during.status().code(), absl::StatusCode::kUnavailable) << during.status();
  EXPECT_NE(store->WriteProblem(), "");
  EXPECT_EQ(health_changes.load(), 1);

  ASSERT_TRUE(etcd_->Restart(0).ok());
  // The store notices by itself (its probe), before any write succeeds.
  ASSERT_TRUE(WaitFor([&] { return store->WriteProblem().empty(); }, absl::Seconds(15)));
  EXPECT_EQ(health_changes.load(), 2);
  for (int i = 0; i < 5; ++i) {
    auto r = PutSync(*store, "/a", "after", kAnyRevision);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  ASSERT_TRUE(WaitFor([&] { return rec.size() >= 10; }, absl::Seconds(15)));
  auto events = rec.events();
  ASSERT_EQ(events.size(), 10u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kv.mod_revision, static_cast<int64_t>(i + 1)) << "gap or repeat at " << i;
    EXPECT_EQ(events[i].kv.value, i < 5 ? "before" : "after");
  }
}

TEST(EtcdClusterTest, WritesGoOnWhenTheMemberInUseDies) {
  TempDir dir;
  auto etcd = LocalEtcd::Start(dir.path(), 3);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  EtcdStoreOptions options;
  options.endpoints = {(*etcd)->endpoint(0), (*etcd)->endpoint(1), (*etcd)->endpoint(2)};
  options.request_timeout = std::chrono::milliseconds(5000);
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  Recorder rec;
  auto watch = store->Watch("/", 0, rec.Callback());
  ASSERT_TRUE(watch.ok());
  int acknowledged = 0;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(PutSync(*store, "/k/" + std::to_string(i), "v", kMustNotExist).ok());
    ++acknowledged;
  }
  (*etcd)->Kill(0);  // pick_first talks to the first member listed.
  for (int i = 20; i < 40; ++i) {
    // While the others elect a leader and the client moves to one of them, a write may fail
    // UNAVAILABLE (not acknowledged); one in flight when the member died may have been
    // applied with its answer lost, and its retry as a create then reports ALREADY_EXISTS.
    absl::StatusOr<int64_t> r;
    ASSERT_TRUE(WaitFor(
        [&] {
          r = PutSync(*store, "/k/" + std::to_string(i), "v", kMustNotExist);
          return r.ok() || absl::IsAlreadyExists(r.status());
        },
        absl::Seconds(60)))
        << r.status();
    ++acknowledged;
  }
  auto list = store->List("/k/");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->items.size(), static_cast<size_t>(acknowledged));
  ASSERT_TRUE(WaitFor([&] { return rec.size() == 40; }, absl::Seconds(15)));
}

// 64 concurrent writers on a 3-member cluster: losing one member (the one in use) they go
// on; losing two (no quorum) every write fails UNAVAILABLE and none is acknowledged; with a
// member back they go on again; and every write that was acknowledged is there afterwards.
TEST(EtcdClusterTest, SixtyFourWritersThroughMemberLossLoseNoAcknowledgedWrite) {
  TempDir dir;
  auto etcd = LocalEtcd::Start(dir.path(), 3);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  EtcdStoreOptions options;
  options.endpoints = {(*etcd)->endpoint(0), (*etcd)->endpoint(1), (*etcd)->endpoint(2)};
  options.request_timeout = std::chrono::milliseconds(3000);
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);

  constexpr int kWriters = 64;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> acked{0}, unavailable{0}, other{0};
  absl::Mutex mu;
  std::vector<std::string> acked_keys;  // Guarded by mu.
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      for (int n = 0; !stop.load(); ++n) {
        std::string key = "/w/" + std::to_string(t) + "/" + std::to_string(n);
        absl::StatusOr<int64_t> r = PutSync(*store, key, std::to_string(n), kAnyRevision);
        if (r.ok()) {
          absl::MutexLock lock(&mu);
          acked_keys.push_back(std::move(key));
          ++acked;
        } else if (absl::IsUnavailable(r.status())) {
          ++unavailable;
        } else {
          ++other;
        }
      }
    });
  }
  auto acked_grows_by = [&](int64_t n, absl::Duration deadline) {
    const int64_t from = acked.load();
    return WaitFor([&] { return acked.load() >= from + n; }, deadline);
  };
  EXPECT_TRUE(acked_grows_by(640, absl::Seconds(30)));
  (*etcd)->Kill(0);  // The member the client talks to (pick_first: the first listed).
  EXPECT_TRUE(acked_grows_by(640, absl::Seconds(60))) << "writes go on with two of three";

  (*etcd)->Kill(1);  // No quorum now.
  // Every writer sees UNAVAILABLE; then, across a second round of failures, nothing is
  // acknowledged.
  EXPECT_TRUE(WaitFor([&] { return unavailable.load() >= kWriters; }, absl::Seconds(60)));
  const int64_t acked_without_quorum = acked.load();
  const int64_t failures = unavailable.load();
  EXPECT_TRUE(
      WaitFor([&] { return unavailable.load() >= failures + kWriters; }, absl::Seconds(60)));
  EXPECT_EQ(acked.load(), acked_without_quorum) << "nothing acknowledged without a quorum";

  ASSERT_TRUE((*etcd)->Restart(1).ok());
  EXPECT_TRUE(acked_grows_by(640, absl::Seconds(60))) << "writes resume with a member back";
  stop = true;
  for (auto& w : writers) w.join();
  EXPECT_EQ(other.load(), 0) << "failures are UNAVAILABLE, nothing else";

  auto list = store->List("/w/");
  ASSERT_TRUE(list.ok()) << list.status();
  std::set<std::string> stored;
  for (const auto& kv : list->items) stored.insert(kv.key);
  absl::MutexLock lock(&mu);
  int64_t missing = 0;
  for (const auto& key : acked_keys) missing += stored.count(key) == 0 ? 1 : 0;
  EXPECT_EQ(missing, 0) << "of " << acked_keys.size() << " acknowledged writes";
  std::cout << acked_keys.size() << " acknowledged, " << unavailable.load()
            << " refused UNAVAILABLE, " << stored.size() << " stored" << std::endl;
}

TEST(EtcdTlsTest, ClientCertificatesAreRequiredAndUsed) {
  TempDir dir;
  TestPki pki(dir.path());
  auto server = pki.Server("etcd-server");
  auto client = pki.Client("kaito-server", "kaito-server", {});
  EtcdTls tls{server.cert, server.key, pki.ca_file(), /*client_cert_auth=*/true};
  auto etcd = LocalEtcd::Start(dir.path(), 1, &tls);
  ASSERT_TRUE(etcd.ok()) << etcd.status();

  EtcdStoreOptions options;
  options.endpoints = {(*etcd)->endpoint()};
  options.ca_file = pki.ca_file();
  options.cert_file = client.cert;
  options.key_file = client.key;
  options.connect_timeout = std::chrono::milliseconds(3000);
  auto store = OpenOrDie(options);
  ASSERT_NE(store, nullptr);
  Recorder rec;
  auto watch = store->Watch("/", 0, rec.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  ASSERT_TRUE(PutSync(*store, "/secure", "v", kMustNotExist).ok());
  EXPECT_EQ(rec.size(), 1u);

  EtcdStoreOptions anonymous = options;
  anonymous.cert_file.clear();
  anonymous.key_file.clear();
  EXPECT_EQ(EtcdStore::Open(anonymous).status().code(), absl::StatusCode::kUnavailable);
  EtcdStoreOptions plaintext = options;
  plaintext.ca_file.clear();
  plaintext.cert_file.clear();
  plaintext.key_file.clear();
  EXPECT_EQ(EtcdStore::Open(plaintext).status().code(), absl::StatusCode::kUnavailable);
  EtcdStoreOptions half = options;
  half.key_file.clear();
  EXPECT_EQ(EtcdStore::Open(half).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EtcdOpenTest, NoMemberIsUnavailableWithinTheConnectTimeout) {
  EtcdStoreOptions options;
  options.endpoints = {"127.0.0.1:1"};
  options.connect_timeout = std::chrono::milliseconds(500);
  auto store = EtcdStore::Open(options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(store.status().message().find("127.0.0.1:1"), std::string::npos) << store.status();
}

}  // namespace
}  // namespace kaito::server::store
