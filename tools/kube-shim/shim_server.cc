#include "tools/kube-shim/shim_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/limits.h"
#include "common/manifest_codec.h"
#include "common/message_json.h"
#include "common/rpc_metrics.h"
#include "common/version.h"
#include "tools/kube-shim/discovery.h"
#include "tools/kube-shim/k8s_protobuf.h"
#include "tools/kube-shim/k8s_status.h"
#include "tools/kube-shim/openapi.h"
#include "tools/kube-shim/patch.h"
#include "tools/kube-shim/table.h"
#include "kaito/v1/meta.pb.h"

namespace kaito::shim {
namespace {

using json = nlohmann::ordered_json;
using google::protobuf::Message;

constexpr char kJson[] = "application/json";
constexpr char kWatchJson[] = "application/json;stream=watch";
constexpr char kLastApplied[] = "kubectl.kubernetes.io/last-applied-configuration";
// Optimistic-concurrency retries of a patch whose object changed between read and write.
constexpr int kPatchAttempts = 5;
// The largest page kaito-server serves.
constexpr int kMaxPage = 1000;

// Replies under 128 KiB go out uncompressed, as kube-apiserver sends them: gzip would
// save a few hundred bytes of a small object at the cost of a fresh deflate state (about
// 256 KiB allocated and cleared) per reply. cpp-httplib compresses exactly the content
// type "application/json" when the client accepts gzip, so a small reply names its
// (only) charset, which keeps it out of the compressor and means the same to clients.
constexpr size_t kCompressFrom = 128 << 10;
constexpr char kJsonUncompressed[] = "application/json;charset=utf-8";

void ReplyText(httplib::Response& res, int code, std::string body) {
  res.status = code;
  const char* type = body.size() >= kCompressFrom ? kJson : kJsonUncompressed;
  res.set_content(std::move(body), type);
}

void Reply(httplib::Response& res, int code, const json& body) {
  ReplyText(res, code, body.dump());
}

void ReplyError(httplib::Response& res, const ApiError& error) {
  if (error.retry_after_seconds > 0) {
    res.set_header("Retry-After", std::to_string(error.retry_after_seconds));
  }
  Reply(res, error.http_code, StatusObject(error));
}

// What the client asked the reply to be (Accept): the object, a Table, or metadata only.
enum class Shape { kObject, kTable, kMetadata };

Shape WantedShape(const httplib::Request& req) {
  std::string accept = req.get_header_value("Accept");
  for (absl::string_view range : absl::StrSplit(accept, ',')) {
    if (absl::StrContains(range, "as=Table")) return Shape::kTable;
    if (absl::StrContains(range, "as=PartialObjectMetadata")) return Shape::kMetadata;
    if (absl::StrContains(range, "json") || absl::StrContains(range, "*/*")) return Shape::kObject;
  }
  return Shape::kObject;
}

RowObject IncludeObject(const httplib::Request& req) {
  std::string include = req.get_param_value("includeObject");
  if (include == "None") return RowObject::kNone;
  if (include == "Object") return RowObject::kObject;
  return RowObject::kMetadata;
}

// A boolean query parameter as Kubernetes reads one (Go's strconv.ParseBool).
bool QueryBool(const httplib::Request& req, const char* name) {
  const std::string v = req.get_param_value(name);
  return v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True";
}

// A non-negative integer query parameter; absent leaves `*out` as it is. False when it
// is not one.
bool QueryCount(const httplib::Request& req, const char* name, int* out) {
  if (!req.has_param(name)) return true;
  return absl::SimpleAtoi(req.get_param_value(name), out) && *out >= 0;
}

bool DryRun(const httplib::Request& req) { return req.get_param_value("dryRun") == "All"; }

// The object as served: apiVersion and kind of the request's version first, then the
// message's fields with the Kubernetes names.
std::string ObjectJsonText(const ResourceType& r, const std::string& version, const Message& m) {
  if (auto text = WriteMessageJson(m, {{"apiVersion", r.ApiVersion(version)}, {"kind", r.kind}})) {
    return *std::move(text);
  }
  json body = MessageToJsonValue(m);
  json out = {{"apiVersion", r.ApiVersion(version)}, {"kind", r.kind}};
  for (auto& [key, value] : body.items()) {
    if (key != "apiVersion" && key != "kind") out[key] = std::move(value);
  }
  return out.dump();
}

json ObjectJson(const ResourceType& r, const std::string& version, const Message& m) {
  return json::parse(ObjectJsonText(r, version, m));
}

std::string MetadataField(const json& object, const char* field) {
  if (!object.is_object() || !object.contains("metadata")) return "";
  const json& meta = object["metadata"];
  if (!meta.is_object() || !meta.contains(field) || !meta[field].is_string()) return "";
  return meta[field].get<std::string>();
}

// metadata.name of any of our kinds (each has `ObjectMeta metadata`).
std::string ObjectName(const Message& m) {
  const auto* field = m.GetDescriptor()->FindFieldByName("metadata");
  if (field == nullptr) return "";
  const auto& meta = static_cast<const v1::ObjectMeta&>(m.GetReflection()->GetMessage(m, field));
  return meta.name();
}

// A Secret's last-applied annotation would keep its values in plain text: the values are
// blanked, as every read returns them.
void RedactLastApplied(json& object) {
  if (!object.contains("metadata") || !object["metadata"].is_object()) return;
  json& meta = object["metadata"];
  if (!meta.contains("annotations") || !meta["annotations"].is_object()) return;
  json& annotations = meta["annotations"];
  if (!annotations.contains(kLastApplied) || !annotations[kLastApplied].is_string()) return;
  json applied = json::parse(annotations[kLastApplied].get<std::string>(), nullptr, false);
  if (!applied.is_object()) {
    annotations.erase(kLastApplied);
    return;
  }
  for (const char* field : {"data", "stringData"}) {
    if (!applied.contains(field) || !applied[field].is_object()) continue;
    for (auto& [key, value] : applied[field].items()) value = "";
  }
  annotations[kLastApplied] = applied.dump();
}

// Field violations of a codec status, as the server would send them.
ApiError DecodeError(const absl::Status& status, const ResourceType& r, const std::string& name) {
  return FromGrpc(ToGrpcStatus(status), r, name);
}

// The request body as a message of the target's kind, checked as kube-apiserver checks it:
// apiVersion and kind those of the URL (filled in when absent), the namespace that of the
// URL (filled in when absent), and for an update the name that of the URL. Decoding is the
// manifest codec's, as strict as kaitoctl's: an unknown field or a wrong type is 422 with
// the field's path.
std::optional<ApiError> Decode(const KubeShim::Target& t, json body, const std::string& url_name,
                               std::unique_ptr<Message>* out) {
  const ResourceType& r = *t.resource;
  if (!body.is_object()) return BadRequest("the request body must be a JSON object");
  const std::string want_version = r.ApiVersion(t.version);
  if (!body.contains("apiVersion")) body["apiVersion"] = want_version;
  if (!body.contains("kind")) body["kind"] = r.kind;
  if (body["apiVersion"] != want_version) {
    return BadRequest(absl::StrCat("the API version in the data (", body["apiVersion"].dump(),
                                   ") does not match the expected API version (", want_version,
                                   ")"));
  }
  if (body["kind"] != r.kind) {
    return BadRequest(absl::StrCat("the kind in the data (", body["kind"].dump(),
                                   ") does not match the expected kind (", r.kind, ")"));
  }
  if (!body.contains("metadata") || body["metadata"].is_null()) body["metadata"] = json::object();
  if (!body["metadata"].is_object()) {
    return Invalid(r, "", "metadata", "Invalid value: must be an object");
  }
  json& meta = body["metadata"];
  if (!meta.contains("namespace") || meta["namespace"] == "") meta["namespace"] = t.namespace_;
  if (meta["namespace"] != t.namespace_) {
    return BadRequest(
        "the namespace of the provided object does not match the namespace sent on the request");
  }
  const std::string name = MetadataField(body, "name");
  if (!url_name.empty() && name != url_name) {
    return BadRequest(absl::StrCat("the name of the object (", name,
                                   ") does not match the name on the URL (", url_name, ")"));
  }
  if (r.write_only_values) RedactLastApplied(body);

  // Straight from the parsed JSON into the kind's message, with the manifest codec's rules
  // (no round trip through YAML text).
  std::unique_ptr<Message> object = t.backend->New();
  FieldErrors errors;
  JsonToMessage(body, object.get(), errors);
  if (!errors.empty()) {
    ManifestDocument doc;  // Only to word the error as the codec words a manifest's.
    doc.index = 1;
    doc.kind = r.kind;
    doc.name = name;
    return DecodeError(errors.ToStatus(doc.Describe()), r, name);
  }
  *out = std::move(object);
  return std::nullopt;
}

// The request body as JSON: JSON as sent, or the Kubernetes protobuf encoding decoded.
std::optional<json> ParseBody(const KubeShim::Target& t, const httplib::Request& req,
                              httplib::Response& res) {
  if (IsProtobuf(req.get_header_value("Content-Type"))) {
    auto decoded = ProtobufToJson(*t.resource, req.body);
    if (decoded.ok()) return std::move(*decoded);
    ReplyError(res, decoded.status().code() == absl::StatusCode::kUnimplemented
                        ? UnsupportedMediaType(std::string(decoded.status().message()))
                        : BadRequest(std::string(decoded.status().message())));
    return std::nullopt;
  }
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    ReplyError(res, BadRequest("the request body is not valid JSON"));
    return std::nullopt;
  }
  return body;
}

void AddWarnings(httplib::Response& res, const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) {
    // RFC 7234's warn-text: a quoted string, with `"` and `\` escaped.
    std::string text;
    for (char c : w) {
      if (c == '"' || c == '\\') text += '\\';
      text += (c == '\n' || c == '\r') ? ' ' : c;
    }
    res.set_header("Warning", "299 - \"" + text + "\"");
  }
}

