// kaito-kube-shim's HTTP side: the Kubernetes REST API for Kaito's Workspaces (kaito.sh
// v1beta1 and v1alpha1) and core v1 ConfigMaps and Secrets, each call mapped onto
// kaito-server's gRPC API. Served: discovery (/api, /apis, group and version documents),
// OpenAPI v2 and v3, /version, get, list (label and field selectors, limit/continue), watch
// (chunked JSON events, bookmarks, resourceVersion, ERROR 410 when too old), create, update,
// patch (JSON merge patch, JSON patch, strategic merge patch for the core kinds, server-side
// apply), delete (preconditions, dryRun), deletecollection, the read-only status
// subresource, and Table output for `kubectl get`. Secrets stay write-only.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/http_listener.h"
#include "common/tls.h"
#include "tools/kube-shim/backend.h"
#include "tools/kube-shim/read_cache.h"
#include "tools/kube-shim/resources.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace kaito::shim {

struct ShimOptions {
  std::string listen = "127.0.0.1:6443";
  // HTTPS with tls.cert_file; with tls.client_ca_file every client must present a
  // certificate that CA signed (as an aggregated API, kube-apiserver's front-proxy one).
  TlsServerFiles tls;
  // Each request's Authorization header goes on to kaito-server, so that its roles apply
  // to the caller (standalone). Off behind kube-apiserver, which authorizes the caller
  // itself and sends no credentials of theirs: the shim's own identity is used.
  bool forward_authorization = true;
  // Connections served at once; each open watch holds one.
  int max_connections = 1200;
  // The deadline of every call to kaito-server but watches.
  absl::Duration request_timeout = absl::Seconds(60);
  // A watch without timeoutSeconds ends after a random time in [min, 2*min), as
  // kube-apiserver's do, so that clients spread their re-lists.
  absl::Duration min_watch_timeout = absl::Minutes(30);
  // How often an idle watch writes a blank line, to find clients that went away.
  absl::Duration watch_heartbeat = absl::Seconds(5);
  // GETs of workspaces answered from a watch-fed copy (read_cache.h); a zero
  // authorization_ttl turns it off.
  ReadCacheOptions read_cache;
};

class KubeShim {
 public:
  // `read_cache_channel` carries the read cache's watch and revision reads: a connection of
  // its own, so that its watch does not take one of the watches kaito-server admits per
  // connection from the clients' (null: `channel`).
  static absl::StatusOr<std::unique_ptr<KubeShim>> Start(
      const ShimOptions& options, std::shared_ptr<grpc::Channel> channel,
      std::shared_ptr<prometheus::Registry> registry,
      std::shared_ptr<grpc::Channel> read_cache_channel = nullptr);
  ~KubeShim();

  int port() const { return listener_->port(); }
  // Ends every open watch and stops serving.
  void Shutdown();

  // The parsed request path of a resource call; public for the handlers' helpers.
  struct Target {
    const ResourceType* resource = nullptr;
    KindBackend* backend = nullptr;
    std::string version;
    std::string namespace_;  // Empty: every namespace.
    std::string name;
    std::string subresource;  // "" or "status".
  };

 private:
  KubeShim(const ShimOptions& options, std::shared_ptr<grpc::Channel> channel,
           std::shared_ptr<prometheus::Registry> registry,
           std::shared_ptr<grpc::Channel> read_cache_channel);
  void Routes();
  void ServeResource(const httplib::Request& req, httplib::Response& res);
  bool ParseTarget(const std::string& path, Target* target);
  CallOptions Call(const httplib::Request& req) const;

  void Get(const Target& t, const httplib::Request& req, httplib::Response& res);
  // The 200 reply of a GET in the shape asked for; `cached` (may be null) keeps its JSON.
  void ServeObject(const Target& t, const httplib::Request& req, httplib::Response& res,
                   const google::protobuf::Message& object, const CachedWorkspace* cached);
  void List(const Target& t, const httplib::Request& req, httplib::Response& res);
  void Watch(const Target& t, const httplib::Request& req, httplib::Response& res);
  void Create(const Target& t, const httplib::Request& req, httplib::Response& res);
  void Update(const Target& t, const httplib::Request& req, httplib::Response& res);
  void Patch(const Target& t, const httplib::Request& req, httplib::Response& res);
  void Delete(const Target& t, const httplib::Request& req, httplib::Response& res);
  void DeleteCollection(const Target& t, const httplib::Request& req, httplib::Response& res);

  void Count(const std::string& verb, const Target& t, int code);
  // When `status` failed: counts the request under `verb` with the HTTP code its Status
  // maps to, answers with that Status, and returns true.
  bool ReplyIfFailed(const std::string& verb, const Target& t, const std::string& name,
                     const grpc::Status& status, httplib::Response& res);

  ShimOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  std::vector<std::unique_ptr<KindBackend>> backends_;  // By ServedResources() index.
  KindBackend* workspace_backend_ = nullptr;
  std::unique_ptr<KindBackend> read_cache_backend_;  // Over the read cache's channel.
  std::unique_ptr<WorkspaceReadCache> read_cache_;   // Null when off.
  prometheus::Counter* cache_hits_ = nullptr;
  prometheus::Counter* cache_misses_ = nullptr;
  std::unique_ptr<HttpListener> listener_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::set<WatchStream*> watches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::shim
