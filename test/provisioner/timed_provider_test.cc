// TimedProvider over a fake provider whose phases the test sets, with a fake clock: a
// create is timed from its first call to the first answer that shows it Running or Failed,
// a delete to the answer that says it is gone, and the in-flight gauges follow.
#include "provisioner/provider/timed_provider.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <map>
#include <optional>

#include "common/clock.h"

namespace kaito::provisioner {
namespace {

// Answers at once from `phases`.
class PhaseProvider : public NodeProvider {
 public:
  void CreateNode(const v1::CreateNodeRequest& request, NodeDone done) override {
    if (request.claim_name().empty()) {
      std::move(done)(absl::InvalidArgumentError("no claim"));
      return;
    }
    phases.emplace(request.claim_name(), "Creating");
    std::move(done)(Node(request.claim_name()));
  }
  void GetNode(const std::string& claim, NodeDone done) override { std::move(done)(Node(claim)); }
  void DeleteNode(const std::string& claim, DeleteDone done) override {
    std::move(done)(!phases.contains(claim));
  }
  void ListNodes(ListDone done) override {
    std::vector<v1::ProvisionedNode> all;
    for (const auto& [claim, phase] : phases) all.push_back(Node(claim));
    std::move(done)(std::move(all));
  }
  std::string Name() const override { return "phases"; }

  v1::ProvisionedNode Node(const std::string& claim) {
    v1::ProvisionedNode n;
    n.set_claim_name(claim);
    n.set_phase(phases[claim]);
    return n;
  }
  std::map<std::string, std::string> phases;
};

// The (count, sum) of a histogram series, or the value of a gauge series.
struct Series {
  uint64_t count = 0;
  double sum = 0;
  double value = 0;
  bool found = false;
};
Series Find(prometheus::Registry& registry, const std::string& name,
            const std::map<std::string, std::string>& labels) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : m.label) have[l.name] = l.value;
      if (have != labels) continue;
      return {m.histogram.sample_count, m.histogram.sample_sum, m.gauge.value, true};
    }
  }
  return {};
}

TEST(TimedProviderTest, CreatesAndDeletesAreTimedAsTheCallersSeeThem) {
  FakeClock clock;
  PhaseProvider cloud;
  prometheus::Registry registry;
  TimedProvider timed(&cloud, &clock, registry);
  auto create = [&](const std::string& claim) {
    v1::CreateNodeRequest r;
    r.set_claim_name(claim);
    timed.CreateNode(r, [](absl::StatusOr<v1::ProvisionedNode>) {});
  };
  auto get = [&](const std::string& claim) {
    timed.GetNode(claim, [](absl::StatusOr<v1::ProvisionedNode>) {});
  };
  const char* kDuration = "kaito_provisioner_operation_duration_seconds";
  const char* kInFlight = "kaito_provisioner_operations_in_flight";

  create("a");
  create("b");
  EXPECT_EQ(Find(registry, kInFlight, {{"operation", "create"}}).value, 2);
  clock.Advance(absl::Seconds(30));
  create("a");  // Called again (idempotent): the first start counts.
  clock.Advance(absl::Seconds(60));
  cloud.phases["a"] = "Running";
  get("a");
  get("a");  // Seen again: counted once.
  Series ok = Find(registry, kDuration, {{"operation", "create"}, {"result", "succeeded"}});
  ASSERT_TRUE(ok.found);
  EXPECT_EQ(ok.count, 1u);
  EXPECT_DOUBLE_EQ(ok.sum, 90);
  clock.Advance(absl::Seconds(10));
  cloud.phases["b"] = "Failed";
  timed.ListNodes([](absl::StatusOr<std::vector<v1::ProvisionedNode>>) {});
  Series failed = Find(registry, kDuration, {{"operation", "create"}, {"result", "failed"}});
  EXPECT_EQ(failed.count, 1u);
  EXPECT_DOUBLE_EQ(failed.sum, 100);
  EXPECT_EQ(Find(registry, kInFlight, {{"operation", "create"}}).value, 0);

  // A refused create is no operation.
  create("");
  EXPECT_EQ(Find(registry, kInFlight, {{"operation", "create"}}).value, 0);

  // Delete: from the first call to "gone".
  timed.DeleteNode("a", [](absl::StatusOr<bool>) {});
  EXPECT_EQ(Find(registry, kInFlight, {{"operation", "delete"}}).value, 1);
  clock.Advance(absl::Seconds(45));
  cloud.phases.erase("a");
  timed.DeleteNode("a", [](absl::StatusOr<bool>) {});
  Series deleted = Find(registry, kDuration, {{"operation", "delete"}, {"result", "succeeded"}});
  EXPECT_EQ(deleted.count, 1u);
  EXPECT_DOUBLE_EQ(deleted.sum, 45);
  EXPECT_EQ(Find(registry, kInFlight, {{"operation", "delete"}}).value, 0);
}

}  // namespace
}  // namespace kaito::provisioner
