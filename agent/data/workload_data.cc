#include "agent/data/workload_data.h"

#include <sys/stat.h>

#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/k8s_names.h"
#include "common/logging.h"
#include "spdlog/spdlog.h"

namespace kaito::agent {
namespace {

oci::ClientOptions Plain(bool plain) {
  oci::ClientOptions o;
  o.plain_http = plain;
  return o;
}

// A name that is safe as one path component (Kubernetes names are; check again).
bool SafeComponent(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\0') == std::string::npos && s.size() <= 253;
}

}  // namespace

AgentWorkloadData::AgentWorkloadData(Clock* clock, http::HttpClient* http,
                                     AgentWorkloadDataOptions options)
    : options_(std::move(options)),
      downloader_(clock, http, options_.download),
      http_(http),
      secure_(http, Plain(false)),
      plain_(http, Plain(true)) {}

absl::StatusOr<std::string> AgentWorkloadData::VolumeDir(const std::string& ns,
                                                         const std::string& workspace,
                                                         const std::string& volume) {
  if (options_.root.empty()) {
    return absl::FailedPreconditionError(
        "this workload needs the agent's --state-dir (its data and results directories)");
  }
  for (const std::string* part : {&ns, &workspace, &volume}) {
    if (!SafeComponent(*part)) {
      return absl::InvalidArgumentError(absl::StrCat("\"", *part, "\" is not a directory name"));
    }
  }
  const std::string dir = absl::StrCat(options_.root, "/", ns, "/", workspace, "/", volume);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  // The containers' users may not be root: the job writes its results here.
  chmod(dir.c_str(), 0777);
  return dir;
}

void AgentWorkloadData::Forget(const std::string& ns, const std::string& workspace) {
  if (options_.root.empty() || !SafeComponent(ns) || !SafeComponent(workspace)) return;
  std::error_code ec;
  std::filesystem::remove_all(absl::StrCat(options_.root, "/", ns, "/", workspace), ec);
  if (ec) {
    LogAbout(spdlog::level::warn, WorkspaceSubject(ns, workspace), "cannot remove its data: {}",
             ec.message());
  }
}

void AgentWorkloadData::Download(const v1::DataDownload& download, const std::string& dir,
                                 Downloader::ProgressCallback progress,
                                 absl::AnyInvocable<void(absl::Status)> done) {
  if (!SafeComponent(download.file_name())) {
    std::move(done)(absl::InvalidArgumentError(
        absl::StrCat("download file name \"", download.file_name(), "\" is not a file name")));
    return;
  }
  // Each progress report's increase is what arrived (a resumed part was counted before).
  auto last = std::make_shared<int64_t>(0);
  auto on_bytes = options_.on_bytes;
  downloader_.Download(
      download.url(), dir + "/" + download.file_name(),
      [progress = std::move(progress), last, on_bytes](const DownloadProgress& p) {
        if (on_bytes && p.bytes > *last) on_bytes("downloaded", p.bytes - *last);
        *last = p.bytes;
        if (progress) progress(p);
      },
      std::move(done));
}

void AgentWorkloadData::Push(const v1::ArtifactPush& push, const std::string& ns,
                             const std::string& dir,
                             absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) {
  auto ref = oci::ParseReference(push.image());
  if (!ref.ok()) {
    std::move(done)(ref.status());
    return;
  }
  std::vector<std::string> files;
  for (const std::string& f : push.files()) {
    if (!SafeComponent(f)) continue;
    if (std::filesystem::is_regular_file(dir + "/" + f)) files.push_back(dir + "/" + f);
  }
  if (files.empty()) {
    std::move(done)(absl::FailedPreconditionError(
        absl::StrCat("none of the output files (", push.files_size(), ") is in the results")));
    return;
  }
  std::map<std::string, std::string> annotations(push.annotations().begin(),
                                                 push.annotations().end());
  // Push credentials come with the workload's Secret through the session; until then the
  // registry must accept the agent without them.
  oci::RegistryClient& client =
      options_.insecure_registries.contains(ref->registry) ? plain_ : secure_;
  int64_t bytes = 0;
  for (const std::string& f : files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(f, ec);
    if (!ec) bytes += static_cast<int64_t>(size);
  }
  client.Push(*ref, files, annotations, std::nullopt,
              [bytes, on_bytes = options_.on_bytes,
               done = std::move(done)](absl::StatusOr<std::string> digest) mutable {
                if (digest.ok() && on_bytes) on_bytes("pushed", bytes);
                std::move(done)(std::move(digest));
              });
}

}  // namespace kaito::agent
