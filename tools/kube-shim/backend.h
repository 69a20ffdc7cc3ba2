// The shim's view of kaito-server: the same six calls for every kind it serves (get, list,
// create, update, delete, watch), over the kind's own gRPC service, so that the HTTP side
// is written once. Objects travel as protobuf messages; errors are the server's
// grpc::Status, details included, for the HTTP side to turn into a Kubernetes Status.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kaito/v1/config.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"

namespace kaito::shim {

// What every call carries from the HTTP request: the caller's credentials, forwarded as
// they came, and a deadline.
struct CallOptions {
  std::string authorization;  // The request's Authorization header, if any.
  absl::Time deadline = absl::InfiniteFuture();
};

struct ListQuery {
  std::string namespace_;  // Empty: every namespace.
  std::string label_selector;
  int page_size = 0;  // 0: all.
  std::string page_token;
};

struct ListResult {
  std::vector<std::unique_ptr<google::protobuf::Message>> items;
  std::string next_page_token;
  std::string resource_version;
};

struct WriteResult {
  std::unique_ptr<google::protobuf::Message> object;
  std::vector<std::string> warnings;
};

struct DeleteResult {
  // The object as of the delete, when the server returned it.
  std::unique_ptr<google::protobuf::Message> object;
  bool deleted = false;  // Gone now; false while finalizers hold it.
};

struct WatchQuery {
  std::string namespace_;
  std::string label_selector;
  std::string resource_version;  // Empty: the current state first, then changes.
  std::string name;              // Empty: every object.
};

// One event of a watch, in the server's terms.
struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK.
  std::unique_ptr<google::protobuf::Message> object;
  std::string resource_version;
};

// A watch in progress: a gRPC client stream read ahead into a short queue (the server
// keeps flow control: no more than `kReadAhead` events wait here). `Next` waits up to a
// time for an event, so that the HTTP side can write heartbeats and notice a client that
// went away.
class WatchStream {
 public:
  enum class Next { kEvent, kIdle, kEnd };
  virtual ~WatchStream() = default;
  // kEvent: `*event` is set. kIdle: nothing within `wait`. kEnd: the stream is over,
  // `status()` says why.
  virtual Next Wait(absl::Duration wait, WatchEvent* event) = 0;
  virtual grpc::Status status() = 0;
  virtual void Cancel() = 0;
};

class KindBackend {
 public:
  virtual ~KindBackend() = default;
  // An empty message of the kind, to decode into.
  virtual std::unique_ptr<google::protobuf::Message> New() const = 0;
  virtual grpc::Status Get(const CallOptions& call, const std::string& ns,
                           const std::string& name,
                           std::unique_ptr<google::protobuf::Message>* out) = 0;
  virtual grpc::Status List(const CallOptions& call, const ListQuery& query, ListResult* out) = 0;
  virtual grpc::Status Create(const CallOptions& call, const google::protobuf::Message& object,
                              bool dry_run, WriteResult* out) = 0;
  virtual grpc::Status Update(const CallOptions& call, const google::protobuf::Message& object,
                              bool dry_run, WriteResult* out) = 0;
  virtual grpc::Status Delete(const CallOptions& call, const std::string& ns,
                              const std::string& name, const std::string& resource_version,
                              DeleteResult* out) = 0;
  // Null when the kind has no watch on the gRPC API (ConfigMaps and Secrets).
  virtual std::unique_ptr<WatchStream> Watch(const CallOptions& call, const WatchQuery& query) {
    (void)call;
    (void)query;
    return nullptr;
  }
};

std::unique_ptr<KindBackend> NewWorkspaceBackend(std::shared_ptr<grpc::Channel> channel);
std::unique_ptr<KindBackend> NewConfigMapBackend(std::shared_ptr<grpc::Channel> channel);
std::unique_ptr<KindBackend> NewSecretBackend(std::shared_ptr<grpc::Channel> channel);

}  // namespace kaito::shim
