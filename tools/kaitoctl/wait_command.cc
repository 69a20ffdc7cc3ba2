// `kaitoctl wait --for=...`: until workspaces meet a condition or are deleted, with the Watch
// RPC; `workspace.kaito.sh/NAME condition met` for each, or the timeout's error.
#include <cstdio>

#include "absl/strings/match.h"
#include "tools/kaitoctl/commands.h"
#include "tools/kaitoctl/durations.h"
#include "tools/kaitoctl/object_reader.h"
#include "tools/kaitoctl/output_format.h"
#include "tools/kaitoctl/wait_condition.h"
#include "tools/kaitoctl/workspace_waiter.h"

namespace kaito::ctl {
namespace {

// kubectl reads a negative --timeout as a week.
constexpr absl::Duration kNegativeTimeout = absl::Hours(24 * 7);

void PrintConditionMet(const std::string& name) {
  std::printf("workspace.kaito.sh/%s condition met\n", name.c_str());
  std::fflush(stdout);
}

bool Meets(const WaitCondition& condition, const v1::Workspace* ws) {
  if (condition.kind == WaitCondition::Kind::kDelete) return ws == nullptr;
  return ws != nullptr && ConditionMet(condition, ToPrinted(*ws).json);
}

// The workspaces the arguments name, or with --all / -l every one that matches.
int Names(Client& c, const WaitOptions& o, std::vector<std::string>* names) {
  absl::StatusOr<std::vector<ResourceSelection>> selections = ParseResourceArgs(o.args, "wait");
  if (!selections.ok()) return FailLocal(std::string(selections.status().message()));
  for (const ResourceSelection& sel : *selections) {
    if (sel.type->plural != "workspaces") {
      return FailLocal("wait is served for workspaces only, not " + sel.type->plural);
    }
    names->insert(names->end(), sel.names.begin(), sel.names.end());
    if (!sel.names.empty()) continue;
    if (!o.all && o.selector.empty()) return FailLocal("resource name may not be empty");
    ReadScope scope;
    scope.ns = c.globals().ns;
    scope.selector = o.selector;
    Objects objects;
    CallStatus s = ListObjects(c, *sel.type, scope, &objects);
    if (!s.ok()) return Fail(s);
    for (const auto& object : objects) names->push_back(NameOf(*object));
  }
  if (names->empty()) return FailLocal("no matching resources found");
  return 0;
}

int WaitForOne(Client& c, const std::string& name, const WaitCondition& condition,
               absl::Time deadline) {
  const std::string& ns = c.globals().ns;
  WaitResult r = WaitForWorkspace(
      c, ns, name, [&](const v1::Workspace* ws) { return Meets(condition, ws); }, deadline);
  switch (r.outcome) {
    case WaitResult::Outcome::kMet:
      PrintConditionMet(name);
      return 0;
    case WaitResult::Outcome::kTimedOut:
      return FailLocal("timed out waiting for the condition on workspaces/" + name);
    case WaitResult::Outcome::kFailed:
      break;
  }
  return Fail(r.failure);
}

// --timeout=0: one look, no waiting, as kubectl.
int CheckOnce(Client& c, const std::string& name, const WaitCondition& condition) {
  ReadScope scope;
  scope.ns = c.globals().ns;
  Objects objects;
  CallStatus s = GetObject(c, *FindResourceType("workspaces"), scope, name, &objects);
  const bool gone = s.code() == grpc::NOT_FOUND;
  if (!s.ok() && (!gone || condition.kind != WaitCondition::Kind::kDelete)) return Fail(s);
  const auto* ws = gone ? nullptr : static_cast<const v1::Workspace*>(objects.front().get());
  if (!Meets(condition, ws)) {
    return FailLocal("timed out waiting for the condition on workspaces/" + name);
  }
  PrintConditionMet(name);
  return 0;
}

}  // namespace

int WaitCommand(Client& c, const WaitOptions& o) {
  absl::StatusOr<WaitCondition> condition = ParseWaitCondition(o.for_condition);
  if (!condition.ok()) return FailLocal(std::string(condition.status().message()));
  const bool negative = absl::StartsWith(o.timeout, "-");
  absl::StatusOr<absl::Duration> timeout =
      ParseFlagDuration("--timeout", negative ? o.timeout.substr(1) : o.timeout);
  if (!timeout.ok()) return FailLocal(std::string(timeout.status().message()));
  if (negative) timeout = kNegativeTimeout;
  std::vector<std::string> names;
  if (int rc = Names(c, o, &names); rc != 0) return rc;
  // Every object is waited for within the one timeout, as kubectl does.
  const absl::Time deadline = absl::Now() + *timeout;
  int rc = 0;
  for (const std::string& name : names) {
    rc |= *timeout == absl::ZeroDuration() ? CheckOnce(c, name, *condition)
                                           : WaitForOne(c, name, *condition, deadline);
  }
  return rc;
}

}  // namespace kaito::ctl