// A field selector of the only fields every kind has: metadata.name and metadata.namespace,
// with =, == or !=.
struct FieldSelector {
  struct Term {
    std::string field;
    std::string value;
    bool equal = true;
  };
  std::vector<Term> terms;

  bool Matches(const json& object) const {
    for (const auto& term : terms) {
      const std::string actual =
          MetadataField(object, term.field == "metadata.name" ? "name" : "namespace");
      if ((actual == term.value) != term.equal) return false;
    }
    return true;
  }
  // The name that an equality term fixes, for the server to filter a watch by.
  std::string Name() const {
    for (const auto& term : terms) {
      if (term.field == "metadata.name" && term.equal) return term.value;
    }
    return "";
  }
};

absl::StatusOr<FieldSelector> ParseFieldSelector(const std::string& text) {
  FieldSelector selector;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    FieldSelector::Term term;
    size_t op = part.find("!=");
    size_t value_at;
    if (op != absl::string_view::npos) {
      term.equal = false;
      value_at = op + 2;
    } else if ((op = part.find("==")) != absl::string_view::npos) {
      value_at = op + 2;
    } else if ((op = part.find('=')) != absl::string_view::npos) {
      value_at = op + 1;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid selector: '", text, "'; can't understand '", part, "'"));
    }
    term.field = std::string(absl::StripAsciiWhitespace(part.substr(0, op)));
    term.value = std::string(absl::StripAsciiWhitespace(part.substr(value_at)));
    if (term.field != "metadata.name" && term.field != "metadata.namespace") {
      return absl::InvalidArgumentError("field label not supported: " + term.field);
    }
    selector.terms.push_back(std::move(term));
  }
  return selector;
}

