// The server's side of the agent protocol (AgentSession and the SessionRegistry), without
// gRPC: messages in, store writes and server messages out, over the in-memory world.
#include "server/agents/agent_session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/agents/lease_tracker.h"
#include "server/agents/session_registry.h"
#include "server/controllers/node_lifecycle_reconciler.h"
#include "server/registry/kinds/controller_kinds.h"
#include "server/store/memory_store.h"
#include "test/controllers/world.h"

namespace kaito::server {
namespace {

using ::testing::HasSubstr;
using testing::World;

class AgentSessionTest : public ::testing::Test {
 protected:
  AgentSessionTest()
      : leases_(&world_.clock_, absl::Seconds(20), nullptr),
        sessions_(&world_.workloads_, &world_.clock_) {
    EXPECT_TRUE(sessions_.Start().ok());
    deps_.objects = world_.objects_;
    deps_.leases = &leases_;
    deps_.sessions = &sessions_;
    deps_.events = &world_.recorder_;
    deps_.clock = &world_.clock_;
    deps_.stats = &stats_;
    deps_.status_writer = std::make_shared<WorkloadStatusWriter>(&world_.workloads_);
    deps_.options.heartbeat_interval = absl::Seconds(5);
  }

  std::unique_ptr<AgentSession> Session() {
    return std::make_unique<AgentSession>(
        &deps_, [this](v1::ServerMessage m) { sent_.push_back(std::move(m)); },
        [this](const absl::Status& s) { closed_ = s; }, "test-peer");
  }

  static v1::AgentMessage Hello(const std::string& node) {
    v1::AgentMessage m;
    v1::AgentHello* h = m.mutable_hello();
    h->set_node_name(node);
    (*h->mutable_labels())["app"] = "phi";
    h->set_instance_type("Standard_NC24ads_A100_v4");
    h->set_address("10.0.0.7");
    v1::GpuInfo* g = h->add_gpus();
    g->set_model("NVIDIA A100 80GB PCIe");
    g->set_memory_bytes(int64_t{80} << 30);
    g->set_compute_capability("8.0");
    g->set_healthy(true);
    return m;
  }

  // A workload placed on `node`, as the workspace controller makes one.
  v1::Workload Place(const std::string& name, const std::string& node) {
    v1::Workload w;
    w.mutable_metadata()->set_name(name);
    w.mutable_metadata()->add_finalizers(kWorkloadFinalizer);
    w.mutable_spec()->set_name(name);
    w.mutable_spec()->set_node_name(node);
    auto created = CreateSync(world_.workloads_, w);
    EXPECT_TRUE(created.ok());
    return created->object;
  }

  static v1::AgentMessage Report(const v1::Workload& w, const std::string& phase) {
    v1::AgentMessage m;
    m.mutable_workload()->set_namespace_(w.metadata().namespace_());
    m.mutable_workload()->set_name(w.metadata().name());
    m.mutable_workload()->set_uid(w.metadata().uid());
    m.mutable_workload()->mutable_status()->set_phase(phase);
    return m;
  }

