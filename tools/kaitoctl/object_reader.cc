#include "tools/kaitoctl/object_reader.h"

#include <type_traits>

#include "kaito/v1/presets.pb.h"

namespace kaito::ctl {
namespace {

constexpr int kPageSize = 500;

// Every page of a List call: `call(context, request, response)` with `Resp` having `items`,
// `next_page_token` and `resource_version`.
template <typename Resp, typename Req, typename Call>
CallStatus ListPages(Client& c, Req req, Call call, Objects* out, std::string* resource_version) {
  req.set_page_size(kPageSize);
  bool first = true;
  do {
    Resp resp;
    CallStatus s = c.Unary([&](grpc::ClientContext* ctx) { return call(ctx, req, &resp); });
    if (!s.ok()) return s;
    for (auto& item : *resp.mutable_items()) {
      using Item = std::remove_reference_t<decltype(item)>;
      out->push_back(std::make_unique<Item>(std::move(item)));
    }
    if (first && resource_version != nullptr) *resource_version = resp.resource_version();
    first = false;
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return {};
}

template <typename T, typename Call>
CallStatus GetOne(Client& c, Call call, Objects* out) {
  auto object = std::make_unique<T>();
  CallStatus s = c.Unary([&](grpc::ClientContext* ctx) { return call(ctx, object.get()); });
  if (s.ok()) out->push_back(std::move(object));
  return s;
}

v1::ListRequest ListRequestOf(const ResourceType& type, const ReadScope& scope) {
  v1::ListRequest req;
  if (type.namespaced) req.set_namespace_(scope.ns);
  req.set_label_selector(scope.selector);
  return req;
}

v1::ObjectKey KeyOf(const ResourceType& type, const ReadScope& scope, const std::string& name) {
  v1::ObjectKey key;
  if (type.namespaced) key.set_namespace_(scope.ns);
  key.set_name(name);
  return key;
}

CallStatus ListCatalog(Client& c, const ResourceType& type, const ReadScope& scope, Objects* out) {
  if (type.plural == "presets") {
    v1::ListModelsResponse resp;
    CallStatus s = c.Unary([&](grpc::ClientContext* ctx) {
      return c.presets().ListModels(ctx, v1::ListModelsRequest(), &resp);
    });
    for (auto& m : *resp.mutable_models()) out->push_back(std::make_unique<v1::ModelInfo>(m));
    return s;
  }
  v1::ListSkusRequest req;
  req.set_cloud(scope.cloud);
  v1::ListSkusResponse resp;
  CallStatus s =
      c.Unary([&](grpc::ClientContext* ctx) { return c.presets().ListSkus(ctx, req, &resp); });
  for (auto& sku : *resp.mutable_skus()) out->push_back(std::make_unique<v1::SkuInfo>(sku));
  return s;
}

}  // namespace

CallStatus ListObjects(Client& c, const ResourceType& type, const ReadScope& scope, Objects* out,
                       std::string* resource_version) {
  const std::string& kind = type.plural;
  if (kind == "workspaces") {
    v1::ListWorkspacesRequest req;
    req.set_namespace_(scope.ns);
    req.set_label_selector(scope.selector);
    return ListPages<v1::ListWorkspacesResponse>(
        c, req,
        [&](grpc::ClientContext* ctx, const v1::ListWorkspacesRequest& r,
            v1::ListWorkspacesResponse* resp) {
          return c.workspaces().ListWorkspaces(ctx, r, resp);
        },
        out, resource_version);
  }
  const v1::ListRequest req = ListRequestOf(type, scope);
  if (kind == "configmaps") {
    return ListPages<v1::ListConfigMapsResponse>(
        c, req,
        [&](grpc::ClientContext* ctx, const v1::ListRequest& r, v1::ListConfigMapsResponse* resp) {
          return c.configs().ListConfigMaps(ctx, r, resp);
        },
        out, resource_version);
  }
  if (kind == "secrets") {
    return ListPages<v1::ListSecretsResponse>(
        c, req,
        [&](grpc::ClientContext* ctx, const v1::ListRequest& r, v1::ListSecretsResponse* resp) {
          return c.secrets().ListSecrets(ctx, r, resp);
        },
        out, resource_version);
  }
  if (kind == "nodes") {
    return ListPages<v1::ListNodesResponse>(
        c, req,
        [&](grpc::ClientContext* ctx, const v1::ListRequest& r, v1::ListNodesResponse* resp) {
          return c.nodes().ListNodes(ctx, r, resp);
        },
        out, resource_version);
  }
  if (kind == "nodeclaims") {
    return ListPages<v1::ListNodeClaimsResponse>(
        c, req,
        [&](grpc::ClientContext* ctx, const v1::ListRequest& r, v1::ListNodeClaimsResponse* resp) {
          return c.nodes().ListNodeClaims(ctx, r, resp);
        },
        out, resource_version);
  }
  if (kind == "events") {
    // One reply, oldest first; no paging or selector on events.
    v1::ListEventsRequest req;
    req.set_namespace_(scope.ns);
    v1::ListEventsResponse resp;
    CallStatus s = c.Unary(
        [&](grpc::ClientContext* ctx) { return c.nodes().ListEvents(ctx, req, &resp); });
    for (auto& e : *resp.mutable_items()) out->push_back(std::make_unique<v1::Event>(std::move(e)));
    return s;
  }
  if (kind == "workloads") {
    return ListPages<v1::ListWorkloadsResponse>(
        c, req,
        [&](grpc::ClientContext* ctx, const v1::ListRequest& r, v1::ListWorkloadsResponse* resp) {
          return c.nodes().ListWorkloads(ctx, r, resp);
        },
        out, resource_version);
  }
  return ListCatalog(c, type, scope, out);
}

CallStatus GetObject(Client& c, const ResourceType& type, const ReadScope& scope,
                     const std::string& name, Objects* out) {
  const std::string& kind = type.plural;
  const v1::ObjectKey key = KeyOf(type, scope, name);
  if (kind == "workspaces") {
    v1::GetWorkspaceRequest req;
    req.set_namespace_(scope.ns);
    req.set_name(name);
    return GetOne<v1::Workspace>(
        c,
        [&](grpc::ClientContext* ctx, v1::Workspace* ws) {
          return c.workspaces().GetWorkspace(ctx, req, ws);
        },
        out);
  }
  if (kind == "configmaps") {
    return GetOne<v1::ConfigMap>(
        c,
        [&](grpc::ClientContext* ctx, v1::ConfigMap* m) {
          return c.configs().GetConfigMap(ctx, key, m);
        },
        out);
  }
  if (kind == "secrets") {
    return GetOne<v1::Secret>(
        c,
        [&](grpc::ClientContext* ctx, v1::Secret* s) { return c.secrets().GetSecret(ctx, key, s); },
        out);
  }
  if (kind == "nodes") {
    return GetOne<v1::Node>(
        c, [&](grpc::ClientContext* ctx, v1::Node* n) { return c.nodes().GetNode(ctx, key, n); },
        out);
  }
  if (kind == "nodeclaims") {
    return GetOne<v1::NodeClaim>(
        c,
        [&](grpc::ClientContext* ctx, v1::NodeClaim* n) {
          return c.nodes().GetNodeClaim(ctx, key, n);
        },
        out);
  }
  if (kind == "presets") {
    v1::GetModelRequest req;
    req.set_name(name);
    return GetOne<v1::ModelInfo>(
        c,
        [&](grpc::ClientContext* ctx, v1::ModelInfo* m) {
          return c.presets().GetModel(ctx, req, m);
        },
        out);
  }
  if (kind == "skus") {
    v1::GetSkuRequest req;
    req.set_name(name);
    req.set_cloud(scope.cloud);
    return GetOne<v1::SkuInfo>(
        c,
        [&](grpc::ClientContext* ctx, v1::SkuInfo* s) { return c.presets().GetSku(ctx, req, s); },
        out);
  }
  // Workloads have no Get: the namespace's list, filtered.
  ReadScope in_namespace = scope;
  in_namespace.selector.clear();
  Objects all;
  CallStatus s = ListObjects(c, type, in_namespace, &all);
  if (!s.ok()) return s;
  for (auto& object : all) {
    if (NameOf(*object) == name) {
      out->push_back(std::move(object));
      return s;
    }
  }
  s.status = grpc::Status(grpc::NOT_FOUND, kind + " \"" + name + "\" not found");
  return s;
}

namespace {
// The object's metadata; null for kinds without (presets, skus).
const v1::ObjectMeta* MetadataOf(const google::protobuf::Message& object) {
  const auto* field = object.GetDescriptor()->FindFieldByName("metadata");
  if (field == nullptr || field->message_type() != v1::ObjectMeta::descriptor()) return nullptr;
  return static_cast<const v1::ObjectMeta*>(&object.GetReflection()->GetMessage(object, field));
}
}  // namespace

std::string NameOf(const google::protobuf::Message& object) {
  if (const v1::ObjectMeta* meta = MetadataOf(object)) return meta->name();
  const auto* field = object.GetDescriptor()->FindFieldByName("name");
  if (field == nullptr || field->type() != google::protobuf::FieldDescriptor::TYPE_STRING) {
    return "";
  }
  return object.GetReflection()->GetString(object, field);
}

std::string ResourceVersionOf(const google::protobuf::Message& object) {
  const v1::ObjectMeta* meta = MetadataOf(object);
  return meta != nullptr ? meta->resource_version() : "";
}

}  // namespace kaito::ctl
