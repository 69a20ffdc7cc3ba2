// The shim's read cache against a fake kaito-server (a KindBackend whose watch the test
// feeds): it answers only callers the server allowed in that namespace, only once its copy
// has reached the server's revision, and never from a copy whose watch has ended.
#include "tools/kube-shim/read_cache.h"

#include <gtest/gtest.h>

#include <deque>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "support/process.h"

namespace kaito::shim {
namespace {

using Answer = WorkspaceReadCache::Answer;

std::unique_ptr<google::protobuf::Message> Workspace(const std::string& ns, const std::string& name,
                                                     int64_t rv) {
  auto w = std::make_unique<v1::Workspace>();
  w->mutable_metadata()->set_namespace_(ns);
  w->mutable_metadata()->set_name(name);
  w->mutable_metadata()->set_resource_version(std::to_string(rv));
  return w;
}

// kaito-server as the cache sees it: a revision that lists report, and watches whose events
// the test pushes.
class FakeServer : public KindBackend {
 public:
  class Stream : public WatchStream {
   public:
    explicit Stream(FakeServer* server) : server_(server) {}
    Next Wait(absl::Duration wait, WatchEvent* event) override {
      absl::MutexLock lock(&server_->mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(server_->mu_) {
        return !server_->events_.empty() || server_->end_ || cancelled_;
      };
      server_->mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
      if (cancelled_) return Next::kEnd;
      if (!server_->events_.empty()) {
        *event = std::move(server_->events_.front());
        server_->events_.pop_front();
        return Next::kEvent;
      }
      if (server_->end_) {
        server_->end_ = false;
        status_ = server_->end_status_;
        return Next::kEnd;
      }
      return Next::kIdle;
    }
    grpc::Status status() override { return status_; }
    void Cancel() override {
      absl::MutexLock lock(&server_->mu_);
      cancelled_ = true;
    }

   private:
    FakeServer* server_;
    bool cancelled_ = false;
    grpc::Status status_ = grpc::Status::CANCELLED;
  };

  std::unique_ptr<google::protobuf::Message> New() const override {
    return std::make_unique<v1::Workspace>();
  }
  grpc::Status Get(const CallOptions&, const std::string&, const std::string&,
                   std::unique_ptr<google::protobuf::Message>*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "the cache never gets");
  }
  grpc::Status List(const CallOptions&, const ListQuery& query, ListResult* out) override {
    absl::SleepFor(list_latency_);  // Set before the cache starts.
    absl::MutexLock lock(&mu_);
    ++lists_;
    EXPECT_EQ(query.namespace_, "");
    EXPECT_EQ(query.page_size, 1);
    out->resource_version = std::to_string(revision_);
    return grpc::Status::OK;
  }
  grpc::Status Create(const CallOptions&, const google::protobuf::Message&, bool,
                      WriteResult*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
  }
  grpc::Status Update(const CallOptions&, const google::protobuf::Message&, bool,
                      WriteResult*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
  }
  grpc::Status Delete(const CallOptions&, const std::string&, const std::string&,
                      const std::string&, DeleteResult*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
  }
  std::unique_ptr<WatchStream> Watch(const CallOptions& call, const WatchQuery& query) override {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(call.authorization, "") << "the cache watches as the shim itself";
    EXPECT_EQ(query.namespace_, "");
    EXPECT_EQ(query.resource_version, "") << "a reload starts from the initial state";
    ++watches_;
    if (!refuse_.ok()) {
      end_ = true;
      end_status_ = refuse_;
    }
    return std::make_unique<Stream>(this);
  }

  // An event on the open watch; a write also moves the server's revision.
  void Push(const std::string& type, std::unique_ptr<google::protobuf::Message> object,
            int64_t rv) {
    absl::MutexLock lock(&mu_);
    WatchEvent e;
    e.type = type;
    e.object = std::move(object);
    e.resource_version = std::to_string(rv);
    events_.push_back(std::move(e));
    revision_ = std::max(revision_, rv);
  }
  void Bookmark(int64_t rv) { Push("BOOKMARK", nullptr, rv); }
  // A write the watch has not delivered yet.
  void SetRevision(int64_t rv) {
    absl::MutexLock lock(&mu_);
    revision_ = rv;
  }
  void EndWatch(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    end_ = true;
    end_status_ = std::move(status);
  }
  void RefuseWatches(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    refuse_ = std::move(status);
  }
  void set_list_latency(absl::Duration d) { list_latency_ = d; }
  int watches() {
    absl::MutexLock lock(&mu_);
    return watches_;
  }
  int lists() {
    absl::MutexLock lock(&mu_);
    return lists_;
  }