  World world_;
  LeaseTracker leases_;
  SessionRegistry sessions_;
  AgentSessionStats stats_;
  AgentSessionDeps deps_;
  std::vector<v1::ServerMessage> sent_;
  std::optional<absl::Status> closed_;
};

TEST_F(AgentSessionTest, HelloRegistersTheNodeWelcomesAndSendsItsDesiredSet) {
  const v1::Workload placed = Place("phi-0", "gpu-a");
  auto session = Session();
  session->OnMessage(Hello("gpu-a"));
  world_.clock_.Advance(absl::ZeroDuration());  // The registry's flush runs on the clock.
  ASSERT_FALSE(closed_);
  ASSERT_GE(sent_.size(), 2u);
  EXPECT_EQ(sent_[0].welcome().heartbeat_interval_ms(), 5000);
  EXPECT_EQ(sent_[0].welcome().lease_ttl_ms(), 20000);
  ASSERT_TRUE(sent_.back().has_desired());
  ASSERT_EQ(sent_.back().desired().workloads_size(), 1);
  EXPECT_EQ(sent_.back().desired().workloads(0).metadata().uid(), placed.metadata().uid());

  auto node = world_.nodes_.GetShared("", "gpu-a");
  ASSERT_NE(node, nullptr);
  const auto& labels = node->metadata().labels();
  EXPECT_EQ(labels.at("app"), "phi");
  EXPECT_EQ(labels.at("nvidia.com/gpu.product"), "NVIDIA-A100-80GB-PCIe");
  EXPECT_EQ(labels.at("nvidia.com/gpu.count"), "1");
  EXPECT_EQ(labels.at("nvidia.com/gpu.memory"), "81920");
  EXPECT_EQ(labels.at("nvidia.com/cuda.compute.major"), "8");
  EXPECT_EQ(labels.at(kLabelInstanceType), "Standard_NC24ads_A100_v4");
  EXPECT_EQ(node->metadata().annotations().at(kAnnotationAgentManaged), "true");
  EXPECT_TRUE(NodeIsReady(*node));
  EXPECT_EQ(node->status().address(), "10.0.0.7");
  EXPECT_EQ(node->status().capacity().at("nvidia.com/gpu"), "1");

  // A new workload for the node: a new desired set with a higher generation.
  const int64_t generation = sent_.back().desired().generation();
  Place("phi-1", "gpu-a");
  world_.clock_.Advance(absl::ZeroDuration());
  ASSERT_TRUE(sent_.back().has_desired());
  EXPECT_EQ(sent_.back().desired().workloads_size(), 2);
  EXPECT_GT(sent_.back().desired().generation(), generation);
  session->OnStreamEnd();
  EXPECT_FALSE(sessions_.Connected("gpu-a"));
}

TEST_F(AgentSessionTest, ProtocolViolationsCloseTheSessionAndChangeNothing) {
  auto session = Session();
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_sequence(1);
  session->OnMessage(heartbeat);
  ASSERT_TRUE(closed_);
  EXPECT_EQ(closed_->code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(closed_->message(), HasSubstr("must be a Hello"));

  for (auto mutate : std::vector<std::function<void(v1::AgentHello*)>>{
           [](v1::AgentHello* h) { h->set_node_name("Bad_Name"); },
           [](v1::AgentHello* h) { (*h->mutable_labels())["bad key"] = "v"; },
           [](v1::AgentHello* h) { h->mutable_gpus(0)->set_memory_bytes(-1); },
           [](v1::AgentHello* h) {
             for (int i = 0; i < 65; ++i) *h->add_gpus() = h->gpus(0);
           }}) {
    closed_.reset();
    auto bad = Session();
    v1::AgentMessage hello = Hello("gpu-a");
    mutate(hello.mutable_hello());
    bad->OnMessage(hello);
    ASSERT_TRUE(closed_);
    EXPECT_EQ(closed_->code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(closed_->message(), HasSubstr("hello."));
  }
  EXPECT_EQ(world_.nodes_.ListShared("").size(), 0u) << "nothing registered";

  closed_.reset();
  auto twice = Session();
  twice->OnMessage(Hello("gpu-a"));
  twice->OnMessage(Hello("gpu-a"));
  ASSERT_TRUE(closed_);
  EXPECT_THAT(closed_->message(), HasSubstr("second Hello"));
  EXPECT_EQ(stats_.protocol_errors.load(), 6);
}

TEST_F(AgentSessionTest, ReportsAreAcceptedOnlyForTheNodesOwnWorkloads) {
  const v1::Workload mine = Place("mine-0", "gpu-a");
  const v1::Workload theirs = Place("theirs-0", "gpu-b");
  auto session = Session();
  session->OnMessage(Hello("gpu-a"));
  session->OnMessage(Report(mine, "Ready"));
  session->OnMessage(Report(theirs, "Failed"));
  v1::AgentMessage stale = Report(mine, "Failed");
  stale.mutable_workload()->set_uid("an-older-incarnation");
  session->OnMessage(stale);
  EXPECT_FALSE(closed_) << "a rejected report does not end the session";
  EXPECT_EQ(world_.workloads_.GetShared("default", "mine-0")->status().phase(), "Ready");
  EXPECT_EQ(world_.workloads_.GetShared("default", "theirs-0")->status().phase(), "");
  EXPECT_EQ(stats_.rejected_reports.load(), 2);
  EXPECT_EQ(stats_.reports.load(), 1);
}

TEST_F(AgentSessionTest, RestartsNeverGoBackWithinOneIncarnation) {
  const v1::Workload w = Place("phi-0", "gpu-a");
  auto session = Session();
  session->OnMessage(Hello("gpu-a"));
  v1::AgentMessage crashed = Report(w, "Ready");
  crashed.mutable_workload()->mutable_status()->set_restarts(2);
  session->OnMessage(crashed);
  ASSERT_EQ(world_.workloads_.GetShared("default", "phi-0")->status().restarts(), 2);
  // A restarted agent adopts the container and has counted nothing yet.
  v1::AgentMessage adopted = Report(w, "Pending");
  session->OnMessage(adopted);
  const auto stored = world_.workloads_.GetShared("default", "phi-0");
  EXPECT_EQ(stored->status().phase(), "Pending") << "the rest of the report is taken";
  EXPECT_EQ(stored->status().restarts(), 2);
  v1::AgentMessage again = Report(w, "Ready");
  again.mutable_workload()->mutable_status()->set_restarts(3);
  session->OnMessage(again);
  EXPECT_EQ(world_.workloads_.GetShared("default", "phi-0")->status().restarts(), 3);
}

TEST_F(AgentSessionTest, StoppedReportReleasesADeletedWorkload) {
  const v1::Workload w = Place("phi-0", "gpu-a");
  auto session = Session();
  session->OnMessage(Hello("gpu-a"));
  ASSERT_TRUE(DeleteSync(world_.workloads_, "default", "phi-0").ok());
  ASSERT_NE(world_.workloads_.GetShared("default", "phi-0"), nullptr) << "held by its finalizer";
  world_.clock_.Advance(absl::ZeroDuration());
  ASSERT_TRUE(sent_.back().has_desired());
  EXPECT_EQ(sent_.back().desired().workloads_size(), 0) << "a deleting workload is not desired";
  session->OnMessage(Report(w, "Stopped"));
  EXPECT_EQ(world_.workloads_.GetShared("default", "phi-0"), nullptr);
}

TEST_F(AgentSessionTest, HelloReleasesADeletedWorkloadTheAgentNoLongerRuns) {
  // The agent stopped it while disconnected, so its Stopped report was lost with the
  // stream; its next Hello does not list it.
  const v1::Workload w = Place("phi-0", "gpu-a");
  ASSERT_TRUE(DeleteSync(world_.workloads_, "default", "phi-0").ok());
  ASSERT_NE(world_.workloads_.GetShared("default", "phi-0"), nullptr);
  auto session = Session();
  session->OnMessage(Hello("gpu-a"));
  EXPECT_EQ(world_.workloads_.GetShared("default", "phi-0"), nullptr);
  // One it still runs is kept until it says Stopped.
  const v1::Workload kept = Place("phi-1", "gpu-a");
  ASSERT_TRUE(DeleteSync(world_.workloads_, "default", "phi-1").ok());
  auto again = Session();
  v1::AgentMessage hello = Hello("gpu-a");
  *hello.mutable_hello()->add_running() = Report(kept, "Ready").workload();
  again->OnMessage(hello);
  EXPECT_NE(world_.workloads_.GetShared("default", "phi-1"), nullptr);
}

TEST_F(AgentSessionTest, ASecondSessionForTheNodeReplacesTheFirst) {
  auto first = Session();
  first->OnMessage(Hello("gpu-a"));
  std::optional<absl::Status> first_closed = closed_;
  EXPECT_FALSE(first_closed);
  auto second = Session();
  second->OnMessage(Hello("gpu-a"));
  ASSERT_TRUE(closed_);
  EXPECT_EQ(closed_->code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(sessions_.Connected("gpu-a"));
  first->OnStreamEnd();
  EXPECT_TRUE(sessions_.Connected("gpu-a")) << "the old session's end leaves the new one";
}

TEST(LifecycleTest, ANodeThatRenewsAgainIsReadyAgainAndLostNodesLoseTheirWorkloads) {
  World world;
  LeaseTracker leases(&world.clock_, absl::Seconds(20), nullptr);
  NodeLifecycleOptions options;
  options.lost_grace = absl::Seconds(30);
  NodeLifecycleReconciler lifecycle(world.objects_, &leases, &world.recorder_, &world.clock_,
                                    options);
  v1::Node node;
  node.mutable_metadata()->set_name("gpu-a");
  (*node.mutable_metadata()->mutable_annotations())[kAnnotationAgentManaged] = "true";
  SetCondition(node.mutable_status()->mutable_conditions(), "Ready", true, "AgentReady", "", 0,
               world.clock_.Now());
  ASSERT_TRUE(CreateSync(world.nodes_, node).ok());
  leases.Renew("gpu-a");
  auto ready = [&] { return NodeIsReady(*world.nodes_.GetShared("", "gpu-a")); };
  auto reason = [&] {
    return FindCondition(world.nodes_.GetShared("", "gpu-a")->status().conditions(), "Ready")
        ->reason();
  };
  auto r = lifecycle.Reconcile("gpu-a");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->requeue_after, absl::Seconds(20)) << "looks again when the lease expires";
  world.clock_.Advance(absl::Seconds(20));
  ASSERT_TRUE(lifecycle.Reconcile("gpu-a").ok());
  EXPECT_FALSE(ready());
  EXPECT_EQ(reason(), "NodeStatusUnknown");
  // The agent stalled but kept its stream: it renews, and no Hello comes.
  leases.Renew("gpu-a");
  ASSERT_TRUE(lifecycle.Reconcile("gpu-a").ok());
  EXPECT_TRUE(ready()) << "Ready again without a new Hello";

  // This time it stays away: NotReady, then lost after the grace, with its workload.
  v1::Workload w;
  w.mutable_metadata()->set_name("phi-0");
  w.mutable_spec()->set_node_name("gpu-a");
  ASSERT_TRUE(CreateSync(world.workloads_, w).ok());
  world.clock_.Advance(absl::Seconds(20));
  ASSERT_TRUE(lifecycle.Reconcile("gpu-a").ok());
  EXPECT_EQ(reason(), "NodeStatusUnknown");
  world.clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(lifecycle.Reconcile("gpu-a").ok());
  EXPECT_EQ(reason(), "NodeLost");
  EXPECT_EQ(world.workloads_.GetShared("default", "phi-0")->status().phase(), "Lost");
}

TEST(RegistryTest, StatusOfAnOlderIncarnationIsNotWrittenOverANewOne) {
  World world;
  v1::Workload w;
  w.mutable_metadata()->set_name("phi-0");
  auto first = CreateSync(world.workloads_, w);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(DeleteSync(world.workloads_, "default", "phi-0").ok());
  ASSERT_TRUE(CreateSync(world.workloads_, w).ok());
  v1::Workload stale = first->object;
  stale.mutable_metadata()->clear_resource_version();
  stale.mutable_status()->set_phase("Lost");
  auto written = UpdateStatusSync(world.workloads_, stale);
  EXPECT_EQ(written.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(world.workloads_.GetShared("default", "phi-0")->status().phase(), "");
}

// A store whose writes wait until the test releases them, newest first: what a busy
// writer thread that retries conflicts can do to writes that raced.
class HeldStore : public store::Store {
 public:
  explicit HeldStore(store::Store* inner) : inner_(inner) {}
  void Put(std::string key, std::string value, int64_t expected,
           store::WriteCallback done) override {
    held_.push_back([=, this, done = std::move(done)]() mutable {
      inner_->Put(key, value, expected, std::move(done));
    });
  }
  void Delete(std::string key, int64_t expected, store::WriteCallback done) override {
    inner_->Delete(std::move(key), expected, std::move(done));
  }
  absl::StatusOr<store::KeyValue> Get(const std::string& key) override { return inner_->Get(key); }
  absl::StatusOr<store::ListResult> List(const std::string& prefix) override {
    return inner_->List(prefix);
  }
  absl::StatusOr<std::unique_ptr<store::WatchHandle>> Watch(const std::string& prefix,
                                                            int64_t after,
                                                            store::WatchCallback cb) override {
    return inner_->Watch(prefix, after, std::move(cb));
  }
  int64_t CurrentRevision() override { return inner_->CurrentRevision(); }
  int64_t CompactedRevision() override { return inner_->CompactedRevision(); }
  absl::Status Compact(int64_t revision) override { return inner_->Compact(revision); }
  std::string Backend() const override { return "held"; }

  // Applies every held write, newest first, until none is left (completions may hold more).
  void ReleaseNewestFirst() {
    while (!held_.empty()) {
      auto write = std::move(held_.back());
      held_.pop_back();
      write();
    }
  }

 private:
  store::Store* inner_;
  std::vector<absl::AnyInvocable<void()>> held_;
};

class WorkloadStatusWriterTest : public ::testing::Test {
 protected:
  WorkloadStatusWriterTest()
      : held_(&inner_),
        cache_(&inner_, "/workloads/", &v1::Workload::default_instance()),
        workloads_(WorkloadPolicy(), &held_, &cache_, &clock_) {
    EXPECT_TRUE(cache_.Start().ok());
    v1::Workload w;
    w.mutable_metadata()->set_name("phi-0");
    w.mutable_spec()->set_node_name("gpu-a");
    workloads_.Create(w, false, [&](auto r) { created_ = r->object; });
    held_.ReleaseNewestFirst();
  }

  std::vector<v1::Workload> Reports() {
    std::vector<v1::Workload> out;
    for (const char* phase : {"Pulling", "Starting", "Running", "Ready"}) {
      v1::Workload update = created_;
      update.mutable_status()->set_phase(phase);
      out.push_back(update);
    }
    return out;
  }
  std::string StoredPhase() { return workloads_.GetShared("default", "phi-0")->status().phase(); }

  FakeClock clock_;
  store::MemoryStore inner_;
  HeldStore held_;
  ObjectCache cache_;
  ObjectRegistry<v1::Workload> workloads_;
  v1::Workload created_;
};

TEST_F(WorkloadStatusWriterTest, TheNewestReportWinsWhenWritesRace) {
  auto writer = std::make_shared<WorkloadStatusWriter>(&workloads_);
  for (v1::Workload& report : Reports()) writer->Write(std::move(report));
  held_.ReleaseNewestFirst();
  EXPECT_EQ(StoredPhase(), "Ready");
}

TEST_F(WorkloadStatusWriterTest, UnserializedWritesThatRaceCanLeaveAnOlderPhase) {
  // What the writer prevents: the same reports written directly, all at once and
  // unconditionally (as the session did before), so conflicts are retried in any order.
  for (v1::Workload& report : Reports()) {
    report.mutable_metadata()->clear_resource_version();
    workloads_.UpdateStatus(std::move(report), [](auto) {});
  }
  held_.ReleaseNewestFirst();
  EXPECT_NE(StoredPhase(), "Ready");
}

}  // namespace
}  // namespace kaito::server