json ListMetadata(const std::string& resource_version, const std::string& next) {
  json meta = {{"resourceVersion", resource_version}};
  if (!next.empty()) meta["continue"] = next;
  return meta;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KubeShim>> KubeShim::Start(
    const ShimOptions& options, std::shared_ptr<grpc::Channel> channel,
    std::shared_ptr<prometheus::Registry> registry,
    std::shared_ptr<grpc::Channel> read_cache_channel) {
  std::unique_ptr<KubeShim> shim(new KubeShim(options, std::move(channel), std::move(registry),
                                              std::move(read_cache_channel)));
  HttpListenerOptions http;
  http.workers = options.max_connections;
  http.io_timeout_ms = 10000;
  http.keep_alive_timeout_s = 5;
  http.keep_alive_max_requests = 100000;
  http.max_request_bytes = kMaxRequestBytes;
  http.require_client_certificates = true;
  auto listener = HttpListener::Bind("kube-shim listener", options.listen, options.tls, http);
  if (!listener.ok()) return listener.status();
  shim->listener_ = std::move(*listener);
  shim->Routes();
  if (shim->read_cache_) shim->read_cache_->Start();
  shim->listener_->Start();
  return shim;
}

KubeShim::KubeShim(const ShimOptions& options, std::shared_ptr<grpc::Channel> channel,
                   std::shared_ptr<prometheus::Registry> registry,
                   std::shared_ptr<grpc::Channel> read_cache_channel)
    : options_(options), channel_(std::move(channel)), registry_(std::move(registry)) {
  requests_ = &prometheus::BuildCounter()
                   .Name("kaito_shim_requests_total")
                   .Help("Kubernetes API requests served by the shim, by verb, resource and "
                         "HTTP code.")
                   .Register(*registry_);
  auto& cache_requests = prometheus::BuildCounter()
                             .Name("kaito_shim_read_cache_requests_total")
                             .Help("GETs of workspaces by how the shim answered them: from its "
                                   "read cache (hit), or by asking kaito-server (miss).")
                             .Register(*registry_);
  cache_hits_ = &cache_requests.Add({{"result", "hit"}});
  cache_misses_ = &cache_requests.Add({{"result", "miss"}});
  for (const auto& r : ServedResources()) {
    if (r.kind == "Workspace") {
      backends_.push_back(NewWorkspaceBackend(channel_));
      workspace_backend_ = backends_.back().get();
      if (options_.read_cache.authorization_ttl > absl::ZeroDuration()) {
        read_cache_backend_ =
            NewWorkspaceBackend(read_cache_channel ? read_cache_channel : channel_);
        read_cache_ =
            std::make_unique<WorkspaceReadCache>(read_cache_backend_.get(), options_.read_cache);
      }
    }
    if (r.kind == "ConfigMap") backends_.push_back(NewConfigMapBackend(channel_));
    if (r.kind == "Secret") backends_.push_back(NewSecretBackend(channel_));
  }
}

KubeShim::~KubeShim() { Shutdown(); }

void KubeShim::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (WatchStream* w : watches_) w->Cancel();
  }
  if (listener_) listener_->Stop();
  if (read_cache_) read_cache_->Stop();
}

