// SQLite-specific guarantees beyond the contract: durability across reopen, group
// commit, the data-directory lock, automatic history compaction.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <thread>

#include "server/store/sqlite_store.h"
#include "support/temp_dir.h"

namespace kaito::server::store {
namespace {

using ::kaito::testing::TempDir;

TEST(SqliteStoreTest, AcknowledgedWritesSurviveReopen) {
  TempDir dir;
  {
    auto store = SqliteStore::Open({.path = dir.File("kaito.db")});
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(PutSync(**store, "/a", "1", kAnyRevision).ok());
    ASSERT_TRUE(PutSync(**store, "/b", "2", kAnyRevision).ok());
    ASSERT_TRUE(DeleteSync(**store, "/a", kAnyRevision).ok());
  }
  auto store = SqliteStore::Open({.path = dir.File("kaito.db")});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->CurrentRevision(), 3);
  EXPECT_EQ((*store)->Get("/b")->value, "2");
  EXPECT_EQ((*store)->Get("/a").status().code(), absl::StatusCode::kNotFound);
  auto next = PutSync(**store, "/c", "3", kAnyRevision);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 4) << "revisions continue after a restart";
}

mode_t Mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 0777;
}

TEST(SqliteStoreTest, DataDirectoryIsOwnerOnlyAndItsFiles0600) {
  TempDir dir;
  const std::string data = dir.File("data");
  ::umask(022);  // The usual umask would otherwise give 0755 and 0644.
  {
    auto store = SqliteStore::Open({.path = data + "/kaito.db"});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(PutSync(**store, "/a", "1", kAnyRevision).ok());
    EXPECT_EQ(Mode(data), 0700u);
    for (const char* file : {"/kaito.db", "/kaito.db-wal", "/kaito.db-shm", "/kaito.db.lock"}) {
      SCOPED_TRACE(file);
      EXPECT_EQ(Mode(data + file), 0600u);
    }
  }
  // Files an older version left with a wider mode are narrowed on the next open.
  ASSERT_EQ(::chmod((data + "/kaito.db").c_str(), 0644), 0);
  auto store = SqliteStore::Open({.path = data + "/kaito.db"});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(Mode(data + "/kaito.db"), 0600u);
}

TEST(SqliteStoreTest, SecondOpenOfSameDatabaseIsRefused) {
  TempDir dir;
  auto first = SqliteStore::Open({.path = dir.File("kaito.db")});
  ASSERT_TRUE(first.ok());
  auto second = SqliteStore::Open({.path = dir.File("kaito.db")});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SqliteStoreTest, ConcurrentWritesShareCommits) {
  TempDir dir;
  auto store = SqliteStore::Open({.path = dir.File("kaito.db")});
  ASSERT_TRUE(store.ok());
  constexpr int kWriters = 32, kEach = 20;
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        ASSERT_TRUE(PutSync(**store, "/k/" + std::to_string(t) + "/" + std::to_string(i), "v",
                            kAnyRevision)
                        .ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  SqliteStoreStats stats = (*store)->stats();
  EXPECT_EQ(stats.writes, kWriters * kEach);
  EXPECT_LT(stats.commits, stats.writes) << "group commit should batch concurrent writers";
}

TEST(SqliteStoreTest, HistoryIsCompactedAutomatically) {
  TempDir dir;
  auto store = SqliteStore::Open({.path = dir.File("kaito.db"), .history_retention = 10});
  ASSERT_TRUE(store.ok());
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(PutSync(**store, "/a", "v", kAnyRevision).ok());
  EXPECT_GE((*store)->CompactedRevision(), 40 - 10 - 10 / 4 - 1);
  EXPECT_LE((*store)->CompactedRevision(), 30);
  auto watch = (*store)->Watch("/", 0, [](const std::vector<Event>&) {});
  EXPECT_EQ(watch.status().code(), absl::StatusCode::kOutOfRange);
}

TEST(SqliteStoreTest, LockIsReleasedOnClose) {
  TempDir dir;
  auto opened = SqliteStore::Open({.path = dir.File("kaito.db")});
  ASSERT_TRUE(opened.ok());
  std::unique_ptr<SqliteStore> store = std::move(*opened);
  ASSERT_TRUE(PutSync(*store, "/a", "1", kAnyRevision).ok());
  store.reset();
  auto reopened = SqliteStore::Open({.path = dir.File("kaito.db")});
  ASSERT_TRUE(reopened.ok()) << "the lock is released on close";
}

TEST(SqliteStoreTest, UnwritableLocationIsAnError) {
  auto store = SqliteStore::Open({.path = "/proc/kaito-cannot-write-here/kaito.db"});
  EXPECT_FALSE(store.ok());
}

}  // namespace
}  // namespace kaito::server::store