 private:
  absl::Mutex mu_;
  std::deque<WatchEvent> events_ ABSL_GUARDED_BY(mu_);
  bool end_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
  grpc::Status refuse_ ABSL_GUARDED_BY(mu_);
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  int watches_ ABSL_GUARDED_BY(mu_) = 0;
  int lists_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration list_latency_;
};

bool Eventually(const std::function<bool()>& condition) {
  return testing::WaitFor(condition, absl::Seconds(10));
}

class ReadCacheTest : public ::testing::Test {
 protected:
  void Start(ReadCacheOptions options = {}) {
    options.retry_initial = absl::Milliseconds(10);
    options.retry_cap = absl::Milliseconds(20);
    cache_ = std::make_unique<WorkspaceReadCache>(&server_, options);
    cache_->Start();
  }
  Answer Get(const std::string& who, const std::string& ns, const std::string& name,
             std::string* rv = nullptr) {
    std::shared_ptr<const CachedWorkspace> out;
    const Answer a = cache_->Get(who, ns, name, absl::Now() + absl::Seconds(5), &out);
    if (a == Answer::kFound && rv != nullptr) *rv = out->object().metadata().resource_version();
    return a;
  }

  FakeServer server_;
  std::unique_ptr<WorkspaceReadCache> cache_;
};

TEST_F(ReadCacheTest, AnswersOnlyCallersTheServerAllowedInThatNamespace) {
  server_.Push("ADDED", Workspace("a", "w", 5), 5);
  server_.Push("ADDED", Workspace("b", "w", 6), 6);
  server_.Bookmark(6);
  Start();
  ASSERT_TRUE(Eventually([&] { return cache_->ready(); }));
  EXPECT_EQ(cache_->size(), 2u);

  // Nobody has been allowed anything yet: the server decides.
  EXPECT_EQ(Get("Bearer alice", "a", "w"), Answer::kAskServer);
  // The server refused alice: still the server's to answer.
  cache_->Learn("Bearer alice", "a", grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no"));
  cache_->Learn("Bearer alice", "a", grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no"));
  EXPECT_EQ(Get("Bearer alice", "a", "w"), Answer::kAskServer);
  // The server answered alice's GET in "a" (found, or not found: both mean allowed).
  cache_->Learn("Bearer alice", "a", grpc::Status(grpc::StatusCode::NOT_FOUND, "x"));
  std::string rv;
  EXPECT_EQ(Get("Bearer alice", "a", "w", &rv), Answer::kFound);
  EXPECT_EQ(rv, "5");
  EXPECT_EQ(Get("Bearer alice", "a", "missing"), Answer::kNotFound);
  // Not in another namespace, not for another caller.
  EXPECT_EQ(Get("Bearer alice", "b", "w"), Answer::kAskServer);
  EXPECT_EQ(Get("Bearer bob", "a", "w"), Answer::kAskServer);
  EXPECT_EQ(Get("", "a", "w"), Answer::kAskServer);
}

TEST_F(ReadCacheTest, TheServersVerdictLastsTheTtl) {
  server_.Bookmark(1);
  ReadCacheOptions options;
  options.authorization_ttl = absl::Milliseconds(200);
  Start(options);
  ASSERT_TRUE(Eventually([&] { return cache_->ready(); }));
  const absl::Time learned = absl::Now();
  cache_->Learn("t", "a", grpc::Status::OK);
  const Answer first = Get("t", "a", "w");
  if (absl::Now() - learned < absl::Milliseconds(200)) {
    EXPECT_EQ(first, Answer::kNotFound);
  }
  EXPECT_TRUE(Eventually([&] { return Get("t", "a", "w") == Answer::kAskServer; }));
  EXPECT_GE(absl::Now() - learned, absl::Milliseconds(200));
}

TEST_F(ReadCacheTest, WaitsForTheServersRevisionBeforeAnswering) {
  server_.Push("ADDED", Workspace("a", "w", 3), 3);
  server_.Bookmark(3);
  Start();
  ASSERT_TRUE(Eventually([&] { return cache_->ready(); }));
  cache_->Learn("t", "a", grpc::Status::OK);

  // A write at revision 4 the server has made but its watch has not delivered: the GET
  // waits for it rather than answer the older state.
  server_.SetRevision(4);
  std::string rv;
  std::thread deliver([&] {
    absl::SleepFor(absl::Milliseconds(50));
    server_.Push("MODIFIED", Workspace("a", "w", 4), 4);
  });
  EXPECT_EQ(Get("t", "a", "w", &rv), Answer::kFound);
  deliver.join();
  EXPECT_EQ(rv, "4");

  // A delete reaches the copy the same way.
  server_.Push("DELETED", Workspace("a", "w", 5), 5);
  EXPECT_EQ(Get("t", "a", "w"), Answer::kNotFound);

  // A revision the copy never reaches: after sync_timeout the server answers instead.
  server_.SetRevision(99);
  const absl::Time start = absl::Now();
  EXPECT_EQ(Get("t", "a", "w"), Answer::kAskServer);
  EXPECT_GE(absl::Now() - start, ReadCacheOptions().sync_timeout);
}

TEST_F(ReadCacheTest, ConcurrentGetsShareTheServersRevisionCalls) {
  server_.Bookmark(1);
  server_.set_list_latency(absl::Milliseconds(250));
  Start();
  ASSERT_TRUE(Eventually([&] { return cache_->ready(); }));
  cache_->Learn("t", "a", grpc::Status::OK);
  constexpr int kThreads = 16;
  std::vector<std::thread> threads;
  std::atomic<int> answered{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      if (Get("t", "a", "w") == Answer::kNotFound) ++answered;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(answered.load(), kThreads);
  // Each GET needs a revision read that started after it arrived; one read serves every
  // GET waiting at that moment: the first GET's read, then one for all that came during it
  // (a third only for a thread that started late).
  EXPECT_GE(server_.lists(), 1);
  EXPECT_LE(server_.lists(), 3);
}

TEST_F(ReadCacheTest, AnEndedWatchSendsGetsToTheServerUntilTheCopyIsReloaded) {
  server_.Push("ADDED", Workspace("a", "old", 2), 2);
  server_.Bookmark(2);
  Start();
  ASSERT_TRUE(Eventually([&] { return cache_->ready(); }));
  cache_->Learn("t", "a", grpc::Status::OK);
  EXPECT_EQ(Get("t", "a", "old"), Answer::kFound);

  server_.EndWatch(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server restarted"));
  ASSERT_TRUE(Eventually([&] { return server_.watches() == 2; }));
  // The reload's initial state replaces the old copy whole: "old" is gone.
  server_.Push("ADDED", Workspace("a", "new", 7), 7);
  EXPECT_FALSE(cache_->ready() && cache_->revision() == 7);
  server_.Bookmark(7);
  ASSERT_TRUE(Eventually([&] { return cache_->ready() && cache_->revision() == 7; }));
  EXPECT_EQ(Get("t", "a", "old"), Answer::kNotFound);
  EXPECT_EQ(Get("t", "a", "new"), Answer::kFound);
}

TEST_F(ReadCacheTest, WithoutTheShimsOwnAccessThereIsNoCopy) {
  server_.RefuseWatches(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "who are you"));
  Start();
  ASSERT_TRUE(Eventually([&] { return server_.watches() >= 3; })) << "it retries";
  cache_->Learn("t", "a", grpc::Status::OK);
  EXPECT_FALSE(cache_->ready());
  EXPECT_EQ(Get("t", "a", "w"), Answer::kAskServer);
  cache_->Stop();
  EXPECT_EQ(Get("t", "a", "w"), Answer::kAskServer);
}

TEST_F(ReadCacheTest, ZeroTtlMeansNoCache) {
  server_.Bookmark(1);
  ReadCacheOptions options;
  options.authorization_ttl = absl::ZeroDuration();
  Start(options);
  cache_->Learn("t", "a", grpc::Status::OK);
  EXPECT_EQ(Get("t", "a", "w"), Answer::kAskServer);
  EXPECT_EQ(server_.watches(), 0);
}

TEST(CachedWorkspaceTest, EncodesOncePerVersion) {
  CachedWorkspace cached(std::make_unique<v1::Workspace>());
  int calls = 0;
  auto encode = [&] { return "json" + std::to_string(++calls); };
  EXPECT_EQ(*cached.Json("v1beta1", encode), "json1");
  EXPECT_EQ(*cached.Json("v1beta1", encode), "json1");
  EXPECT_EQ(*cached.Json("v1alpha1", encode), "json2");
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace kaito::shim