bool KubeShim::ReplyIfFailed(const std::string& verb, const Target& t, const std::string& name,
                             const grpc::Status& status, httplib::Response& res) {
  if (status.ok()) return false;
  const ApiError error = FromGrpc(status, *t.resource, name);
  Count(verb, t, error.http_code);
  ReplyError(res, error);
  return true;
}

void KubeShim::Count(const std::string& verb, const Target& t, int code) {
  requests_
      ->Add({{"verb", verb},
             {"resource", t.resource ? t.resource->plural : ""},
             {"code", std::to_string(code)}})
      .Increment();
}

void KubeShim::Routes() {
  httplib::Server& http = listener_->http();
  auto serve = [this](const httplib::Request& req, httplib::Response& res) {
    ServeResource(req, res);
  };
  const char* kResourcePaths = R"(/(api|apis)/.+)";
  http.Get(kResourcePaths, serve);
  http.Post(kResourcePaths, serve);
  http.Put(kResourcePaths, serve);
  http.Patch(kResourcePaths, serve);
  http.Delete(kResourcePaths, serve);

  http.Get("/api", [](const httplib::Request& req, httplib::Response& res) {
    Reply(res, 200, CoreApiVersions(req.get_header_value("Host")));
  });
  http.Get("/apis", [](const httplib::Request&, httplib::Response& res) {
    Reply(res, 200, ApiGroupList());
  });
  http.Get("/version", [](const httplib::Request&, httplib::Response& res) {
    Reply(res, 200, VersionInfo());
  });
  http.Get("/openapi/v2", [](const httplib::Request& req, httplib::Response& res) {
    std::string accept = req.get_header_value("Accept");
    if (!accept.empty() && !absl::StrContains(accept, "json") &&
        !absl::StrContains(accept, "*/*")) {
      res.status = 406;
      res.set_content("only application/json is served", "text/plain");
      return;
    }
    Reply(res, 200, OpenApiV2());
  });
  http.Get("/openapi/v3", [](const httplib::Request&, httplib::Response& res) {
    Reply(res, 200, OpenApiV3Index());
  });
  http.Get(R"(/openapi/v3/(api/v1|apis/[^/]+/[^/]+))",
           [](const httplib::Request& req, httplib::Response& res) {
             auto doc = OpenApiV3(req.matches[1].str());
             if (!doc) return ReplyError(res, NotFoundPath());
             Reply(res, 200, *doc);
           });
  for (const char* probe : {"/healthz", "/livez", "/readyz"}) {
    http.Get(probe, [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
  }
  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("{} {} ({}) -> {}", req.method, req.path, req.get_header_value("Content-Type"),
                  res.status);
  });
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      res.set_content(StatusObject(NotFoundPath()).dump(), kJson);
    }
  });
}

bool KubeShim::ParseTarget(const std::string& path, Target* t) {
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  size_t at;
  std::string group;
  if (parts.size() >= 2 && parts[0] == "api") {
    t->version = parts[1];
    at = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    group = parts[1];
    t->version = parts[2];
    at = 3;
  } else {
    return false;
  }
  if (parts.size() >= at + 3 && parts[at] == "namespaces") {
    t->namespace_ = parts[at + 1];
    at += 2;
  } else if (parts.size() != at + 1) {
    return false;  // Our kinds are namespaced: only their collections are cluster-wide.
  }
  const std::string& plural = parts[at];
  const auto& served = ServedResources();
  for (size_t i = 0; i < served.size(); ++i) {
    if (served[i].group == group && served[i].plural == plural &&
        served[i].Serves(t->version)) {
      t->resource = &served[i];
      t->backend = backends_[i].get();
    }
  }
  if (t->resource == nullptr) return false;
  if (parts.size() > at + 1) t->name = parts[at + 1];
  if (parts.size() > at + 2) t->subresource = parts[at + 2];
  if (parts.size() > at + 3) return false;
  return t->subresource.empty() || (t->subresource == "status" && t->resource->has_status);
}

CallOptions KubeShim::Call(const httplib::Request& req) const {
  CallOptions call;
  if (options_.forward_authorization) call.authorization = req.get_header_value("Authorization");
  call.deadline = absl::Now() + options_.request_timeout;
  return call;
}

