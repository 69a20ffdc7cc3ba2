// The contract every Store backend must keep. Each backend (the in-memory fake, SQLite,
// and later etcd) runs this same suite, so that fakes cannot drift from the real thing.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "server/store/etcd_store.h"
#include "server/store/memory_store.h"
#include "server/store/sqlite_store.h"
#include "support/etcd.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "watch_recorder.h"

namespace kaito::server::store {
namespace {

using ::kaito::testing::TempDir;
using ::kaito::testing::WaitFor;

struct MemoryBackend {
  std::unique_ptr<Store> Open() { return std::make_unique<MemoryStore>(); }
};

struct SqliteBackend {
  TempDir dir;
  std::unique_ptr<Store> Open() {
    auto s = SqliteStore::Open({.path = dir.File("kaito.db")});
    EXPECT_TRUE(s.ok()) << s.status();
    return std::move(*s);
  }
};

template <typename Backend>
class StoreContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = backend_.Open();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override { store_.reset(); }  // Before the backend's server goes.
  Backend backend_;
  std::unique_ptr<Store> store_;
};

// A real etcd (Debian's 3.4) of its own per test, so revisions start from an empty store.
struct EtcdBackend {
  TempDir dir;
  std::unique_ptr<::kaito::testing::LocalEtcd> etcd;
  std::unique_ptr<Store> Open() {
    auto started = ::kaito::testing::LocalEtcd::Start(dir.path());
    EXPECT_TRUE(started.ok()) << started.status();
    if (!started.ok()) return nullptr;
    etcd = *std::move(started);
    auto s = EtcdStore::Open({.endpoints = {etcd->endpoint()}});
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return nullptr;
    return std::move(*s);
  }
};

using Backends = ::testing::Types<MemoryBackend, SqliteBackend, EtcdBackend>;
TYPED_TEST_SUITE(StoreContractTest, Backends);

TYPED_TEST(StoreContractTest, EmptyStoreHasRevisionZero) {
  EXPECT_EQ(this->store_->CurrentRevision(), 0);
  auto list = this->store_->List("/");
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->items.empty());
  EXPECT_EQ(this->store_->Get("/a").status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST(StoreContractTest, PutAssignsIncreasingRevisions) {
  auto r1 = PutSync(*this->store_, "/a", "1", kAnyRevision);
  auto r2 = PutSync(*this->store_, "/b", "2", kAnyRevision);
  auto r3 = PutSync(*this->store_, "/a", "3", kAnyRevision);
  ASSERT_TRUE(r1.ok() && r2.ok() && r3.ok());
  EXPECT_EQ(*r1, 1);
  EXPECT_EQ(*r2, 2);
  EXPECT_EQ(*r3, 3);
  auto a = this->store_->Get("/a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->value, "3");
  EXPECT_EQ(a->create_revision, 1);
  EXPECT_EQ(a->mod_revision, 3);
  EXPECT_EQ(this->store_->CurrentRevision(), 3);
}

TYPED_TEST(StoreContractTest, CreateFailsWhenKeyExists) {
  ASSERT_TRUE(PutSync(*this->store_, "/a", "1", kMustNotExist).ok());
  auto again = PutSync(*this->store_, "/a", "2", kMustNotExist);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(this->store_->Get("/a")->value, "1");
  EXPECT_EQ(this->store_->CurrentRevision(), 1) << "a failed write must not use a revision";
}

TYPED_TEST(StoreContractTest, ConditionalPutChecksRevision) {
  auto r1 = PutSync(*this->store_, "/a", "1", kMustNotExist);
  ASSERT_TRUE(r1.ok());
  auto r2 = PutSync(*this->store_, "/a", "2", *r1);
  ASSERT_TRUE(r2.ok());
  auto stale = PutSync(*this->store_, "/a", "3", *r1);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(this->store_->Get("/a")->value, "2");
  auto missing = PutSync(*this->store_, "/nope", "x", 5);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST(StoreContractTest, DeleteChecksExistenceAndRevision) {
  auto r1 = PutSync(*this->store_, "/a", "1", kAnyRevision);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(DeleteSync(*this->store_, "/a", *r1 + 10).status().code(),
            absl::StatusCode::kAborted);
  auto del = DeleteSync(*this->store_, "/a", *r1);
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(*del, 2);
  EXPECT_EQ(this->store_->Get("/a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(DeleteSync(*this->store_, "/a", kAnyRevision).status().code(),
            absl::StatusCode::kNotFound);
  // A recreated key starts a new life.
  auto r3 = PutSync(*this->store_, "/a", "again", kMustNotExist);
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(this->store_->Get("/a")->create_revision, *r3);
}

TYPED_TEST(StoreContractTest, ListReturnsPrefixInKeyOrder) {
  for (const char* k : {"/w/b", "/w/a", "/x/a", "/w/c", "/v/z"}) {
    ASSERT_TRUE(PutSync(*this->store_, k, k, kAnyRevision).ok());
  }
  auto list = this->store_->List("/w/");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->items.size(), 3u);
  EXPECT_EQ(list->items[0].key, "/w/a");
  EXPECT_EQ(list->items[1].key, "/w/b");
  EXPECT_EQ(list->items[2].key, "/w/c");
  EXPECT_EQ(list->revision, 5);
}

TYPED_TEST(StoreContractTest, ValuesAreBinarySafe) {
  std::string value("a\0b\xff\x01", 5);
  ASSERT_TRUE(PutSync(*this->store_, "/bin", value, kAnyRevision).ok());
  EXPECT_EQ(this->store_->Get("/bin")->value, value);
}

TYPED_TEST(StoreContractTest, WatchReplaysHistoryThenStreams) {
  ASSERT_TRUE(PutSync(*this->store_, "/w/a", "1", kAnyRevision).ok());
  ASSERT_TRUE(PutSync(*this->store_, "/x/a", "1", kAnyRevision).ok());
  ASSERT_TRUE(PutSync(*this->store_, "/w/a", "2", kAnyRevision).ok());
  Recorder rec;
  auto watch = this->store_->Watch("/w/", 1, rec.Callback());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(DeleteSync(*this->store_, "/w/a", kAnyRevision).ok());
  ASSERT_TRUE(PutSync(*this->store_, "/w/b", "3", kAnyRevision).ok());
  ASSERT_TRUE(WaitFor([&] { return rec.size() >= 3; }, absl::Seconds(10)));
  auto events = rec.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kv.mod_revision, 3);
  EXPECT_EQ(events[0].kv.value, "2");
  EXPECT_FALSE(events[0].IsCreate());
  EXPECT_EQ(events[1].type, Event::Type::kDelete);
  EXPECT_EQ(events[1].kv.value, "2") << "a delete event carries the last value";
  EXPECT_EQ(events[1].kv.mod_revision, 4);
  EXPECT_TRUE(events[2].IsCreate());
  EXPECT_EQ(events[2].kv.key, "/w/b");
}

TYPED_TEST(StoreContractTest, WatchHandleStopsDelivery) {
  Recorder rec;
  {
    auto watch = this->store_->Watch("/", 0, rec.Callback());
    ASSERT_TRUE(watch.ok());
    ASSERT_TRUE(PutSync(*this->store_, "/a", "1", kAnyRevision).ok());
    ASSERT_TRUE(WaitFor([&] { return rec.size() == 1; }, absl::Seconds(10)));
  }
  ASSERT_TRUE(PutSync(*this->store_, "/a", "2", kAnyRevision).ok());
  EXPECT_EQ(rec.size(), 1u);
}

TYPED_TEST(StoreContractTest, CompactedHistoryIsOutOfRange) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(PutSync(*this->store_, "/a", std::to_string(i), kAnyRevision).ok());
  }
  ASSERT_TRUE(this->store_->Compact(3).ok());
  EXPECT_EQ(this->store_->CompactedRevision(), 3);
  Recorder rec;
  auto old = this->store_->Watch("/", 2, rec.Callback());
  EXPECT_EQ(old.status().code(), absl::StatusCode::kOutOfRange);
  auto ok = this->store_->Watch("/", 3, rec.Callback());
  ASSERT_TRUE(ok.ok());
  ASSERT_TRUE(WaitFor([&] { return rec.size() == 2; }, absl::Seconds(10)));
  EXPECT_EQ(rec.events()[0].kv.mod_revision, 4);
  EXPECT_EQ(this->store_->Get("/a")->value, "4") << "compaction keeps current values";
}

TYPED_TEST(StoreContractTest, ConcurrentWritersGetDistinctRevisionsAndEventsInOrder) {
  Recorder rec;
  auto watch = this->store_->Watch("/", 0, rec.Callback());
  ASSERT_TRUE(watch.ok());
  constexpr int kThreads = 8, kPerThread = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = PutSync(*this->store_, "/k/" + std::to_string(t) + "/" + std::to_string(i), "v",
                         kMustNotExist);
        if (!r.ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(this->store_->CurrentRevision(), kThreads * kPerThread);
  ASSERT_TRUE(WaitFor([&] { return rec.size() == kThreads * kPerThread; }, absl::Seconds(10)));
  auto events = rec.events();
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].kv.mod_revision, static_cast<int64_t>(i + 1)) << "gap or reorder at " << i;
  }
}

TYPED_TEST(StoreContractTest, ConflictingCreatesHaveOneWinner) {
  constexpr int kThreads = 8;
  std::atomic<int> won{0}, exists{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto r = PutSync(*this->store_, "/same", std::to_string(t), kMustNotExist);
      if (r.ok()) ++won;
      if (r.status().code() == absl::StatusCode::kAlreadyExists) ++exists;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(exists.load(), kThreads - 1);
}

TEST(MemoryStoreTest, HistoryIsCompactedAutomatically) {
  MemoryStore store(/*history_retention=*/10);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(PutSync(store, "/a", "v", kAnyRevision).ok());
  EXPECT_GE(store.CompactedRevision(), 40 - 10 - 10 / 4 - 1);
  EXPECT_LE(store.CompactedRevision(), 30);
  EXPECT_EQ(store.Watch("/", 0, [](const std::vector<Event>&) {}).status().code(),
            absl::StatusCode::kOutOfRange);
  Recorder rec;
  auto recent = store.Watch("/", store.CompactedRevision(), rec.Callback());
  ASSERT_TRUE(recent.ok());
  EXPECT_EQ(static_cast<int64_t>(rec.size()), 40 - store.CompactedRevision());
}

}  // namespace
}  // namespace kaito::server::store
