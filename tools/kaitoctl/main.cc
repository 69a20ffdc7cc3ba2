// kaitoctl: the command-line client of kaito-server. Verbs and output follow kubectl so
// that Kaito's documentation reads the same with `kaitoctl` in place of `kubectl`.
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "common/manifest_codec.h"
#include "common/version.h"
#include "kaito/v1/agent.grpc.pb.h"
#include "kaito/v1/config.grpc.pb.h"
#include "kaito/v1/presets.grpc.pb.h"
#include "kaito/v1/system.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "tools/kaitoctl/printers.h"
#include "common/tls.h"
#include "tools/kaitoctl/request_size.h"

namespace kaito::ctl {
namespace {

struct Globals {
  std::string server;
  std::string ns;
  int timeout_s = 30;
  // kubectl's credentials: a bearer token, and TLS files.
  std::string token;
  TlsClientFiles tls;
};

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::INVALID_ARGUMENT:
      return "InvalidArgument";
    case grpc::NOT_FOUND:
      return "NotFound";
    case grpc::ALREADY_EXISTS:
      return "AlreadyExists";
    case grpc::ABORTED:
      return "Conflict";
    case grpc::FAILED_PRECONDITION:
      return "FailedPrecondition";
    case grpc::OUT_OF_RANGE:
      return "Expired";
    case grpc::UNAVAILABLE:
      return "Unavailable";
    case grpc::DEADLINE_EXCEEDED:
      return "Timeout";
    case grpc::RESOURCE_EXHAUSTED:
      return "TooManyRequests";
    case grpc::PERMISSION_DENIED:
      return "Forbidden";
    case grpc::UNAUTHENTICATED:
      return "Unauthorized";
    case grpc::UNIMPLEMENTED:
      return "NotImplemented";
    default:
      return "InternalError";
  }
}

// One readable line per failure, exit code 1.
int Fail(const grpc::Status& status, const std::string& context = "") {
  std::string msg = status.error_message();
  if (msg.empty()) {
    msg = status.error_code() == grpc::UNIMPLEMENTED
              ? "the server does not serve this call (an older kaito-server?)"
              : "no message";
  }
  if (status.error_code() == grpc::UNAVAILABLE && msg.find("connect") != std::string::npos) {
    msg = "cannot reach the server: " + msg;
  }
  std::fprintf(stderr, "Error from server (%s): %s%s\n", CodeName(status.error_code()),
               context.empty() ? "" : (context + ": ").c_str(), msg.c_str());
  return 1;
}

int FailLocal(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n", msg.c_str());
  return 1;
}

class Client {
 public:
  explicit Client(const Globals& g)
      : globals_(g),
        channel_(grpc::CreateChannel(g.server, GrpcChannelCredentials(g.tls))),
        workspaces_(v1::WorkspaceService::NewStub(channel_)),
        configs_(v1::ConfigService::NewStub(channel_)),
        secrets_(v1::SecretService::NewStub(channel_)),
        system_(v1::SystemService::NewStub(channel_)),
        presets_(v1::PresetService::NewStub(channel_)),
        nodes_(v1::NodeService::NewStub(channel_)) {}

  // A call's context: its deadline is `--timeout` from now, or `not_after` when sooner
  // (a command with a deadline of its own, such as `delete --wait --timeout`).
  std::unique_ptr<grpc::ClientContext> Context(
      absl::Time not_after = absl::InfiniteFuture()) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(
        absl::ToChronoTime(std::min(absl::Now() + absl::Seconds(globals_.timeout_s), not_after)));
    ctx->set_wait_for_ready(false);
    if (!globals_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + globals_.token);
    return ctx;
  }

  const Globals& globals_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkspaceService::Stub> workspaces_;
  std::unique_ptr<v1::ConfigService::Stub> configs_;
  std::unique_ptr<v1::SecretService::Stub> secrets_;
  std::unique_ptr<v1::SystemService::Stub> system_;
  std::unique_ptr<v1::PresetService::Stub> presets_;
  std::unique_ptr<v1::NodeService::Stub> nodes_;
};

// Cluster-scoped objects (nodes, node claims) keep their events in this namespace.
constexpr char kClusterEventsNamespace[] = "default";

std::string ReadInput(const std::string& file, std::string* error) {
  std::stringstream buffer;
  if (file == "-") {
    buffer << std::cin.rdbuf();
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      *error = "cannot read " + file;
      return "";
    }
    buffer << in.rdbuf();
  }
  return buffer.str();
}

std::string Suffix(bool dry_run) { return dry_run ? " (server dry run)" : ""; }

void PrintWarnings(const google::protobuf::RepeatedPtrField<std::string>& warnings) {
  for (const auto& w : warnings) std::fprintf(stderr, "Warning: %s\n", w.c_str());
}