void KubeShim::ServeResource(const httplib::Request& req, httplib::Response& res) {
  std::vector<std::string> parts = absl::StrSplit(req.path, '/', absl::SkipEmpty());
  // Discovery of one group or version: /api/v1, /apis/kaito.sh, /apis/kaito.sh/v1beta1.
  if (req.method == "GET" && ((parts.size() == 2 && parts[0] == "api") ||
                              (parts.size() <= 3 && parts[0] == "apis"))) {
    std::optional<json> doc = parts[0] == "api"     ? ResourceList("", parts[1])
                              : parts.size() == 2 ? ApiGroup(parts[1])
                                                  : ResourceList(parts[1], parts[2]);
    if (!doc) return ReplyError(res, NotFoundPath());
    return Reply(res, 200, *doc);
  }
  Target t;
  if (!ParseTarget(req.path, &t)) {
    Count(req.method, t, 404);
    return ReplyError(res, NotFoundPath());
  }
  const bool collection = t.name.empty();
  if (req.method == "GET") {
    if (!collection) return Get(t, req, res);
    if (QueryBool(req, "watch")) {
      return Watch(t, req, res);
    }
    return List(t, req, res);
  }
  if (!t.subresource.empty()) {
    return ReplyError(res, MethodNotAllowed("the status of " + t.resource->plural +
                                            " is written only by kaito-server's controller"));
  }
  if (req.method == "POST" && collection) return Create(t, req, res);
  if (req.method == "PUT" && !collection) return Update(t, req, res);
  if (req.method == "PATCH" && !collection) return Patch(t, req, res);
  if (req.method == "DELETE") {
    return collection ? DeleteCollection(t, req, res) : Delete(t, req, res);
  }
  ReplyError(res, MethodNotAllowed(req.method + " is not allowed on this path"));
}

void KubeShim::Get(const Target& t, const httplib::Request& req, httplib::Response& res) {
  const CallOptions call = Call(req);
  const bool cached_kind = read_cache_ != nullptr && t.backend == workspace_backend_;
  if (cached_kind) {
    std::shared_ptr<const CachedWorkspace> cached;
    switch (read_cache_->Get(call.authorization, t.namespace_, t.name, call.deadline, &cached)) {
      case WorkspaceReadCache::Answer::kFound:
        cache_hits_->Increment();
        return ServeObject(t, req, res, cached->object(), cached.get());
      case WorkspaceReadCache::Answer::kNotFound:
        cache_hits_->Increment();
        ReplyIfFailed("get", t, t.name, grpc::Status(grpc::StatusCode::NOT_FOUND, "not found"),
                      res);
        return;
      case WorkspaceReadCache::Answer::kAskServer:
        cache_misses_->Increment();
        break;
    }
  }
  std::unique_ptr<Message> object;
  grpc::Status s = t.backend->Get(call, t.namespace_, t.name, &object);
  if (cached_kind) read_cache_->Learn(call.authorization, t.namespace_, s);
  if (ReplyIfFailed("get", t, t.name, s, res)) return;
  ServeObject(t, req, res, *object, nullptr);
}

void KubeShim::ServeObject(const Target& t, const httplib::Request& req, httplib::Response& res,
                           const Message& object, const CachedWorkspace* cached) {
  Count("get", t, 200);
  const Shape shape = WantedShape(req);
  if (shape == Shape::kObject && cached != nullptr) {
    // Encoded once per resourceVersion and API version.
    auto encoded =
        cached->Json(t.version, [&] { return ObjectJsonText(*t.resource, t.version, object); });
    return ReplyText(res, 200, *encoded);
  }
  if (shape == Shape::kObject) {
    return ReplyText(res, 200, ObjectJsonText(*t.resource, t.version, object));
  }
  json body = ObjectJson(*t.resource, t.version, object);
  switch (shape) {
    case Shape::kTable: {
      json table = {{"kind", "Table"},
                    {"apiVersion", "meta.k8s.io/v1"},
                    {"metadata", {{"resourceVersion", MetadataField(body, "resourceVersion")}}},
                    {"columnDefinitions", TableColumns(*t.resource)},
                    {"rows", json::array({TableRow(object, body, IncludeObject(req),
                                                   absl::Now())})}};
      return Reply(res, 200, table);
    }
    case Shape::kMetadata:
      return Reply(res, 200, PartialMetadata(body));
    case Shape::kObject:
      return Reply(res, 200, body);
  }
}

void KubeShim::List(const Target& t, const httplib::Request& req, httplib::Response& res) {
  auto fields = ParseFieldSelector(req.get_param_value("fieldSelector"));
  if (!fields.ok()) return ReplyError(res, BadRequest(std::string(fields.status().message())));
  ListQuery query;
  query.namespace_ = t.namespace_;
  query.label_selector = req.get_param_value("labelSelector");
  query.page_token = req.get_param_value("continue");
  int limit = 0;
  if (!QueryCount(req, "limit", &limit)) {
    return ReplyError(res, BadRequest("limit must be a non-negative integer"));
  }
  query.page_size = std::min(limit, kMaxPage);
  ListResult result;
  grpc::Status s = t.backend->List(Call(req), query, &result);
  if (ReplyIfFailed("list", t, "", s, res)) return;
  Count("list", t, 200);

  const Shape shape = WantedShape(req);
  const RowObject include = IncludeObject(req);
  const absl::Time now = absl::Now();
  json items = json::array();
  for (const auto& item : result.items) {
    json body = ObjectJson(*t.resource, t.version, *item);
    if (!fields->Matches(body)) continue;
    if (shape == Shape::kTable) {
      items.push_back(TableRow(*item, body, include, now));
    } else if (shape == Shape::kMetadata) {
      items.push_back(PartialMetadata(body));
    } else {
      items.push_back(std::move(body));
    }
  }
  json meta = ListMetadata(result.resource_version, result.next_page_token);
  if (shape == Shape::kTable) {
    return Reply(res, 200,
                 {{"kind", "Table"},
                  {"apiVersion", "meta.k8s.io/v1"},
                  {"metadata", std::move(meta)},
                  {"columnDefinitions", TableColumns(*t.resource)},
                  {"rows", std::move(items)}});
  }
  if (shape == Shape::kMetadata) {
    return Reply(res, 200,
                 {{"kind", "PartialObjectMetadataList"},
                  {"apiVersion", "meta.k8s.io/v1"},
                  {"metadata", std::move(meta)},
                  {"items", std::move(items)}});
  }
  Reply(res, 200,
        {{"apiVersion", t.resource->ApiVersion(t.version)},
         {"kind", t.resource->kind + "List"},
         {"metadata", std::move(meta)},
         {"items", std::move(items)}});
}

