#include "tools/kaitoctl/workspace_waiter.h"

#include <algorithm>
#include <thread>

namespace kaito::ctl {
namespace {

// Stream endings after which the workspace is read afresh and the watch resumed.
bool Resumable(grpc::StatusCode code) {
  return code == grpc::OK || code == grpc::DEADLINE_EXCEEDED || code == grpc::OUT_OF_RANGE ||
         code == grpc::UNAVAILABLE || code == grpc::ABORTED || code == grpc::CANCELLED;
}

bool Retryable(grpc::StatusCode code) {
  return code == grpc::UNAVAILABLE || code == grpc::DEADLINE_EXCEEDED;
}

struct WatchEnd {
  bool met = false;
  CallStatus status;
};

// Streams the workspace's changes after `resource_version` until `done` or the stream ends.
WatchEnd WatchChanges(Client& c, const std::string& ns, const std::string& name,
                      std::string& resource_version, const WorkspaceDone& done,
                      absl::Time watch_until, std::optional<v1::Workspace>& last) {
  auto ctx = c.StreamContext(watch_until);
  v1::WatchWorkspacesRequest req;
  req.set_namespace_(ns);
  req.set_name(name);
  req.set_resource_version(resource_version);
  auto reader = c.workspaces().WatchWorkspaces(ctx.get(), req);
  v1::WorkspaceEvent event;
  WatchEnd end;
  while (!end.met && reader->Read(&event)) {
    if (!event.resource_version().empty()) resource_version = event.resource_version();
    if (event.type() == v1::BOOKMARK) continue;
    if (event.type() == v1::DELETED) {
      end.met = done(nullptr);
    } else {
      last = event.object();
      end.met = done(&*last);
    }
  }
  if (end.met) ctx->TryCancel();
  end.status = c.Finished(reader->Finish(), *ctx);
  return end;
}

WaitResult Ended(WaitResult::Outcome outcome, std::optional<v1::Workspace> last) {
  WaitResult r;
  r.outcome = outcome;
  r.last = std::move(last);
  return r;
}

}  // namespace

WaitResult WaitForWorkspace(Client& c, const std::string& ns, const std::string& name,
                            const WorkspaceDone& done, absl::Time deadline,
                            std::optional<v1::Workspace> initial) {
  using Outcome = WaitResult::Outcome;
  const absl::Duration last_get =
      std::clamp((deadline - absl::Now()) / 10, absl::ZeroDuration(), absl::Milliseconds(200));
  std::optional<v1::Workspace> last = std::move(initial);
  std::string resource_version = last ? last->metadata().resource_version() : "";
  if (last && done(&*last)) return Ended(Outcome::kMet, last);
  v1::GetWorkspaceRequest get;
  get.set_namespace_(ns);
  get.set_name(name);
  for (bool watch = last.has_value();; watch = true) {
    bool failed_fast = false;
    if (watch) {
      WatchEnd end = WatchChanges(c, ns, name, resource_version, done, deadline - last_get, last);
      if (end.met) return Ended(Outcome::kMet, last);
      if (!Resumable(end.status.code())) {
        WaitResult r = Ended(Outcome::kFailed, last);
        r.failure = end.status;
        return r;
      }
      failed_fast = end.status.code() == grpc::UNAVAILABLE;
      if (end.status.code() == grpc::OUT_OF_RANGE) resource_version.clear();
    }
    // Read the workspace afresh: gone, still there (resume from it), or the server is away.
    v1::Workspace ws;
    CallStatus s = c.Unary(
        [&](grpc::ClientContext* ctx) { return c.workspaces().GetWorkspace(ctx, get, &ws); },
        deadline);
    if (s.code() == grpc::NOT_FOUND) {
      if (done(nullptr)) return Ended(Outcome::kMet, last);
      WaitResult r = Ended(Outcome::kFailed, last);
      r.failure = s;
      return r;
    }
    if (s.ok()) {
      last = ws;
      resource_version = ws.metadata().resource_version();
      if (done(&ws)) return Ended(Outcome::kMet, last);
    }
    if (absl::Now() >= deadline - last_get) {
      WaitResult r = Ended(Outcome::kTimedOut, last);
      if (!s.ok()) r.unanswered = s.message();
      return r;
    }
    if (!s.ok() && !Retryable(s.code())) {
      WaitResult r = Ended(Outcome::kFailed, last);
      r.failure = s;
      return r;
    }
    if (failed_fast || !s.ok()) {
      std::this_thread::sleep_for(
          absl::ToChronoMilliseconds(std::min(absl::Seconds(1), deadline - absl::Now())));
    }
  }
}

}  // namespace kaito::ctl
