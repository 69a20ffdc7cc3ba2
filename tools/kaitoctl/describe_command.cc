// `kaitoctl describe`: workspaces, nodes and node claims in detail, with their events;
// by name, or every one of the kind (of the namespace for workspaces) when none is named.
#include <cstdio>
#include <optional>

#include "absl/time/clock.h"
#include "tools/kaitoctl/commands.h"
#include "tools/kaitoctl/object_reader.h"
#include "tools/kaitoctl/printers.h"

namespace kaito::ctl {
namespace {

// Cluster-scoped objects (nodes, node claims) keep their events in this namespace.
constexpr char kClusterEventsNamespace[] = "default";

// The events about one object, oldest first, appended to `events`.
CallStatus ListEvents(Client& c, const std::string& ns, const std::string& kind,
                      const std::string& name, std::vector<v1::Event>* events) {
  v1::ListEventsRequest req;
  req.set_namespace_(ns);
  req.set_involved_kind(kind);
  req.set_involved_name(name);
  v1::ListEventsResponse resp;
  CallStatus s =
      c.Unary([&](grpc::ClientContext* ctx) { return c.nodes().ListEvents(ctx, req, &resp); });
  for (auto& e : *resp.mutable_items()) events->push_back(std::move(e));
  return s;
}

// Reports a section of `describe` that could not be read: one line on stderr; the object is
// still described without it.
void SectionFailed(const CallStatus& s, const std::string& section) { Fail(s, section); }

std::optional<std::vector<v1::Event>> EventsOf(Client& c, const std::string& ns,
                                               const std::string& kind, const std::string& name) {
  std::vector<v1::Event> events;
  CallStatus s = ListEvents(c, ns, kind, name, &events);
  if (!s.ok()) {
    SectionFailed(s, "events");
    return std::nullopt;
  }
  return events;
}

// What the controller made for the workspace, which carries its labels.
template <typename T>
std::optional<std::vector<T>> Owned(Client& c, const std::string& plural, const std::string& ns,
                                    const std::string& name, const std::string& section) {
  ReadScope scope;
  scope.ns = ns;
  scope.selector = "kaito.sh/workspace=" + name + ",kaito.sh/workspacenamespace=" + ns;
  Objects objects;
  CallStatus s = ListObjects(c, *FindResourceType(plural), scope, &objects);
  if (!s.ok()) {
    SectionFailed(s, section);
    return std::nullopt;
  }
  std::vector<T> out;
  for (const auto& o : objects) out.push_back(static_cast<const T&>(*o));
  return out;
}

std::string DescribeOneWorkspace(Client& c, const v1::Workspace& ws) {
  const std::string& ns = ws.metadata().namespace_();
  const std::string& name = ws.metadata().name();
  DescribeExtras extras;
  extras.workloads = Owned<v1::Workload>(c, "workloads", ns, name, "workloads");
  extras.node_claims = Owned<v1::NodeClaim>(c, "nodeclaims", ns, name, "node claims");
  extras.events = EventsOf(c, ns, "Workspace", name);
  if (extras.events && extras.node_claims) {
    for (const auto& claim : *extras.node_claims) {
      CallStatus s = ListEvents(c, kClusterEventsNamespace, "NodeClaim", claim.metadata().name(),
                                &*extras.events);
      if (!s.ok()) {
        SectionFailed(s, "events of nodeclaim/" + claim.metadata().name());
        break;
      }
    }
  }
  return DescribeWorkspace(ws, absl::Now(), extras);
}

std::string DescribeOne(Client& c, const ResourceType& type, const google::protobuf::Message& m) {
  if (type.plural == "workspaces") {
    return DescribeOneWorkspace(c, static_cast<const v1::Workspace&>(m));
  }
  const std::string name = NameOf(m);
  if (type.plural == "nodes") {
    return DescribeNode(static_cast<const v1::Node&>(m), absl::Now(),
                        EventsOf(c, kClusterEventsNamespace, "Node", name));
  }
  return DescribeNodeClaim(static_cast<const v1::NodeClaim&>(m), absl::Now(),
                           EventsOf(c, kClusterEventsNamespace, "NodeClaim", name));
}

}  // namespace

int DescribeCommand(Client& c, const std::vector<std::string>& args) {
  absl::StatusOr<std::vector<ResourceSelection>> selections = ParseResourceArgs(args, "describe");
  if (!selections.ok()) return FailLocal(std::string(selections.status().message()));
  int rc = 0;
  bool first = true;
  for (const ResourceSelection& sel : *selections) {
    const std::string& kind = sel.type->plural;
    if (kind != "workspaces" && kind != "nodes" && kind != "nodeclaims") {
      return FailLocal("describe serves workspaces, nodes and nodeclaims, not " + kind);
    }
    ReadScope scope;
    scope.ns = c.globals().ns;
    Objects objects;
    if (sel.names.empty()) {
      CallStatus s = ListObjects(c, *sel.type, scope, &objects);
      if (!s.ok()) return Fail(s);
    }
    for (const std::string& name : sel.names) {
      CallStatus s = GetObject(c, *sel.type, scope, name, &objects);
      if (!s.ok()) rc = Fail(s);
    }
    for (const auto& object : objects) {
      std::printf("%s%s", first ? "" : "\n\n", DescribeOne(c, *sel.type, *object).c_str());
      first = false;
    }
  }
  return rc;
}

}  // namespace kaito::ctl