void KubeShim::Watch(const Target& t, const httplib::Request& req, httplib::Response& res) {
  auto fields = ParseFieldSelector(req.get_param_value("fieldSelector"));
  if (!fields.ok()) return ReplyError(res, BadRequest(std::string(fields.status().message())));
  WatchQuery query;
  query.namespace_ = t.namespace_;
  query.label_selector = req.get_param_value("labelSelector");
  query.resource_version = req.get_param_value("resourceVersion");
  if (query.resource_version == "0") query.resource_version.clear();
  query.name = fields->Name();

  CallOptions call = Call(req);
  int timeout_s = 0;
  if (!QueryCount(req, "timeoutSeconds", &timeout_s)) {
    return ReplyError(res, BadRequest("timeoutSeconds must be a non-negative integer"));
  }
  if (timeout_s > 0) {
    call.deadline = absl::Now() + absl::Seconds(timeout_s);
  } else {
    thread_local std::mt19937 random(std::random_device{}());
    double spread = std::uniform_real_distribution<double>(1.0, 2.0)(random);
    call.deadline = absl::Now() + options_.min_watch_timeout * spread;
  }
  std::shared_ptr<WatchStream> stream = t.backend->Watch(call, query);
  if (!stream) {
    Count("watch", t, 405);
    return ReplyError(res, MethodNotAllowed("watch is not served for " + t.resource->plural));
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return ReplyError(res, FromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                                                "shutting down"),
                                                   *t.resource, ""));
    watches_.insert(stream.get());
  }
  Count("watch", t, 200);
  const bool bookmarks = QueryBool(req, "allowWatchBookmarks");
  const Shape shape = WantedShape(req);
  const RowObject include = IncludeObject(req);
  const ResourceType* resource = t.resource;
  const std::string version = t.version;
  const FieldSelector selector = *fields;
  const absl::Duration heartbeat = options_.watch_heartbeat;

  auto event_line = [=](const WatchEvent& event) -> std::string {
    json object;
    if (event.type == "BOOKMARK") {
      object = {{"kind", resource->kind},
                {"apiVersion", resource->ApiVersion(version)},
                {"metadata", {{"resourceVersion", event.resource_version}}}};
    } else {
      object = ObjectJson(*resource, version, *event.object);
      if (!selector.Matches(object)) return "";
      if (shape == Shape::kTable) {
        object = {{"kind", "Table"},
                  {"apiVersion", "meta.k8s.io/v1"},
                  {"metadata", {{"resourceVersion", event.resource_version}}},
                  {"columnDefinitions", TableColumns(*resource)},
                  {"rows", json::array({TableRow(*event.object, object, include, absl::Now())})}};
      } else if (shape == Shape::kMetadata) {
        object = PartialMetadata(object);
      }
    }
    return json{{"type", event.type}, {"object", std::move(object)}}.dump() + "\n";
  };

  res.status = 200;
  res.set_header("Cache-Control", "no-cache, private");
  // The watch media type, not plain JSON: it keeps cpp-httplib from gzipping the stream
  // (its compressor would hold small events back until a block fills).
  res.set_chunked_content_provider(
      kWatchJson,
      [=](size_t, httplib::DataSink& sink) {
        WatchEvent event;
        switch (stream->Wait(heartbeat, &event)) {
          case WatchStream::Next::kIdle:
            // A blank line between events is ignored by every client; writing it is how a
            // client that went away is noticed.
            return sink.write("\n", 1);
          case WatchStream::Next::kEvent: {
            if (event.type == "BOOKMARK" && !bookmarks) return true;
            std::string line = event_line(event);
            return line.empty() || sink.write(line.data(), line.size());
          }
          case WatchStream::Next::kEnd: {
            grpc::Status s = stream->status();
            // A deadline (timeoutSeconds) ends the watch cleanly, as does a stream the
            // server closed because the client fell behind: the client resumes from the
            // last resourceVersion it saw.
            const auto code = s.error_code();
            if (!s.ok() && code != grpc::StatusCode::DEADLINE_EXCEEDED &&
                code != grpc::StatusCode::CANCELLED && code != grpc::StatusCode::ABORTED) {
              ApiError error = FromGrpc(s, *resource, "");
              if (code == grpc::StatusCode::OUT_OF_RANGE) error.message = "too old resource version: " + s.error_message();
              std::string line =
                  json{{"type", "ERROR"}, {"object", StatusObject(error)}}.dump() + "\n";
              sink.write(line.data(), line.size());
            }
            sink.done();
            return true;
          }
        }
        return false;
      },
      [this, stream](bool) {
        stream->Cancel();
        absl::MutexLock lock(&mu_);
        watches_.erase(stream.get());
      });
}

