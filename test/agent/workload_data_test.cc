// The supervisor's tuning data plane with a fake WorkloadData (files in a temp directory,
// transfers completed on the fake clock) and the simulated runtime: downloads before the
// containers, with progress; the push after every container exited 0 with the completion
// marker; each failure's reason; directories kept per workspace and forgotten once it
// succeeded and went.
#include "agent/data/workload_data.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/runtime/simulated_runtime.h"
#include "agent/supervisor/workload_supervisor.h"
#include "agent_test_util.h"
#include "common/clock.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::agent {
namespace {

using ::testing::HasSubstr;

class FakeWorkloadData : public WorkloadData {
 public:
  FakeWorkloadData(FakeClock* clock, std::string root) : clock_(clock), root_(std::move(root)) {}

  absl::StatusOr<std::string> VolumeDir(const std::string& ns, const std::string& workspace,
                                        const std::string& volume) override {
    const std::string dir = absl::StrCat(root_, "/", ns, "/", workspace, "/", volume);
    std::filesystem::create_directories(dir);
    return dir;
  }
  void Forget(const std::string& ns, const std::string& workspace) override {
    forgotten.push_back(ns + "/" + workspace);
    std::filesystem::remove_all(absl::StrCat(root_, "/", ns, "/", workspace));
  }
  void Download(const v1::DataDownload& d, const std::string& dir,
                Downloader::ProgressCallback progress,
                absl::AnyInvocable<void(absl::Status)> done) override {
    downloads.push_back(d.url());
    clock_->RunAfter(absl::Seconds(1), [=, done = std::move(done)]() mutable {
      if (absl::StrContains(d.url(), "missing")) {
        done(absl::NotFoundError("downloading " + d.url() + ": HTTP 404"));
        return;
      }
      std::ofstream(dir + "/" + d.file_name()) << "data of " << d.url();
      progress({100, 100});
      done(absl::OkStatus());
    });
  }
  void Push(const v1::ArtifactPush& p, const std::string& ns, const std::string& dir,
            absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) override {
    pushed_from = dir;
    clock_->RunAfter(absl::Seconds(1), [p, done = std::move(done)]() mutable {
      if (absl::StrContains(p.image(), "denied")) {
        done(absl::PermissionDeniedError("pushing " + p.image() + ": HTTP 403"));
        return;
      }
      done(std::string("sha256:0123"));
    });
  }

  std::vector<std::string> downloads;
  std::vector<std::string> forgotten;
  std::string pushed_from;

 private:
  FakeClock* const clock_;
  const std::string root_;
};

class WorkloadDataTest : public ::testing::Test {
 protected:
  WorkloadDataTest() {
    SimulatedRuntime::Options timing;
    timing.pull_delay = absl::Milliseconds(100);
    timing.start_delay = absl::Milliseconds(100);
    timing.job_duration = absl::Seconds(3);
    runtime_ = std::make_unique<SimulatedRuntime>(&clock_, timing);
    options_.node_name = "node-1";
    options_.data = &data_;
    strand_ = std::make_shared<WorkSerializer>();
    supervisor_ = std::make_unique<WorkloadSupervisor>(options_, &clock_, runtime_.get(), strand_,
                                                       [](const v1::WorkloadReport&) {});
  }
  ~WorkloadDataTest() override { supervisor_->Shutdown(); }

  v1::Workload Job(const std::string& image = "registry.example/adapter:1",
                   const std::string& url = "https://data.example/train.jsonl") {
    v1::Workload w = testing::TuningWorkload("tune-0", "uid-t", 1);
    v1::WorkloadSpec* s = w.mutable_spec();
    s->clear_init_containers();
    for (const char* v : {"data-volume", "results-volume"}) {
      v1::Volume* volume = s->add_volumes();
      volume->set_name(v);
      volume->set_empty_dir_medium("");
    }
    v1::DataDownload* d = s->add_downloads();
    d->set_url(url);
    d->set_volume("data-volume");
    d->set_file_name("train.jsonl");
    v1::ArtifactPush* p = s->mutable_push();
    p->set_image(image);
    p->set_volume("results-volume");
    p->add_files("adapter_model.safetensors");
    p->set_completion_marker("fine_tuning_completed.txt");
    return w;
  }
  void Apply(const v1::Workload& w, int64_t generation = 1) {
    strand_->Run([&] { supervisor_->Apply(generation, {w}); });
  }
  v1::WorkloadStatus Status() {
    v1::WorkloadStatus status;
    strand_->Run([&] {
      if (const auto* s = supervisor_->Find("default", "tune-0")) status = *s;
    });
    return status;
  }
  bool AdvanceUntil(const std::function<bool()>& condition) {
    for (int i = 0; i < 600 && !condition(); ++i) clock_.Advance(absl::Milliseconds(100));
    return condition();
  }
  std::string Dir(const std::string& volume) {
    return absl::StrCat(dir_.path(), "/default/ws/", volume);
  }

