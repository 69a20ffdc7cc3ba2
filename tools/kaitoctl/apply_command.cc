// `kaitoctl apply -f`: creates or updates every Workspace, ConfigMap and Secret of the
// manifests named, as kubectl prints it: created / configured / unchanged, with
// "(server dry run)" or "(dry run)" for --dry-run=server|client.
#include <google/protobuf/util/message_differencer.h>

#include <cstdio>
#include <functional>

#include "common/manifest_codec.h"
#include "tools/kaitoctl/commands.h"
#include "tools/kaitoctl/manifest_files.h"
#include "tools/kaitoctl/printers.h"
#include "tools/kaitoctl/request_size.h"

namespace kaito::ctl {
namespace {

using google::protobuf::util::MessageDifferencer;

enum class DryRun { kNone, kServer, kClient };

absl::StatusOr<DryRun> ParseDryRun(const std::string& value) {
  // A bare --dry-run (and kubectl's deprecated --dry-run=true) validates on the server.
  if (value == "none" || value == "false" || value.empty()) return DryRun::kNone;
  if (value == "server" || value == "true") return DryRun::kServer;
  if (value == "client") return DryRun::kClient;
  return absl::InvalidArgumentError("--dry-run: Invalid dry-run value (\"" + value +
                                    "\"). Must be \"none\", \"server\", or \"client\".");
}

std::string Suffix(DryRun dry_run) {
  switch (dry_run) {
    case DryRun::kServer:
      return " (server dry run)";
    case DryRun::kClient:
      return " (dry run)";
    default:
      return "";
  }
}

// What an apply says about one object.
void PrintOutcome(const std::string& ref, const std::string& outcome, DryRun dry_run) {
  std::printf("%s %s%s\n", ref.c_str(), outcome.c_str(), Suffix(dry_run).c_str());
  std::fflush(stdout);
}

void PrintWarnings(const google::protobuf::RepeatedPtrField<std::string>& warnings) {
  for (const auto& w : warnings) std::fprintf(stderr, "Warning: %s\n", w.c_str());
}

// The object's namespace: its own, or -n's; an object in another namespace than an explicit
// -n is refused, as kubectl refuses it.
absl::Status SettleNamespace(const Globals& g, v1::ObjectMeta& meta) {
  if (meta.namespace_().empty()) {
    meta.set_namespace_(g.ns);
  } else if (g.ns_given && meta.namespace_() != g.ns) {
    return absl::InvalidArgumentError("the namespace from the provided object \"" +
                                      meta.namespace_() + "\" does not match the namespace \"" +
                                      g.ns + "\". You must pass '--namespace=" + meta.namespace_() +
                                      "' to perform this operation.");
  }
  return absl::OkStatus();
}

bool Unchanged(const v1::Workspace& before, const v1::Workspace& after) {
  return after.metadata().resource_version() == before.metadata().resource_version() &&
         after.metadata().generation() == before.metadata().generation() &&
         MessageDifferencer::Equals(after.resource(), before.resource()) &&
         MessageDifferencer::Equals(after.inference(), before.inference()) &&
         MessageDifferencer::Equals(after.tuning(), before.tuning()) &&
         MessageDifferencer::Equals(after.metadata(), before.metadata());
}

// --dry-run=client: validated by parsing; a Get (the only call) says whether the object
// would be created or configured, as kubectl's client dry run.
template <typename Get>
int ClientDryRun(Client& c, const std::string& ref, Get get) {
  CallStatus s = c.Unary(get);
  if (s.code() == grpc::NOT_FOUND) {
    PrintOutcome(ref, "created", DryRun::kClient);
    return 0;
  }
  if (!s.ok()) return Fail(s, ref);
  PrintOutcome(ref, "configured", DryRun::kClient);
  return 0;
}

// Create, or update when it exists; retried when it races another writer.
int ApplyWorkspace(Client& c, v1::Workspace ws, DryRun dry_run) {
  const std::string ref = "workspace/" + ws.metadata().name();
  v1::GetWorkspaceRequest get;
  get.set_namespace_(ws.metadata().namespace_());
  get.set_name(ws.metadata().name());
  v1::Workspace current;
  auto get_call = [&](grpc::ClientContext* ctx) {
    return c.workspaces().GetWorkspace(ctx, get, &current);
  };
  v1::CreateWorkspaceRequest create;
  *create.mutable_workspace() = ws;
  create.set_dry_run(dry_run == DryRun::kServer);
  // Refused before anything is sent: the create (the update adds only a version).
  if (absl::Status s = CheckRequestSize(create, ref); !s.ok()) {
    return FailLocal(std::string(s.message()));
  }
  if (dry_run == DryRun::kClient) return ClientDryRun(c, ref, get_call);
  for (int attempt = 0; attempt < 5; ++attempt) {
    CallStatus s = c.Unary(get_call);
    if (s.code() == grpc::NOT_FOUND) {
      v1::CreateWorkspaceResponse resp;
      s = c.Unary([&](grpc::ClientContext* ctx) {
        return c.workspaces().CreateWorkspace(ctx, create, &resp);
      });
      if (s.code() == grpc::ALREADY_EXISTS) continue;  // Raced with a create.
      if (!s.ok()) return Fail(s, ref);
      PrintWarnings(resp.warnings());
      PrintOutcome(ref, "created", dry_run);
      if (dry_run == DryRun::kServer) std::printf("%s", FormatPlan(resp.plan()).c_str());
      return 0;
    }
    if (!s.ok()) return Fail(s, ref);
    v1::UpdateWorkspaceRequest update;
    *update.mutable_workspace() = ws;
    update.mutable_workspace()->mutable_metadata()->set_resource_version(
        current.metadata().resource_version());
    // Finalizers belong to the controller; apply keeps them.
    if (ws.metadata().finalizers().empty()) {
      *update.mutable_workspace()->mutable_metadata()->mutable_finalizers() =
          current.metadata().finalizers();
    }
    update.set_dry_run(dry_run == DryRun::kServer);
    if (absl::Status size = CheckRequestSize(update, ref); !size.ok()) {
      return FailLocal(std::string(size.message()));
    }
    v1::UpdateWorkspaceResponse resp;
    s = c.Unary([&](grpc::ClientContext* ctx) {
      return c.workspaces().UpdateWorkspace(ctx, update, &resp);
    });
    if (s.code() == grpc::ABORTED) continue;  // Changed meanwhile: read again.
    if (!s.ok()) return Fail(s, ref);
    PrintWarnings(resp.warnings());
    PrintOutcome(ref, Unchanged(current, resp.workspace()) ? "unchanged" : "configured", dry_run);
    if (dry_run == DryRun::kServer) std::printf("%s", FormatPlan(resp.plan()).c_str());
    return 0;
  }
  return FailLocal(ref + ": kept conflicting with concurrent writers");
}

// The write requests of ConfigMaps and Secrets.
v1::WriteConfigMapRequest WriteRequest(const v1::ConfigMap& object, bool dry_run) {
  v1::WriteConfigMapRequest r;
  *r.mutable_config_map() = object;
  r.set_dry_run(dry_run);
  return r;
}
v1::WriteSecretRequest WriteRequest(const v1::Secret& object, bool dry_run) {
  v1::WriteSecretRequest r;
  *r.mutable_secret() = object;
  r.set_dry_run(dry_run);
  return r;
}

// The calls of one data kind's service (ConfigMaps, Secrets): each `(ctx, request, out)`.
template <typename T, typename Request>
struct DataCalls {
  std::function<grpc::Status(grpc::ClientContext*, const v1::ObjectKey&, T*)> get;
  std::function<grpc::Status(grpc::ClientContext*, const Request&, T*)> create;
  std::function<grpc::Status(grpc::ClientContext*, const Request&, T*)> update;
};

template <typename T, typename Request>
int ApplyData(Client& c, const T& object, DryRun dry_run, const std::string& kind,
              const DataCalls<T, Request>& calls) {
  const std::string ref = kind + "/" + object.metadata().name();
  const bool server_dry_run = dry_run == DryRun::kServer;
  // Refused before anything is sent; an update adds only a version, checked again below.
  if (absl::Status s = CheckRequestSize(WriteRequest(object, server_dry_run), ref); !s.ok()) {
    return FailLocal(std::string(s.message()));
  }
  v1::ObjectKey key;
  key.set_namespace_(object.metadata().namespace_());
  key.set_name(object.metadata().name());
  T current;
  auto get_call = [&](grpc::ClientContext* ctx) { return calls.get(ctx, key, &current); };
  if (dry_run == DryRun::kClient) return ClientDryRun(c, ref, get_call);
  for (int attempt = 0; attempt < 5; ++attempt) {
    CallStatus s = c.Unary(get_call);
    T reply;
    if (s.code() == grpc::NOT_FOUND) {
      const Request request = WriteRequest(object, server_dry_run);
      s = c.Unary([&](grpc::ClientContext* ctx) { return calls.create(ctx, request, &reply); });
      if (s.code() == grpc::ALREADY_EXISTS) continue;
      if (!s.ok()) return Fail(s, ref);
      PrintOutcome(ref, "created", dry_run);
      return 0;
    }
    if (!s.ok()) return Fail(s, ref);
    T next = object;
    next.mutable_metadata()->set_resource_version(current.metadata().resource_version());
    const Request request = WriteRequest(next, server_dry_run);
    if (absl::Status size = CheckRequestSize(request, ref); !size.ok()) {
      return FailLocal(std::string(size.message()));
    }
    s = c.Unary([&](grpc::ClientContext* ctx) { return calls.update(ctx, request, &reply); });
    if (s.code() == grpc::ABORTED) continue;
    if (!s.ok()) return Fail(s, ref);
    const bool unchanged =
        reply.metadata().resource_version() == current.metadata().resource_version();
    PrintOutcome(ref, unchanged ? "unchanged" : "configured", dry_run);
    return 0;
  }
  return FailLocal(ref + ": kept conflicting with concurrent writers");
}

DataCalls<v1::ConfigMap, v1::WriteConfigMapRequest> ConfigMapCalls(Client& c) {
  return {[&c](grpc::ClientContext* ctx, const v1::ObjectKey& k, v1::ConfigMap* out) {
            return c.configs().GetConfigMap(ctx, k, out);
          },
          [&c](grpc::ClientContext* ctx, const v1::WriteConfigMapRequest& r, v1::ConfigMap* out) {
            return c.configs().CreateConfigMap(ctx, r, out);
          },
          [&c](grpc::ClientContext* ctx, const v1::WriteConfigMapRequest& r, v1::ConfigMap* out) {
            return c.configs().UpdateConfigMap(ctx, r, out);
          }};
}

DataCalls<v1::Secret, v1::WriteSecretRequest> SecretCalls(Client& c) {
  return {[&c](grpc::ClientContext* ctx, const v1::ObjectKey& k, v1::Secret* out) {
            return c.secrets().GetSecret(ctx, k, out);
          },
          [&c](grpc::ClientContext* ctx, const v1::WriteSecretRequest& r, v1::Secret* out) {
            return c.secrets().CreateSecret(ctx, r, out);
          },
          [&c](grpc::ClientContext* ctx, const v1::WriteSecretRequest& r, v1::Secret* out) {
            return c.secrets().UpdateSecret(ctx, r, out);
          }};
}

// One decoded document of a manifest, in its namespace.
int ApplyDocument(Client& c, ManifestDocument& doc, DryRun dry_run, const std::string& source) {
  if (!doc.status.ok()) return FailLocal(source + std::string(doc.status.message()));
  auto settled = [&](v1::ObjectMeta* meta) {
    absl::Status s = SettleNamespace(c.globals(), *meta);
    if (!s.ok()) FailLocal(std::string(s.message()));
    return s.ok();
  };
  if (auto* ws = dynamic_cast<v1::Workspace*>(doc.object.get())) {
    return settled(ws->mutable_metadata()) ? ApplyWorkspace(c, *ws, dry_run) : 1;
  }
  if (auto* cm = dynamic_cast<v1::ConfigMap*>(doc.object.get())) {
    return settled(cm->mutable_metadata())
               ? ApplyData(c, *cm, dry_run, "configmap", ConfigMapCalls(c))
               : 1;
  }
  if (auto* secret = dynamic_cast<v1::Secret*>(doc.object.get())) {
    return settled(secret->mutable_metadata())
               ? ApplyData(c, *secret, dry_run, "secret", SecretCalls(c))
               : 1;
  }
  return FailLocal(source + doc.Describe() + ": not a kind kaitoctl applies");
}

int ApplySource(Client& c, const std::string& file, DryRun dry_run) {
  absl::StatusOr<std::string> text = ReadManifestSource(file);
  if (!text.ok()) return FailLocal(std::string(text.status().message()));
  auto docs = ParseManifests(*text);
  if (!docs.ok()) {
    return FailLocal((file == "-" ? "stdin" : file) + ": " + std::string(docs.status().message()));
  }
  // A document's error names its file, and its document (stdin: the document alone).
  const std::string source = file == "-" ? "" : file + ": ";
  int rc = 0;
  for (ManifestDocument& doc : *docs) rc |= ApplyDocument(c, doc, dry_run, source);
  return rc;
}

}  // namespace

int ApplyCommand(Client& c, const ApplyOptions& options) {
  absl::StatusOr<DryRun> dry_run = ParseDryRun(options.dry_run);
  if (!dry_run.ok()) return FailLocal(std::string(dry_run.status().message()));
  absl::StatusOr<std::vector<std::string>> files =
      ExpandFilenames(options.filenames, options.recursive);
  if (!files.ok()) return FailLocal(std::string(files.status().message()));
  int rc = 0;
  for (const std::string& file : *files) rc |= ApplySource(c, file, *dry_run);
  return rc;
}

}  // namespace kaito::ctl
