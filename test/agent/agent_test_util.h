// Workload builders and clock helpers shared by the agent tests.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "kaito/v1/workload.pb.h"
#include "support/process.h"

namespace kaito::agent::testing {

inline v1::Workload InferenceWorkload(const std::string& name, const std::string& uid,
                                      int64_t generation, const std::string& image = "vllm:1",
                                      int port = 5000) {
  v1::Workload w;
  w.mutable_metadata()->set_namespace_("default");
  w.mutable_metadata()->set_name(name);
  w.mutable_metadata()->set_uid(uid);
  w.mutable_metadata()->set_generation(generation);
  v1::WorkloadSpec* s = w.mutable_spec();
  s->set_name(name);
  s->set_workspace("ws");
  s->set_namespace_("default");
  s->set_role("inference");
  s->set_restart_policy("Always");
  s->set_gpus(1);
  v1::ContainerSpec* c = s->add_containers();
  c->set_name("main");
  c->set_image(image);
  c->add_command("python3");
  c->add_args("serve.py");
  c->set_gpus(1);
  c->add_ports()->set_container_port(port);
  c->mutable_readiness_probe()->set_http_path("/health");
  c->mutable_readiness_probe()->set_port(port);
  return w;
}

inline v1::Workload TuningWorkload(const std::string& name, const std::string& uid,
                                   int64_t generation, const std::string& image = "tuner:1") {
  v1::Workload w;
  w.mutable_metadata()->set_namespace_("default");
  w.mutable_metadata()->set_name(name);
  w.mutable_metadata()->set_uid(uid);
  w.mutable_metadata()->set_generation(generation);
  v1::WorkloadSpec* s = w.mutable_spec();
  s->set_name(name);
  s->set_workspace("ws");
  s->set_role("tuning");
  s->set_restart_policy("Never");
  v1::ContainerSpec* init = s->add_init_containers();
  init->set_name("data-downloader");
  init->set_image("downloader:1");
  v1::ContainerSpec* c = s->add_containers();
  c->set_name("tuner");
  c->set_image(image);
  c->set_gpus(1);
  return w;
}

// Advances `clock` by `step` until `condition` holds, letting other threads (gRPC) catch up
// between steps; false after `wall` of real time.
inline bool AdvanceUntil(FakeClock& clock, const std::function<bool()>& condition,
                         absl::Duration step = absl::Milliseconds(100),
                         absl::Duration wall = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + wall;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    clock.Advance(step);
    if (kaito::testing::WaitFor(condition, absl::Milliseconds(20))) return true;
  }
  return condition();
}

// The phases of `reports` with repeats folded.
template <typename Reports>
std::vector<std::string> Phases(const Reports& reports) {
  std::vector<std::string> phases;
  for (const auto& r : reports) {
    if (phases.empty() || phases.back() != r.status().phase()) phases.push_back(r.status().phase());
  }
  return phases;
}

}  // namespace kaito::agent::testing