void KubeShim::Create(const Target& t, const httplib::Request& req, httplib::Response& res) {
  auto body = ParseBody(t, req, res);
  if (!body) return;
  if (t.namespace_.empty()) {
    return ReplyError(res, BadRequest("create needs a namespace in the path"));
  }
  std::unique_ptr<Message> object;
  if (auto error = Decode(t, std::move(*body), "", &object)) {
    Count("create", t, error->http_code);
    return ReplyError(res, *error);
  }
  WriteResult result;
  const std::string name = ObjectName(*object);
  grpc::Status s = t.backend->Create(Call(req), *object, DryRun(req), &result);
  if (ReplyIfFailed("create", t, name, s, res)) return;
  Count("create", t, 201);
  AddWarnings(res, result.warnings);
  ReplyText(res, 201, ObjectJsonText(*t.resource, t.version, *result.object));
}

void KubeShim::Update(const Target& t, const httplib::Request& req, httplib::Response& res) {
  auto body = ParseBody(t, req, res);
  if (!body) return;
  std::unique_ptr<Message> object;
  if (auto error = Decode(t, std::move(*body), t.name, &object)) {
    Count("update", t, error->http_code);
    return ReplyError(res, *error);
  }
  WriteResult result;
  grpc::Status s = t.backend->Update(Call(req), *object, DryRun(req), &result);
  if (ReplyIfFailed("update", t, t.name, s, res)) return;
  Count("update", t, 200);
  AddWarnings(res, result.warnings);
  ReplyText(res, 200, ObjectJsonText(*t.resource, t.version, *result.object));
}

void KubeShim::Patch(const Target& t, const httplib::Request& req, httplib::Response& res) {
  const PatchType type = PatchTypeOf(req.get_header_value("Content-Type"));
  if (type == PatchType::kUnsupported) {
    return ReplyError(res, UnsupportedMediaType("the body of the request was in an unknown "
                                                "format - accepted media types include: "
                                                "application/json-patch+json, "
                                                "application/merge-patch+json, "
                                                "application/apply-patch+yaml"));
  }
  if (type == PatchType::kStrategic && !t.resource->group.empty()) {
    return ReplyError(res, UnsupportedMediaType(
                               "strategic merge patch is not supported for " +
                               t.resource->QualifiedName() + "; use a JSON merge patch"));
  }
  if (type == PatchType::kApply && req.get_param_value("fieldManager").empty()) {
    return ReplyError(res, Invalid(*t.resource, t.name, "fieldManager",
                                   "Required value: is required for apply patch"));
  }
  const CallOptions call = Call(req);
  // Server-side apply: the applied configuration, decoded and checked like a create.
  json applied;
  if (type == PatchType::kApply) {
    auto docs = ParseManifests(req.body);
    if (!docs.ok()) return ReplyError(res, BadRequest(std::string(docs.status().message())));
    if (docs->size() != 1) return ReplyError(res, BadRequest("an apply patch holds one object"));
    if (!(*docs)[0].status.ok()) {
      return ReplyError(res, DecodeError((*docs)[0].status, *t.resource, t.name));
    }
    applied = MessageToJsonValue(*(*docs)[0].object);
  }

  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<Message> current;
    grpc::Status s = t.backend->Get(call, t.namespace_, t.name, &current);
    if (!s.ok() && !(type == PatchType::kApply && s.error_code() == grpc::StatusCode::NOT_FOUND)) {
      ReplyIfFailed("patch", t, t.name, s, res);
      return;
    }
    if (!s.ok()) {  // Server-side apply of an object that does not exist: a create.
      std::unique_ptr<Message> object;
      if (auto error = Decode(t, applied, t.name, &object)) return ReplyError(res, *error);
      WriteResult result;
      s = t.backend->Create(call, *object, DryRun(req), &result);
      if (ReplyIfFailed("patch", t, t.name, s, res)) return;
      Count("patch", t, 201);
      AddWarnings(res, result.warnings);
      return ReplyText(res, 201, ObjectJsonText(*t.resource, t.version, *result.object));
    }
    json before = ObjectJson(*t.resource, t.version, *current);
    json after;
    if (type == PatchType::kApply) {
      after = before;
      after.merge_patch(applied);
    } else {
      auto patched = ApplyPatch(type, before, req.body);
      if (!patched.ok()) {
        Count("patch", t, 422);
        return ReplyError(res, Invalid(*t.resource, t.name, "", std::string(patched.status().message())));
      }
      after = std::move(*patched);
    }
    // A patch that names a resourceVersion makes it a precondition; else the write is
    // conditional on the version read, and retried when another write came between.
    const bool pinned = MetadataField(after, "resourceVersion") != MetadataField(before, "resourceVersion");
    std::unique_ptr<Message> object;
    if (auto error = Decode(t, std::move(after), t.name, &object)) {
      Count("patch", t, error->http_code);
      return ReplyError(res, *error);
    }
    WriteResult result;
    s = t.backend->Update(call, *object, DryRun(req), &result);
    if (s.error_code() == grpc::StatusCode::ABORTED && !pinned && attempt < kPatchAttempts) {
      continue;
    }
    if (ReplyIfFailed("patch", t, t.name, s, res)) return;
    Count("patch", t, 200);
    AddWarnings(res, result.warnings);
    return ReplyText(res, 200, ObjectJsonText(*t.resource, t.version, *result.object));
  }
}