  kaito::testing::TempDir dir_;
  FakeClock clock_;
  FakeWorkloadData data_{&clock_, dir_.path()};
  WorkloadSupervisorOptions options_;
  std::unique_ptr<SimulatedRuntime> runtime_;
  std::shared_ptr<WorkSerializer> strand_;
  std::unique_ptr<WorkloadSupervisor> supervisor_;
};

TEST_F(WorkloadDataTest, DownloadsFirstThenTheJobThenThePush) {
  Apply(Job());
  EXPECT_EQ(Status().phase(), "Pulling");
  EXPECT_THAT(Status().message(), HasSubstr("downloading input 1 of 1"));
  EXPECT_TRUE(runtime_->Containers().empty()) << "no container before the input is there";
  ASSERT_TRUE(AdvanceUntil([&] { return !runtime_->Containers().empty(); }));
  EXPECT_EQ(kaito::testing::ReadFile(Dir("data-volume") + "/train.jsonl"),
            "data of https://data.example/train.jsonl");
  EXPECT_EQ(Status().data_bytes(), 100);
  // The job "writes" its adapter and the marker before it ends.
  std::ofstream(Dir("results-volume") + "/adapter_model.safetensors") << "weights";
  std::ofstream(Dir("results-volume") + "/fine_tuning_completed.txt") << "done";
  ASSERT_TRUE(AdvanceUntil([&] { return Status().phase() == "Succeeded"; })) << Status().message();
  EXPECT_THAT(Status().message(), HasSubstr("pushed registry.example/adapter:1 (sha256:0123)"));
  EXPECT_EQ(data_.pushed_from, Dir("results-volume"));
  // Gone from the desired set once it succeeded: its directories go.
  strand_->Run([&] { supervisor_->Apply(2, {}); });
  ASSERT_TRUE(AdvanceUntil([&] { return !data_.forgotten.empty(); }));
  EXPECT_EQ(data_.forgotten[0], "default/ws");
}

TEST_F(WorkloadDataTest, AFailedDownloadFailsTheWorkloadBeforeAnyContainer) {
  Apply(Job("registry.example/adapter:1", "https://data.example/missing.jsonl"));
  ASSERT_TRUE(AdvanceUntil([&] { return Status().phase() == "Failed"; }));
  EXPECT_EQ(Status().reason(), "InputDownloadFailed");
  EXPECT_THAT(Status().message(), HasSubstr("HTTP 404"));
  EXPECT_TRUE(runtime_->Containers().empty());
}

TEST_F(WorkloadDataTest, AJobWithoutItsCompletionMarkerPushesNothing) {
  Apply(Job());
  ASSERT_TRUE(AdvanceUntil([&] { return Status().phase() == "Failed"; }));
  EXPECT_EQ(Status().reason(), "JobFailed");
  EXPECT_THAT(Status().message(), HasSubstr("did not write fine_tuning_completed.txt"));
  EXPECT_TRUE(data_.pushed_from.empty());
}

TEST_F(WorkloadDataTest, ARefusedPushFailsTheJobWithTheRegistrysError) {
  Apply(Job("registry.example/denied:1"));
  ASSERT_TRUE(AdvanceUntil([&] { return !runtime_->Containers().empty(); }));
  std::ofstream(Dir("results-volume") + "/fine_tuning_completed.txt") << "done";
  ASSERT_TRUE(AdvanceUntil([&] { return Status().phase() == "Failed"; }));
  EXPECT_EQ(Status().reason(), "OutputPushFailed");
  EXPECT_THAT(Status().message(), HasSubstr("HTTP 403"));
  // A failed workspace keeps its directories (a retry resumes from its checkpoints).
  strand_->Run([&] { supervisor_->Apply(2, {}); });
  AdvanceUntil([&] { return false; });
  EXPECT_TRUE(data_.forgotten.empty());
  EXPECT_TRUE(std::filesystem::exists(Dir("results-volume") + "/fine_tuning_completed.txt"));
}

}  // namespace
}  // namespace kaito::agent
