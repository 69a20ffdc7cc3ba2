#include "server/registry/object_cache.h"

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "kaito/v1/workspace.pb.h"
#include "server/store/memory_store.h"
#include "server/store/sqlite_store.h"
#include "support/temp_dir.h"

namespace kaito::server {
namespace {

std::string WorkspaceValue(const std::string& name, const std::string& app) {
  v1::Workspace ws;
  ws.mutable_metadata()->set_name(name);
  ws.mutable_metadata()->set_namespace_("default");
  (*ws.mutable_metadata()->mutable_labels())["app"] = app;
  return ws.SerializeAsString();
}

class RecordingSink : public CacheSink {
 public:
  void OnEvent(const CacheEventPtr& event) override {
    absl::MutexLock lock(&mu_);
    events.push_back(event);
  }
  std::vector<CacheEventPtr> Events() {
    absl::MutexLock lock(&mu_);
    return events;
  }

 private:
  absl::Mutex mu_;
  std::vector<CacheEventPtr> events;
};

class ObjectCacheTest : public ::testing::Test {
 protected:
  store::MemoryStore store_;
  ObjectCache cache_{&store_, "/workspaces/", &v1::Workspace::default_instance(), 4};
};

TEST_F(ObjectCacheTest, ReflectsWritesBeforeTheyAreAcknowledged) {
  ASSERT_TRUE(cache_.Start().ok());
  auto rev = store::PutSync(store_, "/workspaces/default/a", WorkspaceValue("a", "x"),
                            store::kMustNotExist);
  ASSERT_TRUE(rev.ok());
  auto got = cache_.Get("/workspaces/default/a");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->mod_revision, *rev);
  EXPECT_EQ(static_cast<const v1::Workspace&>(*got->object).metadata().resource_version(),
            std::to_string(*rev));
}

TEST_F(ObjectCacheTest, LoadsExistingObjectsOnStartAndIgnoresOtherKinds) {
  ASSERT_TRUE(store::PutSync(store_, "/workspaces/default/a", WorkspaceValue("a", "x"),
                             store::kAnyRevision).ok());
  ASSERT_TRUE(store::PutSync(store_, "/configmaps/default/c", "junk", store::kAnyRevision).ok());
  ASSERT_TRUE(cache_.Start().ok());
  EXPECT_EQ(cache_.size(), 1u);
  EXPECT_EQ(cache_.revision(), 2);
}

TEST_F(ObjectCacheTest, ListPagesAndFilters) {
  ASSERT_TRUE(cache_.Start().ok());
  for (const char* n : {"a", "b", "c", "d"}) {
    ASSERT_TRUE(store::PutSync(store_, std::string("/workspaces/default/") + n,
                               WorkspaceValue(n, n[0] < 'c' ? "x" : "y"), store::kAnyRevision)
                    .ok());
  }
  auto page = cache_.List("/workspaces/default/", "", 3, nullptr);
  ASSERT_EQ(page.items.size(), 3u);
  EXPECT_TRUE(page.more);
  auto rest = cache_.List("/workspaces/default/", "/workspaces/default/c", 3, nullptr);
  ASSERT_EQ(rest.items.size(), 1u);
  EXPECT_FALSE(rest.more);
  auto filtered = cache_.List("/workspaces/", "", 0, [](const google::protobuf::Message& m) {
    return static_cast<const v1::Workspace&>(m).metadata().labels().at("app") == "y";
  });
  EXPECT_EQ(filtered.items.size(), 2u);
}

TEST_F(ObjectCacheTest, WatchFromRevisionReplaysAndDeletesCarryLastState) {
  ASSERT_TRUE(cache_.Start().ok());
  auto r1 = store::PutSync(store_, "/workspaces/default/a", WorkspaceValue("a", "x"),
                           store::kAnyRevision);
  ASSERT_TRUE(store::PutSync(store_, "/workspaces/default/a", WorkspaceValue("a", "z"),
                             store::kAnyRevision).ok());
  RecordingSink sink;
  auto watch = cache_.Watch("/workspaces/", *r1, &sink);
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(store::DeleteSync(store_, "/workspaces/default/a", store::kAnyRevision).ok());
  auto events = sink.Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]->type, v1::MODIFIED);
  EXPECT_EQ(events[1]->type, v1::DELETED);
  const auto& last = static_cast<const v1::Workspace&>(*events[1]->object);
  EXPECT_EQ(last.metadata().labels().at("app"), "z");
  EXPECT_EQ(last.metadata().resource_version(), "3");
}