void KubeShim::Delete(const Target& t, const httplib::Request& req, httplib::Response& res) {
  const CallOptions call = Call(req);
  std::string resource_version, uid;
  bool dry_run = DryRun(req);
  if (!req.body.empty()) {
    json options = json::parse(req.body, nullptr, false);
    if (!options.is_object()) return ReplyError(res, BadRequest("DeleteOptions must be a JSON object"));
    if (options.contains("preconditions") && options["preconditions"].is_object()) {
      const json& pre = options["preconditions"];
      if (pre.contains("resourceVersion") && pre["resourceVersion"].is_string()) {
        resource_version = pre["resourceVersion"].get<std::string>();
      }
      if (pre.contains("uid") && pre["uid"].is_string()) uid = pre["uid"].get<std::string>();
    }
    if (options.contains("dryRun") && options["dryRun"].is_array()) {
      for (const auto& v : options["dryRun"]) dry_run = dry_run || v == "All";
    }
    if (options.contains("propagationPolicy") && options["propagationPolicy"].is_string()) {
      const std::string policy = options["propagationPolicy"].get<std::string>();
      if (policy != "Orphan" && policy != "Background" && policy != "Foreground") {
        return ReplyError(res, Invalid(*t.resource, t.name, "propagationPolicy",
                                       "Unsupported value: \"" + policy +
                                           "\": supported values: \"Orphan\", \"Background\", "
                                           "\"Foreground\""));
      }
    }
  }
  // A uid precondition, or a dry run, reads the object first.
  if (!uid.empty() || dry_run) {
    std::unique_ptr<Message> current;
    grpc::Status s = t.backend->Get(call, t.namespace_, t.name, &current);
    if (!s.ok()) return ReplyError(res, FromGrpc(s, *t.resource, t.name));
    json body = ObjectJson(*t.resource, t.version, *current);
    if (!uid.empty() && MetadataField(body, "uid") != uid) {
      return ReplyError(res, FromGrpc(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                                   "Precondition failed: UID in precondition: " +
                                                       uid + ", UID in object meta: " +
                                                       MetadataField(body, "uid")),
                                      *t.resource, t.name));
    }
    if (dry_run) return Reply(res, 200, body);
  }
  DeleteResult result;
  grpc::Status s = t.backend->Delete(call, t.namespace_, t.name, resource_version, &result);
  if (ReplyIfFailed("delete", t, t.name, s, res)) return;
  Count("delete", t, 200);
  if (result.object) return ReplyText(res, 200, ObjectJsonText(*t.resource, t.version, *result.object));
  Reply(res, 200, SuccessStatus(*t.resource, t.name));
}

void KubeShim::DeleteCollection(const Target& t, const httplib::Request& req,
                                httplib::Response& res) {
  auto fields = ParseFieldSelector(req.get_param_value("fieldSelector"));
  if (!fields.ok()) return ReplyError(res, BadRequest(std::string(fields.status().message())));
  const CallOptions call = Call(req);
  ListQuery query;
  query.namespace_ = t.namespace_;
  query.label_selector = req.get_param_value("labelSelector");
  ListResult listed;
  grpc::Status s = t.backend->List(call, query, &listed);
  if (!s.ok()) return ReplyError(res, FromGrpc(s, *t.resource, ""));
  json items = json::array();
  for (const auto& item : listed.items) {
    json body = ObjectJson(*t.resource, t.version, *item);
    if (!fields->Matches(body)) continue;
    const std::string ns = MetadataField(body, "namespace"), name = MetadataField(body, "name");
    DeleteResult result;
    if (!DryRun(req)) {
      s = t.backend->Delete(call, ns, name, "", &result);
      if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND) {
        return ReplyError(res, FromGrpc(s, *t.resource, name));
      }
    }
    items.push_back(std::move(body));
  }
  Count("deletecollection", t, 200);
  Reply(res, 200,
        {{"apiVersion", t.resource->ApiVersion(t.version)},
         {"kind", t.resource->kind + "List"},
         {"metadata", ListMetadata(listed.resource_version, "")},
         {"items", std::move(items)}});
}

}  // namespace kaito::shim