// Create, or update when it exists. Prints created / configured / unchanged.
int ApplyWorkspace(Client& c, v1::Workspace ws, bool dry_run) {
  const std::string ref = "workspace/" + ws.metadata().name();
  if (ws.metadata().namespace_().empty()) ws.mutable_metadata()->set_namespace_(c.globals_.ns);
  {
    // Refused before anything is sent: the create (the update adds only a version).
    v1::CreateWorkspaceRequest req;
    *req.mutable_workspace() = ws;
    req.set_dry_run(dry_run);
    if (absl::Status s = CheckRequestSize(req, ref); !s.ok()) {
      return FailLocal(std::string(s.message()));
    }
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    v1::GetWorkspaceRequest get;
    get.set_namespace_(ws.metadata().namespace_());
    get.set_name(ws.metadata().name());
    v1::Workspace current;
    grpc::Status s = c.workspaces_->GetWorkspace(c.Context().get(), get, &current);
    if (s.error_code() == grpc::NOT_FOUND) {
      v1::CreateWorkspaceRequest req;
      *req.mutable_workspace() = ws;
      req.set_dry_run(dry_run);
      v1::CreateWorkspaceResponse resp;
      s = c.workspaces_->CreateWorkspace(c.Context().get(), req, &resp);
      if (s.error_code() == grpc::ALREADY_EXISTS) continue;  // Raced with a create.
      if (!s.ok()) return Fail(s, ref);
      PrintWarnings(resp.warnings());
      std::printf("%s created%s\n", ref.c_str(), Suffix(dry_run).c_str());
      if (dry_run) std::printf("%s", FormatPlan(resp.plan()).c_str());
      return 0;
    }
    if (!s.ok()) return Fail(s, ref);
    v1::UpdateWorkspaceRequest req;
    *req.mutable_workspace() = ws;
    req.mutable_workspace()->mutable_metadata()->set_resource_version(
        current.metadata().resource_version());
    // Finalizers belong to the controller; apply keeps them.
    if (ws.metadata().finalizers().empty()) {
      *req.mutable_workspace()->mutable_metadata()->mutable_finalizers() =
          current.metadata().finalizers();
    }
    req.set_dry_run(dry_run);
    if (absl::Status size = CheckRequestSize(req, ref); !size.ok()) {
      return FailLocal(std::string(size.message()));
    }
    v1::UpdateWorkspaceResponse resp;
    s = c.workspaces_->UpdateWorkspace(c.Context().get(), req, &resp);
    if (s.error_code() == grpc::ABORTED) continue;  // Changed meanwhile: read again.
    if (!s.ok()) return Fail(s, ref);
    PrintWarnings(resp.warnings());
    const bool unchanged =
        resp.workspace().metadata().resource_version() == current.metadata().resource_version() &&
        resp.workspace().metadata().generation() == current.metadata().generation() &&
        google::protobuf::util::MessageDifferencer::Equals(resp.workspace().resource(),
                                                           current.resource()) &&
        google::protobuf::util::MessageDifferencer::Equals(resp.workspace().inference(),
                                                           current.inference()) &&
        google::protobuf::util::MessageDifferencer::Equals(resp.workspace().tuning(),
                                                           current.tuning()) &&
        google::protobuf::util::MessageDifferencer::Equals(resp.workspace().metadata(),
                                                           current.metadata());
    std::printf("%s %s%s\n", ref.c_str(), unchanged ? "unchanged" : "configured",
                Suffix(dry_run).c_str());
    if (dry_run) std::printf("%s", FormatPlan(resp.plan()).c_str());
    return 0;
  }
  return Fail(grpc::Status(grpc::ABORTED, "kept conflicting with concurrent writers"), ref);
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

// ConfigMaps and Secrets share the shape of their service. `create` and `update` send the
// request `WriteRequest` makes.
template <typename T, typename GetFn, typename CreateFn, typename UpdateFn>
int ApplyData(Client& c, T object, bool dry_run, const std::string& kind, GetFn get,
              CreateFn create, UpdateFn update) {
  const std::string ref = kind + "/" + object.metadata().name();
  if (object.metadata().namespace_().empty()) {
    object.mutable_metadata()->set_namespace_(c.globals_.ns);
  }
  // Refused before anything is sent; an update adds only a version, checked again below.
  if (absl::Status s = CheckRequestSize(WriteRequest(object, dry_run), ref); !s.ok()) {
    return FailLocal(std::string(s.message()));
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    v1::ObjectKey key;
    key.set_namespace_(object.metadata().namespace_());
    key.set_name(object.metadata().name());
    T current;
    grpc::Status s = get(c.Context().get(), key, &current);
    T reply;
    if (s.error_code() == grpc::NOT_FOUND) {
      s = create(c.Context().get(), WriteRequest(object, dry_run), &reply);
      if (s.error_code() == grpc::ALREADY_EXISTS) continue;
      if (!s.ok()) return Fail(s, ref);
      std::printf("%s created%s\n", ref.c_str(), Suffix(dry_run).c_str());
      return 0;
    }
    if (!s.ok()) return Fail(s, ref);
    T next = object;
    next.mutable_metadata()->set_resource_version(current.metadata().resource_version());
    const auto request = WriteRequest(next, dry_run);
    if (absl::Status size = CheckRequestSize(request, ref); !size.ok()) {
      return FailLocal(std::string(size.message()));
    }
    s = update(c.Context().get(), request, &reply);
    if (s.error_code() == grpc::ABORTED) continue;
    if (!s.ok()) return Fail(s, ref);
    const bool unchanged =
        reply.metadata().resource_version() == current.metadata().resource_version();
    std::printf("%s %s%s\n", ref.c_str(), unchanged ? "unchanged" : "configured",
                Suffix(dry_run).c_str());
    return 0;
  }
  return Fail(grpc::Status(grpc::ABORTED, "kept conflicting with concurrent writers"), ref);
}

int Apply(Client& c, const std::string& file, bool dry_run) {
  std::string error;
  std::string text = ReadInput(file, &error);
  if (!error.empty()) return FailLocal(error);
  auto docs = ParseManifests(text);
  if (!docs.ok())
    return FailLocal((file == "-" ? "stdin" : file) + ": " + std::string(docs.status().message()));
  // A document's error names its file, and its document (stdin: the document alone).
  const std::string source = file == "-" ? "" : file + ": ";
  int rc = 0;
  for (ManifestDocument& doc : *docs) {
    if (!doc.status.ok()) {
      std::fprintf(stderr, "error: %s%s\n", source.c_str(),
                   std::string(doc.status.message()).c_str());
      rc = 1;
      continue;
    }
    if (auto* ws = dynamic_cast<v1::Workspace*>(doc.object.get())) {
      rc |= ApplyWorkspace(c, std::move(*ws), dry_run);
    } else if (auto* cm = dynamic_cast<v1::ConfigMap*>(doc.object.get())) {
      rc |= ApplyData(
          c, std::move(*cm), dry_run, "configmap",
          [&](grpc::ClientContext* ctx, const v1::ObjectKey& k, v1::ConfigMap* out) {
            return c.configs_->GetConfigMap(ctx, k, out);
          },
          [&](grpc::ClientContext* ctx, const v1::WriteConfigMapRequest& r, v1::ConfigMap* out) {
            return c.configs_->CreateConfigMap(ctx, r, out);
          },
          [&](grpc::ClientContext* ctx, const v1::WriteConfigMapRequest& r, v1::ConfigMap* out) {
            return c.configs_->UpdateConfigMap(ctx, r, out);
          });
    } else if (auto* secret = dynamic_cast<v1::Secret*>(doc.object.get())) {
      rc |= ApplyData(
          c, std::move(*secret), dry_run, "secret",
          [&](grpc::ClientContext* ctx, const v1::ObjectKey& k, v1::Secret* out) {
            return c.secrets_->GetSecret(ctx, k, out);
          },
          [&](grpc::ClientContext* ctx, const v1::WriteSecretRequest& r, v1::Secret* out) {
            return c.secrets_->CreateSecret(ctx, r, out);
          },
          [&](grpc::ClientContext* ctx, const v1::WriteSecretRequest& r, v1::Secret* out) {
            return c.secrets_->UpdateSecret(ctx, r, out);
          });
    }
  }
  return rc;
}

enum class Output { kTable, kWide, kYaml, kJson, kName };

absl::StatusOr<Output> ParseOutput(const std::string& o) {
  if (o.empty() || o == "table") return Output::kTable;
  if (o == "wide") return Output::kWide;
  if (o == "yaml") return Output::kYaml;
  if (o == "json") return Output::kJson;
  if (o == "name") return Output::kName;
  return absl::InvalidArgumentError("-o: unknown output format \"" + o +
                                    "\" (table, wide, yaml, json, name)");
}

void PrintObject(const google::protobuf::Message& m, Output out, bool first) {
  if (out == Output::kYaml) {
    if (!first) std::printf("---\n");
    std::printf("%s", MessageToYaml(m).c_str());
  } else {
    std::printf("%s\n", MessageToJson(m, true).c_str());
  }
}

// How one kind prints as a table (-o table|wide) and by name (-o name); yaml and json print
// the message itself. Every kind goes through `PrintItems` with its columns.
template <typename T>
struct Columns {
  // -o name prints "<kind>/<name>".
  std::string kind;
  std::function<std::vector<std::string>(bool wide, bool with_namespace)> headers;
  std::function<std::vector<std::string>(const T&, absl::Time now, bool wide, bool with_namespace)>
      row;
};

const Columns<v1::Workspace> kWorkspaceColumns = {"workspace", WorkspaceHeaders, WorkspaceRow};
const Columns<v1::Workload> kWorkloadColumns = {"workload", WorkloadHeaders, WorkloadRow};
const Columns<v1::Node> kNodeColumns = {
    "node", [](bool wide, bool) { return NodeHeaders(wide); },
    [](const v1::Node& n, absl::Time now, bool wide, bool) { return NodeRow(n, now, wide); }};
const Columns<v1::NodeClaim> kNodeClaimColumns = {
    "nodeclaim", [](bool wide, bool) { return NodeClaimHeaders(wide); },
    [](const v1::NodeClaim& c, absl::Time now, bool wide, bool) {
      return NodeClaimRow(c, now, wide);
    }};

template <typename T>
void PrintItems(const std::vector<T>& items, Output out, const Columns<T>& columns,
                bool with_namespace, bool header) {
  if (out == Output::kYaml || out == Output::kJson) {
    bool first = true;
    for (const auto& item : items) {
      PrintObject(item, out, first);
      first = false;
    }
  } else if (out == Output::kName) {
    for (const auto& item : items) {
      std::printf("%s/%s\n", columns.kind.c_str(), item.metadata().name().c_str());
    }
  } else {
    const bool wide = out == Output::kWide;
    const absl::Time now = absl::Now();
    std::vector<std::vector<std::string>> rows;
    if (header) rows.push_back(columns.headers(wide, with_namespace));
    for (const auto& item : items) rows.push_back(columns.row(item, now, wide, with_namespace));
    std::printf("%s", FormatTable(rows).c_str());
  }
  std::fflush(stdout);
}

// Prints a listing; an empty table is kubectl's "No resources found" on stderr. `ns` is the
// namespace listed, empty for every namespace or a cluster-scoped kind.
template <typename T>
int PrintList(const std::vector<T>& items, Output out, const Columns<T>& columns,
              bool with_namespace, const std::string& ns) {
  if (items.empty() && out != Output::kJson && out != Output::kYaml) {
    if (ns.empty()) {
      std::fprintf(stderr, "No resources found\n");
    } else {
      std::fprintf(stderr, "No resources found in %s namespace.\n", ns.c_str());
    }
    return 0;
  }
  PrintItems(items, out, columns, with_namespace, true);
  return 0;
}

// Every page of a List call: `call(context, request, response)` with `Resp` having `items`,
// `next_page_token` and `resource_version`.
template <typename Resp, typename Req, typename Call, typename T>
grpc::Status ListAll(Client& c, Req req, Call call, std::vector<T>* items,
                     std::string* resource_version = nullptr) {
  req.set_page_size(500);
  do {
    Resp resp;
    grpc::Status s = call(c.Context().get(), req, &resp);
    if (!s.ok()) return s;
    for (auto& item : *resp.mutable_items()) items->push_back(std::move(item));
    if (resource_version != nullptr && resource_version->empty()) {
      *resource_version = resp.resource_version();
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return grpc::Status::OK;
}

// `get -w`: prints every change until interrupted.
int WatchWorkspaces(Client& c, const v1::WatchWorkspacesRequest& req, Output out, bool all_ns,
                    bool header) {
  grpc::ClientContext ctx;  // No deadline: watches run until interrupted.
  auto reader = c.workspaces_->WatchWorkspaces(&ctx, req);
  v1::WorkspaceEvent event;
  bool printed_header = !header;
  while (reader->Read(&event)) {
    if (event.type() != v1::BOOKMARK) {
      PrintItems({event.object()}, out, kWorkspaceColumns, all_ns, !printed_header);
      printed_header = true;
    }
  }
  grpc::Status s = reader->Finish();
  if (s.ok() || s.error_code() == grpc::CANCELLED) return 0;
  return Fail(s);
}

int GetWorkspaces(Client& c, const std::string& name, const std::string& selector, bool all_ns,
                  Output out, bool watch) {
  const std::string ns = all_ns ? "" : c.globals_.ns;
  std::vector<v1::Workspace> items;
  std::string resource_version;
  if (!name.empty()) {
    v1::GetWorkspaceRequest req;
    req.set_namespace_(ns);
    req.set_name(name);
    v1::Workspace ws;
    grpc::Status s = c.workspaces_->GetWorkspace(c.Context().get(), req, &ws);
    if (!s.ok()) return Fail(s);
    resource_version = ws.metadata().resource_version();
    items.push_back(std::move(ws));
  } else {
    v1::ListWorkspacesRequest req;
    req.set_namespace_(ns);
    req.set_label_selector(selector);
    grpc::Status s = ListAll<v1::ListWorkspacesResponse>(
        c, req,
        [&c](grpc::ClientContext* ctx, const v1::ListWorkspacesRequest& r,
             v1::ListWorkspacesResponse* resp) {
          return c.workspaces_->ListWorkspaces(ctx, r, resp);
        },
        &items, &resource_version);
    if (!s.ok()) return Fail(s);
  }
  if (!watch) return PrintList(items, out, kWorkspaceColumns, all_ns, ns);
  if (!items.empty()) PrintItems(items, out, kWorkspaceColumns, all_ns, true);
  v1::WatchWorkspacesRequest req;
  req.set_namespace_(ns);
  req.set_label_selector(selector);
  req.set_name(name);
  req.set_resource_version(resource_version);
  return WatchWorkspaces(c, req, out, all_ns, items.empty());
}

template <typename T, typename Resp, typename ListFn>
int GetData(Client& c, const std::string& kind, const std::string& name, bool all_ns, Output out,
            ListFn list) {
  v1::ListRequest req;
  req.set_namespace_(all_ns ? "" : c.globals_.ns);
  Resp resp;
  grpc::Status s = list(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  std::vector<std::vector<std::string>> rows;
  rows.push_back(all_ns ? std::vector<std::string>{"NAMESPACE", "NAME", "DATA", "AGE"}
                        : std::vector<std::string>{"NAME", "DATA", "AGE"});
  bool found = false, first = true;
  for (const T& item : resp.items()) {
    if (!name.empty() && item.metadata().name() != name) continue;
    found = true;
    if (out == Output::kYaml || out == Output::kJson) {
      PrintObject(item, out, first);
      first = false;
      continue;
    }
    size_t n = item.data().size();
    if constexpr (std::is_same_v<T, v1::ConfigMap>) n += item.binary_data().size();
    std::vector<std::string> row;
    if (all_ns) row.push_back(item.metadata().namespace_());
    row.push_back(item.metadata().name());
    row.push_back(std::to_string(n));
    const auto& ts = item.metadata().creation_timestamp();
    row.push_back(HumanAge(absl::Now() - absl::FromUnixSeconds(ts.seconds())));
    rows.push_back(row);
  }
  if (!name.empty() && !found) {
    return Fail(grpc::Status(grpc::NOT_FOUND, kind + "s \"" + name + "\" not found"));
  }
  if (out == Output::kTable || out == Output::kWide) {
    if (rows.size() == 1) {
      std::fprintf(stderr, "No resources found\n");
    } else {
      std::printf("%s", FormatTable(rows).c_str());
    }
  }
  return 0;
}

// The stubs' calls, as the callables `ListAll` and `GetClusterScoped` take.
auto GetNodeCall(Client& c) {
  return [&c](grpc::ClientContext* ctx, const v1::ObjectKey& key, v1::Node* node) {
    return c.nodes_->GetNode(ctx, key, node);
  };
}
auto GetNodeClaimCall(Client& c) {
  return [&c](grpc::ClientContext* ctx, const v1::ObjectKey& key, v1::NodeClaim* claim) {
    return c.nodes_->GetNodeClaim(ctx, key, claim);
  };
}
auto ListNodesCall(Client& c) {
  return [&c](grpc::ClientContext* ctx, const v1::ListRequest& r, v1::ListNodesResponse* resp) {
    return c.nodes_->ListNodes(ctx, r, resp);
  };
}
auto ListNodeClaimsCall(Client& c) {
  return [&c](grpc::ClientContext* ctx, const v1::ListRequest& r,
              v1::ListNodeClaimsResponse* resp) { return c.nodes_->ListNodeClaims(ctx, r, resp); };
}
auto ListWorkloadsCall(Client& c) {
  return [&c](grpc::ClientContext* ctx, const v1::ListRequest& r, v1::ListWorkloadsResponse* resp) {
    return c.nodes_->ListWorkloads(ctx, r, resp);
  };
}

// `get nodes|nodeclaims [NAME]`: cluster-scoped, so -n and -A do not apply.
template <typename T, typename Resp, typename GetFn, typename ListFn>
int GetClusterScoped(Client& c, const std::string& name, const std::string& selector, Output out,
                     const Columns<T>& columns, GetFn get, ListFn list) {
  std::vector<T> items;
  if (!name.empty()) {
    v1::ObjectKey key;
    key.set_name(name);
    T object;
    grpc::Status s = get(c.Context().get(), key, &object);
    if (!s.ok()) return Fail(s);
    items.push_back(std::move(object));
  } else {
    v1::ListRequest req;
    req.set_label_selector(selector);
    grpc::Status s = ListAll<Resp>(c, req, list, &items);
    if (!s.ok()) return Fail(s);
  }
  return PrintList(items, out, columns, false, "");
}

// `get workloads [NAME]`: namespaced like pods. There is no GetWorkload; a name filters the
// namespace's list.
int GetWorkloads(Client& c, const std::string& name, const std::string& selector, bool all_ns,
                 Output out) {
  const std::string ns = all_ns ? "" : c.globals_.ns;
  v1::ListRequest req;
  req.set_namespace_(ns);
  req.set_label_selector(selector);
  std::vector<v1::Workload> items;
  grpc::Status s = ListAll<v1::ListWorkloadsResponse>(c, req, ListWorkloadsCall(c), &items);
  if (!s.ok()) return Fail(s);
  if (!name.empty()) {
    std::erase_if(items, [&](const v1::Workload& w) { return w.metadata().name() != name; });
    if (items.empty()) {
      return Fail(grpc::Status(grpc::NOT_FOUND, "workloads \"" + name + "\" not found"));
    }
  }
  return PrintList(items, out, kWorkloadColumns, all_ns, ns);
}

// The events about one object, oldest first.
grpc::Status ListEvents(Client& c, const std::string& ns, const std::string& kind,
                        const std::string& name, std::vector<v1::Event>* events) {
  v1::ListEventsRequest req;
  req.set_namespace_(ns);
  req.set_involved_kind(kind);
  req.set_involved_name(name);
  v1::ListEventsResponse resp;
  grpc::Status s = c.nodes_->ListEvents(c.Context().get(), req, &resp);
  if (!s.ok()) return s;
  for (auto& e : *resp.mutable_items()) events->push_back(std::move(e));
  return grpc::Status::OK;
}

// Reports a section of `describe` that could not be read: one line on stderr; the object is
// still described without it.
void SectionFailed(const grpc::Status& s, const std::string& section) { Fail(s, section); }

std::optional<std::vector<v1::Event>> EventsOf(Client& c, const std::string& ns,
                                               const std::string& kind, const std::string& name) {
  std::vector<v1::Event> events;
  grpc::Status s = ListEvents(c, ns, kind, name, &events);
  if (!s.ok()) {
    SectionFailed(s, "events");
    return std::nullopt;
  }
  return events;
}

int DescribeWorkspaceCommand(Client& c, const std::string& name) {
  const std::string& ns = c.globals_.ns;
  v1::GetWorkspaceRequest req;
  req.set_namespace_(ns);
  req.set_name(name);
  v1::Workspace ws;
  grpc::Status s = c.workspaces_->GetWorkspace(c.Context().get(), req, &ws);
  if (!s.ok()) return Fail(s);
  DescribeExtras extras;
  // What the controller made for the workspace carries its labels.
  v1::ListRequest owned;
  owned.set_label_selector("kaito.sh/workspace=" + name + ",kaito.sh/workspacenamespace=" + ns);
  owned.set_namespace_(ns);
  std::vector<v1::Workload> workloads;
  s = ListAll<v1::ListWorkloadsResponse>(c, owned, ListWorkloadsCall(c), &workloads);
  if (s.ok()) {
    extras.workloads = std::move(workloads);
  } else {
    SectionFailed(s, "workloads");
  }
  owned.set_namespace_("");  // Node claims are cluster-scoped.
  std::vector<v1::NodeClaim> claims;
  s = ListAll<v1::ListNodeClaimsResponse>(c, owned, ListNodeClaimsCall(c), &claims);
  if (s.ok()) {
    extras.node_claims = std::move(claims);
  } else {
    SectionFailed(s, "node claims");
  }
  extras.events = EventsOf(c, ns, "Workspace", name);
  if (extras.events && extras.node_claims) {
    for (const auto& claim : *extras.node_claims) {
      s = ListEvents(c, kClusterEventsNamespace, "NodeClaim", claim.metadata().name(),
                     &*extras.events);
      if (!s.ok()) {
        SectionFailed(s, "events of nodeclaim/" + claim.metadata().name());
        break;
      }
    }
  }
  std::printf("%s", DescribeWorkspace(ws, absl::Now(), extras).c_str());
  return 0;
}

int DescribeNodeCommand(Client& c, const std::string& name) {
  v1::ObjectKey key;
  key.set_name(name);
  v1::Node node;
  grpc::Status s = c.nodes_->GetNode(c.Context().get(), key, &node);
  if (!s.ok()) return Fail(s);
  auto events = EventsOf(c, kClusterEventsNamespace, "Node", name);
  std::printf("%s", DescribeNode(node, absl::Now(), events).c_str());
  return 0;
}

int DescribeNodeClaimCommand(Client& c, const std::string& name) {
  v1::ObjectKey key;
  key.set_name(name);
  v1::NodeClaim claim;
  grpc::Status s = c.nodes_->GetNodeClaim(c.Context().get(), key, &claim);
  if (!s.ok()) return Fail(s);
  auto events = EventsOf(c, kClusterEventsNamespace, "NodeClaim", name);
  std::printf("%s", DescribeNodeClaim(claim, absl::Now(), events).c_str());
  return 0;
}

// kubectl's durations ("90s", "5m", "1h30m"); a bare number is seconds.
absl::StatusOr<absl::Duration> ParseWaitTimeout(const std::string& text) {
  int64_t seconds = 0;
  absl::Duration d;
  if (absl::SimpleAtoi(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError("--timeout: invalid duration \"" + text +
                                      "\" (e.g. 30s, 5m, 1h)");
  }
  if (d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--timeout: must be positive, got \"" + text + "\"");
  }
  return d;
}

int PrintDeleted(const std::string& name) {
  std::printf("workspace.kaito.sh \"%s\" deleted\n", name.c_str());
  std::fflush(stdout);
  return 0;
}

// The error of a `delete --wait` that ran out of time.
int WaitTimedOut(const std::string& name, absl::Duration timeout, const std::string& why) {
  return FailLocal("timed out after " + absl::FormatDuration(timeout) +
                   " waiting for workspace \"" + name + "\" to be deleted: " + why);
}

// Waits until the workspace is gone: a watch from `resource_version` (the delete's revision)
// for its DELETED event. When the stream ends early (server restart, history compacted, a
// slow-client close), a Get says whether it is gone and where to watch from again; retries
// wait a second, so nothing spins. Every call ends by `deadline`, a server that does not
// answer included; at the deadline it fails naming what holds the workspace. The watch
// ends a little earlier, to leave the last Get time to read those holders.
int WaitForDeletion(Client& c, const std::string& name, std::string resource_version,
                    absl::Time deadline, absl::Duration timeout) {
  v1::GetWorkspaceRequest get;
  get.set_namespace_(c.globals_.ns);
  get.set_name(name);
  const absl::Duration last_get = std::min(absl::Milliseconds(200), timeout / 10);
  for (;;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline - last_get));
    v1::WatchWorkspacesRequest req;
    req.set_namespace_(c.globals_.ns);
    req.set_name(name);
    req.set_resource_version(resource_version);
    auto reader = c.workspaces_->WatchWorkspaces(&ctx, req);
    v1::WorkspaceEvent event;
    bool gone = false;
    while (reader->Read(&event)) {
      if (event.type() == v1::DELETED) {
        gone = true;
        ctx.TryCancel();
        break;
      }
      if (!event.resource_version().empty()) resource_version = event.resource_version();
    }
    grpc::Status s = reader->Finish();
    if (gone) return PrintDeleted(name);
    const grpc::StatusCode code = s.error_code();
    if (code != grpc::OK && code != grpc::DEADLINE_EXCEEDED && code != grpc::OUT_OF_RANGE &&
        code != grpc::UNAVAILABLE && code != grpc::ABORTED) {
      return Fail(s);
    }
    // Read the object afresh: gone, still there (resume from it), or the server is away.
    v1::Workspace ws;
    s = c.workspaces_->GetWorkspace(c.Context(deadline).get(), get, &ws);
    if (s.error_code() == grpc::NOT_FOUND) return PrintDeleted(name);
    if (absl::Now() >= deadline - last_get) {
      return WaitTimedOut(name, timeout,
                          s.ok() ? DeletionBlockers(ws)
                                 : std::string("the server did not answer: ") + s.error_message());
    }
    if (s.ok()) {
      resource_version = ws.metadata().resource_version();
    } else if (s.error_code() != grpc::UNAVAILABLE && s.error_code() != grpc::DEADLINE_EXCEEDED) {
      return Fail(s);
    }
    std::this_thread::sleep_for(
        absl::ToChronoMilliseconds(std::min(absl::Seconds(1), deadline - absl::Now())));
  }
}

// With `wait`, the whole command (the delete and the wait) ends within `timeout`.
int DeleteWorkspace(Client& c, const std::string& name, bool wait, absl::Duration timeout) {
  const absl::Time deadline = wait ? absl::Now() + timeout : absl::InfiniteFuture();
  v1::DeleteWorkspaceRequest req;
  req.set_namespace_(c.globals_.ns);
  req.set_name(name);
  v1::DeleteWorkspaceResponse resp;
  grpc::Status s = c.workspaces_->DeleteWorkspace(c.Context(deadline).get(), req, &resp);
  if (wait && !s.ok() && absl::Now() >= deadline) {
    return WaitTimedOut(name, timeout,
                        "the server did not answer the delete: " + s.error_message());
  }
  if (!s.ok()) return Fail(s);
  if (!wait || resp.deleted()) return PrintDeleted(name);
  return WaitForDeletion(c, name, resp.workspace().metadata().resource_version(), deadline,
                         timeout);
}

int GetPresets(Client& c, const std::string& name, Output out) {
  std::vector<v1::ModelInfo> models;
  if (!name.empty()) {
    v1::GetModelRequest req;
    req.set_name(name);
    v1::ModelInfo info;
    grpc::Status s = c.presets_->GetModel(c.Context().get(), req, &info);
    if (!s.ok()) return Fail(s);
    models.push_back(info);
  } else {
    v1::ListModelsResponse resp;
    grpc::Status s = c.presets_->ListModels(c.Context().get(), v1::ListModelsRequest(), &resp);
    if (!s.ok()) return Fail(s);
    models.assign(resp.models().begin(), resp.models().end());
  }
  if (out == Output::kYaml || out == Output::kJson) {
    bool first = true;
    for (const auto& m : models) {
      PrintObject(m, out, first);
      first = false;
    }
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  const bool wide = out == Output::kWide;
  std::vector<std::string> header = {"NAME", "RUNTIMES", "WEIGHTS", "CONTEXT", "TUNING", "GATED"};
  if (wide) {
    for (const char* h : {"ID", "ARCHITECTURE", "QUANTIZATION", "DISTRIBUTED"}) header.push_back(h);
  }
  rows.push_back(header);
  for (const auto& m : models) {
    std::vector<std::string> row = {
        m.name() + (m.deprecated() ? " (deprecated)" : ""),
        absl::StrJoin(m.runtimes(), ","),
        m.weights(),
        m.context_length() ? std::to_string(m.context_length()) : "<unknown>",
        m.tuning_methods().empty() ? "-" : absl::StrJoin(m.tuning_methods(), ","),
        m.gated() ? "yes" : "no"};
    if (wide) {
      row.push_back(m.id());
      row.push_back(m.architecture());
      row.push_back(m.quantization().empty() ? "-" : m.quantization());
      row.push_back(m.distributed() ? "yes" : "no");
    }
    rows.push_back(row);
  }
  std::printf("%s", FormatTable(rows).c_str());
  return 0;
}

int GetSkus(Client& c, const std::string& name, const std::string& cloud, Output out) {
  v1::ListSkusResponse resp;
  if (!name.empty()) {
    v1::GetSkuRequest req;
    req.set_name(name);
    req.set_cloud(cloud);
    grpc::Status s = c.presets_->GetSku(c.Context().get(), req, resp.add_skus());
    if (!s.ok()) return Fail(s);
  } else {
    v1::ListSkusRequest req;
    req.set_cloud(cloud);
    grpc::Status s = c.presets_->ListSkus(c.Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
  }
  if (out == Output::kYaml || out == Output::kJson) {
    PrintObject(resp, out, true);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "CLOUD", "GPUS", "GPU", "MEMORY", "PER-GPU", "CC", "NVME", "STATUS"}};
  for (const auto& sku : resp.skus()) {
    rows.push_back({sku.name(), sku.cloud(), std::to_string(sku.gpu_count()), sku.gpu_model(),
                    sku.gpu_memory(), sku.gpu_memory_per_gpu(),
                    sku.compute_capability().empty() ? "-" : sku.compute_capability(),
                    sku.nvme() ? "yes" : "no", sku.retired() ? "retired" : "available"});
  }
  std::printf("%s", FormatTable(rows).c_str());
  return 0;
}

std::string Canonical(std::string resource) {
  resource = absl::AsciiStrToLower(resource);
  if (resource == "workspace" || resource == "workspaces" || resource == "ws" || resource == "wk" ||
      resource == "wks") {
    return "workspaces";
  }
  if (resource == "configmap" || resource == "configmaps" || resource == "cm") return "configmaps";
  if (resource == "secret" || resource == "secrets") return "secrets";
  if (resource == "node" || resource == "nodes" || resource == "no") return "nodes";
  if (resource == "nodeclaim" || resource == "nodeclaims" || resource == "nc") return "nodeclaims";
  if (resource == "workload" || resource == "workloads" || resource == "wl") return "workloads";
  if (resource == "preset" || resource == "presets") return "presets";
  if (resource == "sku" || resource == "skus") return "skus";
  return resource;
}

}  // namespace
}  // namespace kaito::ctl

int main(int argc, char** argv) {
  using namespace kaito::ctl;
  Globals g;
  const char* env = std::getenv("KAITO_SERVER");
  g.server = env && *env ? env : "127.0.0.1:50051";
  g.ns = "default";
  CLI::App app{"kaitoctl: the command-line client of the Kaito control plane"};
  app.require_subcommand(1);
  // Global flags also after the verb, as kubectl takes them (`get workloads -n ns`).
  app.fallthrough();
  app.add_option("--server", g.server, "kaito-server address HOST:PORT (env KAITO_SERVER)")
      ->capture_default_str();
  app.add_option("-n,--namespace", g.ns, "Namespace")->capture_default_str();
  app.add_option("--timeout", g.timeout_s, "Seconds to wait for each call")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  // kubectl's names, and the same from the environment (KAITO_TOKEN, ...).
  auto from_env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v && *v ? v : "");
  };
  g.token = from_env("KAITO_TOKEN");
  g.tls.ca_file = from_env("KAITO_CERTIFICATE_AUTHORITY");
  g.tls.cert_file = from_env("KAITO_CLIENT_CERTIFICATE");
  g.tls.key_file = from_env("KAITO_CLIENT_KEY");
  g.tls.insecure_skip_verify = from_env("KAITO_INSECURE_SKIP_TLS_VERIFY") == "true";
  app.add_option("--token", g.token, "Bearer token for the server (env KAITO_TOKEN)");
  app.add_option("--certificate-authority", g.tls.ca_file,
                 "Verify the server's certificate against this CA; the connection uses TLS "
                 "(env KAITO_CERTIFICATE_AUTHORITY)");
  app.add_option("--client-certificate", g.tls.cert_file,
                 "Client certificate for TLS (env KAITO_CLIENT_CERTIFICATE)");
  app.add_option("--client-key", g.tls.key_file,
                 "Key of --client-certificate (env KAITO_CLIENT_KEY)");
  app.add_flag("--insecure-skip-tls-verify", g.tls.insecure_skip_verify,
               "Use TLS without verifying the server's certificate (env "
               "KAITO_INSECURE_SKIP_TLS_VERIFY=true)");

  std::string file;
  bool dry_run = false;
  auto* apply = app.add_subcommand("apply", "Create or update the objects of a manifest");
  apply->add_option("-f,--filename", file, "Manifest file, or - for stdin")->required();
  apply->add_flag("--dry-run", dry_run, "Validate on the server without storing");

  std::string resource, name, output, selector;
  bool watch = false, all_ns = false, wait = false;
  auto* get = app.add_subcommand(
      "get", "Show workspaces, nodes, node claims, workloads, configmaps, secrets, presets, skus");
  get->add_option("resource", resource,
                  "workspaces|ws, nodes|no, nodeclaims|nc, workloads|wl, configmaps|cm, secrets, "
                  "presets, skus")
      ->required();
  get->add_option("name", name, "One object by name");
  get->add_option("-o,--output", output, "table|wide|yaml|json|name");
  get->add_option("-l,--selector", selector, "Label selector, e.g. app=phi,tier!=dev");
  get->add_flag("-w,--watch", watch, "After listing, stream changes");
  get->add_flag("-A,--all-namespaces", all_ns, "Every namespace");
  std::string cloud;
  get->add_option("--cloud", cloud, "For skus: azure | aws | arc | all (default: the server's)");

  auto* describe =
      app.add_subcommand("describe", "Show one workspace, node or node claim in detail");
  describe->add_option("resource", resource, "workspace|node|nodeclaim")->required();
  describe->add_option("name", name, "Name")->required();

  auto* del = app.add_subcommand("delete", "Delete a workspace, configmap or secret");
  del->add_option("resource", resource, "workspace|configmap|secret")->required();
  del->add_option("name", name, "Name")->required();
  del->add_flag("--wait", wait, "Wait until the object is gone (finalizers done)");
  std::string wait_timeout = "5m";
  del->add_option("--timeout", wait_timeout,
                  "With --wait: how long to wait for the workspace to be gone (30s, 5m, 1h)")
      ->capture_default_str();

  auto* version = app.add_subcommand("version", "Show client and server versions");

  CLI11_PARSE(app, argc, argv);
  if (absl::Status s = kaito::CheckTlsClientFiles(g.tls); !s.ok()) {
    return FailLocal(std::string(s.message()));
  }

  Client client(g);
  if (apply->parsed()) return Apply(client, file, dry_run);
  if (version->parsed()) {
    std::printf("Client Version: %s\n", kaito::Version());
    kaito::v1::VersionInfo info;
    grpc::Status s =
        client.system_->GetVersion(client.Context().get(), kaito::v1::GetVersionRequest(), &info);
    if (!s.ok()) return Fail(s);
    std::printf("Server Version: %s (store %s, revision %s%s)\n", info.version().c_str(),
                info.store().c_str(), info.resource_version().c_str(),
                info.dev_mode() ? ", dev mode" : "");
    return 0;
  }
  const std::string kind = Canonical(resource);
  if (get->parsed()) {
    auto out = ParseOutput(output);
    if (!out.ok()) return FailLocal(std::string(out.status().message()));
    if (kind == "workspaces") return GetWorkspaces(client, name, selector, all_ns, *out, watch);
    if (watch) return FailLocal("--watch is served for workspaces only");
    if (kind == "nodes") {
      return GetClusterScoped<kaito::v1::Node, kaito::v1::ListNodesResponse>(
          client, name, selector, *out, kNodeColumns, GetNodeCall(client), ListNodesCall(client));
    }
    if (kind == "nodeclaims") {
      return GetClusterScoped<kaito::v1::NodeClaim, kaito::v1::ListNodeClaimsResponse>(
          client, name, selector, *out, kNodeClaimColumns, GetNodeClaimCall(client),
          ListNodeClaimsCall(client));
    }
    if (kind == "workloads") return GetWorkloads(client, name, selector, all_ns, *out);
    if (kind == "configmaps") {
      return GetData<kaito::v1::ConfigMap, kaito::v1::ListConfigMapsResponse>(
          client, "configmap", name, all_ns, *out,
          [&](grpc::ClientContext* ctx, const kaito::v1::ListRequest& r,
              kaito::v1::ListConfigMapsResponse* resp) {
            return client.configs_->ListConfigMaps(ctx, r, resp);
          });
    }
    if (kind == "secrets") {
      return GetData<kaito::v1::Secret, kaito::v1::ListSecretsResponse>(
          client, "secret", name, all_ns, *out,
          [&](grpc::ClientContext* ctx, const kaito::v1::ListRequest& r,
              kaito::v1::ListSecretsResponse* resp) {
            return client.secrets_->ListSecrets(ctx, r, resp);
          });
    }
    if (kind == "presets") return GetPresets(client, name, *out);
    if (kind == "skus") return GetSkus(client, name, cloud, *out);
    return FailLocal("unknown resource type \"" + resource + "\"");
  }
  if (describe->parsed()) {
    if (kind == "workspaces") return DescribeWorkspaceCommand(client, name);
    if (kind == "nodes") return DescribeNodeCommand(client, name);
    if (kind == "nodeclaims") return DescribeNodeClaimCommand(client, name);
    return FailLocal("describe serves workspaces, nodes and nodeclaims, not \"" + resource + "\"");
  }
  if (del->parsed()) {
    if (kind == "workspaces") {
      auto timeout = ParseWaitTimeout(wait_timeout);
      if (!timeout.ok()) return FailLocal(std::string(timeout.status().message()));
      return DeleteWorkspace(client, name, wait, *timeout);
    }
    kaito::v1::DeleteRequest req;
    req.set_namespace_(g.ns);
    req.set_name(name);
    kaito::v1::DeleteResponse resp;
    grpc::Status s;
    if (kind == "configmaps") {
      s = client.configs_->DeleteConfigMap(client.Context().get(), req, &resp);
    } else if (kind == "secrets") {
      s = client.secrets_->DeleteSecret(client.Context().get(), req, &resp);
    } else {
      return FailLocal("unknown resource type \"" + resource + "\"");
    }
    if (!s.ok()) return Fail(s);
    std::printf("%s/%s deleted\n", kind.substr(0, kind.size() - 1).c_str(), name.c_str());
    return 0;
  }
  return 0;
}
