// Waiting for a workspace to reach a state, with the Watch RPC: `wait --for` and
// `delete --wait` both use it, so that they agree on how a wait resumes and ends.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "kaito/v1/workspace.pb.h"
#include "tools/kaitoctl/client.h"

namespace kaito::ctl {

// Whether the wait is over, seeing the workspace as of an event or a Get, or null when it
// is gone.
using WorkspaceDone = std::function<bool(const v1::Workspace* workspace)>;

struct WaitResult {
  enum class Outcome { kMet, kTimedOut, kFailed };
  Outcome outcome = Outcome::kFailed;
  // The workspace as last seen (for a timeout's message), if it was ever seen.
  std::optional<v1::Workspace> last;
  // kTimedOut: the last Get was not answered, with this message; empty when it was.
  std::string unanswered;
  // kFailed: the call that failed; the workspace being gone while `done` wants it is the
  // Get's NOT_FOUND.
  CallStatus failure;
};

// Waits until `done` holds for the workspace `ns`/`name`, or `deadline`. `initial`, when
// given, is the workspace as just read (a delete's reply), so that the wait starts with a
// watch from its revision instead of a Get. The watch ends a little before `deadline`, to
// leave the last Get time to answer; when a stream ends early (server restart, history
// compacted, a slow-client close) a Get reads the workspace afresh and the watch resumes
// from it, a second after a failure, so that nothing spins. Every call ends by `deadline`.
WaitResult WaitForWorkspace(Client& c, const std::string& ns, const std::string& name,
                            const WorkspaceDone& done, absl::Time deadline,
                            std::optional<v1::Workspace> initial = std::nullopt);

}  // namespace kaito::ctl
