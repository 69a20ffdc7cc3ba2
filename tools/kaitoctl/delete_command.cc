// `kaitoctl delete`: workspaces, configmaps and secrets by name, by label selector, all of
// a namespace, or as the manifests of -f name them; with --wait until they are gone.
#include <cstdio>

#include "common/manifest_codec.h"
#include "tools/kaitoctl/commands.h"
#include "tools/kaitoctl/durations.h"
#include "tools/kaitoctl/manifest_files.h"
#include "tools/kaitoctl/object_reader.h"
#include "tools/kaitoctl/printers.h"
#include "tools/kaitoctl/workspace_waiter.h"

namespace kaito::ctl {
namespace {

// One object to delete.
struct Target {
  const ResourceType* type = nullptr;
  std::string ns;
  std::string name;
};

bool Deletable(const ResourceType& type) {
  return type.plural == "workspaces" || type.plural == "configmaps" || type.plural == "secrets";
}

void PrintDeleted(const Target& t) {
  std::printf("%s \"%s\" deleted\n", t.type->NamePrefix().c_str(), t.name.c_str());
  std::fflush(stdout);
}

// The error of a `delete --wait` that ran out of time.
int WaitTimedOut(const Target& t, absl::Duration timeout, const std::string& why) {
  return FailLocal("timed out after " + absl::FormatDuration(timeout) +
                   " waiting for workspace \"" + t.name + "\" to be deleted: " + why);
}

// Deletes a workspace; with `wait`, the delete and the wait end within `timeout`.
int DeleteWorkspace(Client& c, const Target& t, const DeleteOptions& o, absl::Duration timeout) {
  const absl::Time deadline = o.wait ? absl::Now() + timeout : absl::InfiniteFuture();
  v1::DeleteWorkspaceRequest req;
  req.set_namespace_(t.ns);
  req.set_name(t.name);
  v1::DeleteWorkspaceResponse resp;
  CallStatus s = c.Unary(
      [&](grpc::ClientContext* ctx) { return c.workspaces().DeleteWorkspace(ctx, req, &resp); },
      deadline);
  if (s.code() == grpc::NOT_FOUND && o.ignore_not_found) return 0;
  if (o.wait && !s.ok() && absl::Now() >= deadline) {
    return WaitTimedOut(t, timeout, "the server did not answer the delete: " + s.message());
  }
  if (!s.ok()) return Fail(s);
  if (!o.wait || resp.deleted()) {
    PrintDeleted(t);
    return 0;
  }
  WaitResult r = WaitForWorkspace(
      c, t.ns, t.name, [](const v1::Workspace* ws) { return ws == nullptr; }, deadline,
      resp.workspace());
  switch (r.outcome) {
    case WaitResult::Outcome::kMet:
      PrintDeleted(t);
      return 0;
    case WaitResult::Outcome::kTimedOut:
      return WaitTimedOut(t, timeout,
                          r.unanswered.empty() && r.last
                              ? DeletionBlockers(*r.last)
                              : "the server did not answer: " + r.unanswered);
    case WaitResult::Outcome::kFailed:
      break;
  }
  return Fail(r.failure);
}

int DeleteData(Client& c, const Target& t, const DeleteOptions& o) {
  v1::DeleteRequest req;
  req.set_namespace_(t.ns);
  req.set_name(t.name);
  v1::DeleteResponse resp;
  CallStatus s = c.Unary([&](grpc::ClientContext* ctx) {
    return t.type->plural == "configmaps" ? c.configs().DeleteConfigMap(ctx, req, &resp)
                                          : c.secrets().DeleteSecret(ctx, req, &resp);
  });
  if (s.code() == grpc::NOT_FOUND && o.ignore_not_found) return 0;
  if (!s.ok()) return Fail(s);
  PrintDeleted(t);
  return 0;
}

// The objects the manifests of -f describe.
int TargetsFromFiles(Client& c, const DeleteOptions& o, std::vector<Target>* out) {
  absl::StatusOr<std::vector<std::string>> files = ExpandFilenames(o.filenames, o.recursive);
  if (!files.ok()) return FailLocal(std::string(files.status().message()));
  int rc = 0;
  for (const std::string& file : *files) {
    absl::StatusOr<std::string> text = ReadManifestSource(file);
    if (!text.ok()) return FailLocal(std::string(text.status().message()));
    auto docs = ParseManifests(*text);
    if (!docs.ok()) return FailLocal(file + ": " + std::string(docs.status().message()));
    for (const ManifestDocument& doc : *docs) {
      const ResourceType* type = FindResourceType(doc.kind);
      if (!doc.status.ok() || type == nullptr) {
        rc = FailLocal((file == "-" ? "" : file + ": ") + std::string(doc.status.message()));
        continue;
      }
      const Globals& g = c.globals();
      if (g.ns_given && !doc.namespace_.empty() && doc.namespace_ != g.ns) {
        rc = FailLocal("the namespace from the provided object \"" + doc.namespace_ +
                       "\" does not match the namespace \"" + g.ns +
                       "\". You must pass '--namespace=" + doc.namespace_ +
                       "' to perform this operation.");
        continue;
      }
      out->push_back({type, doc.namespace_.empty() ? g.ns : doc.namespace_, doc.name});
    }
  }
  return rc;
}

// The objects the arguments name, or with --all / -l every one of their kind that matches.
int TargetsFromArgs(Client& c, const DeleteOptions& o, std::vector<Target>* out) {
  absl::StatusOr<std::vector<ResourceSelection>> selections = ParseResourceArgs(o.args, "delete");
  if (!selections.ok()) return FailLocal(std::string(selections.status().message()));
  for (const ResourceSelection& sel : *selections) {
    if (!sel.names.empty() && (o.all || !o.selector.empty())) {
      return FailLocal("name cannot be provided when a selector or --all is specified");
    }
    for (const std::string& name : sel.names) out->push_back({sel.type, c.globals().ns, name});
    if (!sel.names.empty()) continue;
    if (!o.all && o.selector.empty()) {
      return FailLocal("resource(s) were provided, but no name was specified");
    }
    ReadScope scope;
    scope.ns = c.globals().ns;
    scope.selector = o.selector;
    Objects objects;
    CallStatus s = ListObjects(c, *sel.type, scope, &objects);
    if (!s.ok()) return Fail(s);
    for (const auto& object : objects) out->push_back({sel.type, scope.ns, NameOf(*object)});
  }
  return 0;
}

}  // namespace

int DeleteCommand(Client& c, const DeleteOptions& o) {
  absl::StatusOr<absl::Duration> timeout = ParseFlagDuration("--timeout", o.timeout);
  if (!timeout.ok()) return FailLocal(std::string(timeout.status().message()));
  if (*timeout == absl::ZeroDuration()) timeout = absl::InfiniteDuration();
  if (!o.filenames.empty() && !o.args.empty()) {
    return FailLocal("resource arguments and -f cannot be given together");
  }
  std::vector<Target> targets;
  int rc = o.filenames.empty() ? TargetsFromArgs(c, o, &targets) : TargetsFromFiles(c, o, &targets);
  if (o.filenames.empty() && rc != 0) return rc;
  if (targets.empty() && rc == 0) {
    std::fprintf(stderr, "No resources found\n");
    return 0;
  }
  for (const Target& t : targets) {
    if (!Deletable(*t.type)) {
      rc = FailLocal("delete serves workspaces, configmaps and secrets, not " + t.type->plural);
    } else if (t.type->plural == "workspaces") {
      rc |= DeleteWorkspace(c, t, o, *timeout);
    } else {
      rc |= DeleteData(c, t, o);
    }
  }
  return rc;
}

}  // namespace kaito::ctl