TEST_F(ObjectCacheTest, WatchWithoutRevisionStartsWithAddedEvents) {
  ASSERT_TRUE(cache_.Start().ok());
  ASSERT_TRUE(store::PutSync(store_, "/workspaces/default/a", WorkspaceValue("a", "x"),
                             store::kAnyRevision).ok());
  ASSERT_TRUE(store::PutSync(store_, "/workspaces/other/b", WorkspaceValue("b", "x"),
                             store::kAnyRevision).ok());
  RecordingSink sink;
  auto watch = cache_.Watch("/workspaces/default/", -1, &sink);
  ASSERT_TRUE(watch.ok());
  ASSERT_EQ(sink.Events().size(), 1u);
  EXPECT_EQ(sink.Events()[0]->type, v1::ADDED);
}

TEST_F(ObjectCacheTest, RevisionOlderThanHistoryIsOutOfRange) {
  ASSERT_TRUE(cache_.Start().ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(store::PutSync(store_, "/workspaces/default/a", WorkspaceValue("a", "x"),
                               store::kAnyRevision).ok());
  }
  RecordingSink sink;
  EXPECT_EQ(cache_.Watch("/workspaces/", 1, &sink).status().code(),
            absl::StatusCode::kOutOfRange);
  auto recent = cache_.Watch("/workspaces/", 7, &sink);
  ASSERT_TRUE(recent.ok());
  EXPECT_EQ(sink.Events().size(), 3u);
}

TEST_F(ObjectCacheTest, DetachedSinkGetsNothing) {
  ASSERT_TRUE(cache_.Start().ok());
  RecordingSink sink;
  {
    auto watch = cache_.Watch("/workspaces/", 0, &sink);
    ASSERT_TRUE(watch.ok());
    EXPECT_EQ(cache_.watchers(), 1u);
  }
  EXPECT_EQ(cache_.watchers(), 0u);
  ASSERT_TRUE(store::PutSync(store_, "/workspaces/default/a", WorkspaceValue("a", "x"),
                             store::kAnyRevision).ok());
  EXPECT_TRUE(sink.Events().empty());
}

TEST(ObjectCacheRestartTest, ResumesWatchFromBeforeRestart) {
  testing::TempDir dir;
  {
    auto store = store::SqliteStore::Open({.path = dir.File("kaito.db")});
    ASSERT_TRUE(store.ok());
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(store::PutSync(**store, "/workspaces/default/w" + std::to_string(i),
                                 WorkspaceValue("w", "x"), store::kAnyRevision).ok());
    }
  }
  auto store = store::SqliteStore::Open({.path = dir.File("kaito.db")});
  ASSERT_TRUE(store.ok());
  ObjectCache cache(store->get(), "/workspaces/", &v1::Workspace::default_instance());
  ASSERT_TRUE(cache.Start().ok());
  RecordingSink sink;
  auto watch = cache.Watch("/workspaces/", 2, &sink);
  ASSERT_TRUE(watch.ok()) << watch.status();
  ASSERT_EQ(sink.Events().size(), 3u);
  EXPECT_EQ(sink.Events()[0]->revision, 3);
  EXPECT_EQ(sink.Events()[0]->type, v1::ADDED);
}

}  // namespace
}  // namespace kaito::server
