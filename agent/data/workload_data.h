// The seam between the workload supervisor and the agent's own transfers: the host
// directories of the volumes the agent fills or reads (a tuning job's data and results), the
// downloads of its input URLs and the push of its output artifact. `AgentWorkloadData` is the
// real one (Downloader, oci::RegistryClient, directories under --state-dir); tests use a fake.
// Without one (the simulated fleet), the supervisor simulates the transfers: it says so and
// moves on, as the simulated runtime runs nothing.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "agent/data/downloader.h"
#include "agent/oci/registry_client.h"
#include "common/clock.h"
#include "common/http/http_client.h"
#include "kaito/v1/workload.pb.h"

namespace kaito::agent {

class WorkloadData {
 public:
  virtual ~WorkloadData() = default;
  // The host directory of `volume` of the workspace's workloads, created when missing. Keyed
  // by workspace, not workload: a tuning job retried on this node finds its checkpoints.
  virtual absl::StatusOr<std::string> VolumeDir(const std::string& ns, const std::string& workspace,
                                                const std::string& volume) = 0;
  // Removes the workspace's directories (its workload succeeded and went).
  virtual void Forget(const std::string& ns, const std::string& workspace) = 0;
  // Callbacks run on any thread; the supervisor posts them to its strand.
  virtual void Download(const v1::DataDownload& download, const std::string& dir,
                        Downloader::ProgressCallback progress,
                        absl::AnyInvocable<void(absl::Status)> done) = 0;
  // Pushes the files of `push` that exist in `dir`; the manifest digest.
  virtual void Push(const v1::ArtifactPush& push, const std::string& ns, const std::string& dir,
                    absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) = 0;
};

struct AgentWorkloadDataOptions {
  // Where volume directories go: ROOT/<namespace>/<workspace>/<volume>.
  std::string root;
  DownloadOptions download;
  // Registries reached over plain HTTP (a local or test registry), as host[:port].
  std::set<std::string> insecure_registries;
  // Told of the bytes moved: "downloaded" as they arrive, "pushed" once a push succeeded (the
  // sizes of its files). Any thread; must not block (metrics).
  std::function<void(const char* direction, int64_t bytes)> on_bytes;
};

class AgentWorkloadData : public WorkloadData {
 public:
  // `clock` and `http` outlive it.
  AgentWorkloadData(Clock* clock, http::HttpClient* http, AgentWorkloadDataOptions options);

  absl::StatusOr<std::string> VolumeDir(const std::string& ns, const std::string& workspace,
                                        const std::string& volume) override;
  void Forget(const std::string& ns, const std::string& workspace) override;
  void Download(const v1::DataDownload& download, const std::string& dir,
                Downloader::ProgressCallback progress,
                absl::AnyInvocable<void(absl::Status)> done) override;
  void Push(const v1::ArtifactPush& push, const std::string& ns, const std::string& dir,
            absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) override;

 private:
  const AgentWorkloadDataOptions options_;
  Downloader downloader_;
  http::HttpClient* const http_;
  oci::RegistryClient secure_;
  oci::RegistryClient plain_;
};

}  // namespace kaito::agent
