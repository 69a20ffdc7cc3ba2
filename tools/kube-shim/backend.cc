#include "tools/kube-shim/backend.h"

#include <utility>

#include "absl/synchronization/notification.h"

namespace kaito::shim {
namespace {

std::unique_ptr<grpc::ClientContext> Context(const CallOptions& call) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (call.deadline != absl::InfiniteFuture()) ctx->set_deadline(absl::ToChronoTime(call.deadline));
  if (!call.authorization.empty()) ctx->AddMetadata("authorization", call.authorization);
  return ctx;
}

// Makes a unary call on gRPC's callback API and waits for its end. The HTTP worker sleeps
// on one futex while gRPC's own threads carry the call, instead of becoming a poller of a
// completion queue created for the call (the blocking API's way), which costs more hand-offs
// between threads per call.
template <typename Start>
grpc::Status CallAndWait(Start start) {
  absl::Notification done;
  grpc::Status status;
  start([&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

template <typename T>
std::unique_ptr<google::protobuf::Message> Copy(T&& message) {
  return std::make_unique<std::decay_t<T>>(std::forward<T>(message));
}

const char* EventTypeName(v1::EventType type) {
  switch (type) {
    case v1::ADDED:
      return "ADDED";
    case v1::MODIFIED:
      return "MODIFIED";
    case v1::DELETED:
      return "DELETED";
    case v1::BOOKMARK:
      return "BOOKMARK";
    default:
      return "";
  }
}

// The gRPC side of a workspace watch, on the callback API so that a thousand watches do
// not need a thousand more threads. Reads run ahead of the consumer by at most
// `kReadAhead` events; past that the next read starts when the consumer takes one.
class WorkspaceWatchStream : public WatchStream,
                             public grpc::ClientReadReactor<v1::WorkspaceEvent> {
 public:
  static constexpr size_t kReadAhead = 64;

  static std::unique_ptr<WatchStream> Start(v1::WorkspaceService::Stub* stub,
                                            const CallOptions& call, const WatchQuery& query) {
    auto state = std::shared_ptr<WorkspaceWatchStream>(new WorkspaceWatchStream(call, query));
    state->self_ = state;
    stub->async()->WatchWorkspaces(state->ctx_.get(), &state->request_, state.get());
    state->StartRead(&state->incoming_);
    state->StartCall();
    return std::make_unique<Handle>(std::move(state));
  }

  Next Wait(absl::Duration wait, WatchEvent* event) override {
    v1::WorkspaceEvent next;
    bool resume = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || done_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
      if (queue_.empty()) return done_ ? Next::kEnd : Next::kIdle;
      next = std::move(queue_.front());
      queue_.pop_front();
      resume = std::exchange(paused_, false);
    }
    // Outside mu_: gRPC may run the reaction on this thread.
    if (resume) StartRead(&incoming_);
    event->type = EventTypeName(next.type());
    event->resource_version = next.resource_version();
    event->object = Copy(std::move(*next.mutable_object()));
    return Next::kEvent;
  }

  grpc::Status status() override {
    absl::MutexLock lock(&mu_);
    return status_;
  }

  void Cancel() override { ctx_->TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // The stream is over; OnDone follows.
    bool more;
    {
      absl::MutexLock lock(&mu_);
      queue_.push_back(std::move(incoming_));
      incoming_.Clear();
      more = queue_.size() < kReadAhead;
      paused_ = !more;
    }
    if (more) StartRead(&incoming_);
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<WorkspaceWatchStream> keep;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      status_ = status;
      keep = std::move(self_);
    }
    // `keep` may hold the last reference: this object dies when it goes out of scope,
    // after the lock is released.
  }

 private:
  // What the HTTP side holds: cancels the call when dropped, and keeps the state alive
  // until gRPC's last callback.
  class Handle : public WatchStream {
   public:
    explicit Handle(std::shared_ptr<WorkspaceWatchStream> state) : state_(std::move(state)) {}
    ~Handle() override { state_->Cancel(); }
    Next Wait(absl::Duration wait, WatchEvent* event) override {
      return state_->Wait(wait, event);
    }
    grpc::Status status() override { return state_->status(); }
    void Cancel() override { state_->Cancel(); }

   private:
    std::shared_ptr<WorkspaceWatchStream> state_;
  };

  WorkspaceWatchStream(const CallOptions& call, const WatchQuery& query) : ctx_(Context(call)) {
    request_.set_namespace_(query.namespace_);
    request_.set_label_selector(query.label_selector);
    request_.set_resource_version(query.resource_version);
    request_.set_name(query.name);
  }

  std::unique_ptr<grpc::ClientContext> ctx_;
  v1::WatchWorkspacesRequest request_;
  v1::WorkspaceEvent incoming_;  // Written by gRPC between StartRead and OnReadDone.
  absl::Mutex mu_;
  std::deque<v1::WorkspaceEvent> queue_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<WorkspaceWatchStream> self_ ABSL_GUARDED_BY(mu_);
};

class WorkspaceBackend : public KindBackend {
 public:
  explicit WorkspaceBackend(std::shared_ptr<grpc::Channel> channel)
      : stub_(v1::WorkspaceService::NewStub(channel)) {}

  std::unique_ptr<google::protobuf::Message> New() const override {
    return std::make_unique<v1::Workspace>();
  }

  grpc::Status Get(const CallOptions& call, const std::string& ns, const std::string& name,
                   std::unique_ptr<google::protobuf::Message>* out) override {
    v1::GetWorkspaceRequest req;
    req.set_namespace_(ns);
    req.set_name(name);
    v1::Workspace reply;
    auto ctx = Context(call);
    grpc::Status s = CallAndWait([&](auto done) {
      stub_->async()->GetWorkspace(ctx.get(), &req, &reply, std::move(done));
    });
    if (s.ok()) *out = Copy(std::move(reply));
    return s;
  }

  grpc::Status List(const CallOptions& call, const ListQuery& query, ListResult* out) override {
    v1::ListWorkspacesRequest req;
    req.set_namespace_(query.namespace_);
    req.set_label_selector(query.label_selector);
    req.set_page_size(query.page_size);
    req.set_page_token(query.page_token);
    v1::ListWorkspacesResponse reply;
    auto ctx = Context(call);
    grpc::Status s = CallAndWait([&](auto done) {
      stub_->async()->ListWorkspaces(ctx.get(), &req, &reply, std::move(done));
    });
    if (!s.ok()) return s;
    for (auto& item : *reply.mutable_items()) out->items.push_back(Copy(std::move(item)));
    out->next_page_token = reply.next_page_token();
    out->resource_version = reply.resource_version();
    return s;
  }

  grpc::Status Create(const CallOptions& call, const google::protobuf::Message& object,
                      bool dry_run, WriteResult* out) override {
    v1::CreateWorkspaceRequest req;
    req.mutable_workspace()->CopyFrom(object);
    req.set_dry_run(dry_run);
    v1::CreateWorkspaceResponse reply;
    auto ctx = Context(call);
    grpc::Status s = CallAndWait([&](auto done) {
      stub_->async()->CreateWorkspace(ctx.get(), &req, &reply, std::move(done));
    });
    if (s.ok()) Fill(std::move(*reply.mutable_workspace()), reply.warnings(), out);
    return s;
  }

  grpc::Status Update(const CallOptions& call, const google::protobuf::Message& object,
                      bool dry_run, WriteResult* out) override {
    v1::UpdateWorkspaceRequest req;
    req.mutable_workspace()->CopyFrom(object);
    req.set_dry_run(dry_run);
    v1::UpdateWorkspaceResponse reply;
    auto ctx = Context(call);
    grpc::Status s = CallAndWait([&](auto done) {
      stub_->async()->UpdateWorkspace(ctx.get(), &req, &reply, std::move(done));
    });
    if (s.ok()) Fill(std::move(*reply.mutable_workspace()), reply.warnings(), out);
    return s;
  }

  grpc::Status Delete(const CallOptions& call, const std::string& ns, const std::string& name,
                      const std::string& resource_version, DeleteResult* out) override {
    v1::DeleteWorkspaceRequest req;
    req.set_namespace_(ns);
    req.set_name(name);
    req.set_resource_version(resource_version);
    v1::DeleteWorkspaceResponse reply;
    auto ctx = Context(call);
    grpc::Status s = CallAndWait([&](auto done) {
      stub_->async()->DeleteWorkspace(ctx.get(), &req, &reply, std::move(done));
    });
    if (!s.ok()) return s;
    if (reply.has_workspace()) out->object = Copy(std::move(*reply.mutable_workspace()));
    out->deleted = reply.deleted();
    return s;
  }

  std::unique_ptr<WatchStream> Watch(const CallOptions& call, const WatchQuery& query) override {
    return WorkspaceWatchStream::Start(stub_.get(), call, query);
  }

 private:
  static void Fill(v1::Workspace object,
                   const google::protobuf::RepeatedPtrField<std::string>& warnings,
                   WriteResult* out) {
    out->object = Copy(std::move(object));
    out->warnings.assign(warnings.begin(), warnings.end());
  }

  std::unique_ptr<v1::WorkspaceService::Stub> stub_;
};

// ConfigMaps and Secrets: two services of the same shape, told apart by their traits.
struct ConfigMapCalls {
  using Object = v1::ConfigMap;
  using Write = v1::WriteConfigMapRequest;
  using ListReply = v1::ListConfigMapsResponse;
  using Stub = v1::ConfigService::Stub;
  static std::unique_ptr<Stub> NewStub(std::shared_ptr<grpc::Channel> c) {
    return v1::ConfigService::NewStub(c);
  }
  static Object* Mutable(Write& w) { return w.mutable_config_map(); }
  static constexpr auto kGet = &Stub::GetConfigMap;
  static constexpr auto kList = &Stub::ListConfigMaps;
  static constexpr auto kCreate = &Stub::CreateConfigMap;
  static constexpr auto kUpdate = &Stub::UpdateConfigMap;
  static constexpr auto kDelete = &Stub::DeleteConfigMap;
};

struct SecretCalls {
  using Object = v1::Secret;
  using Write = v1::WriteSecretRequest;
  using ListReply = v1::ListSecretsResponse;
  using Stub = v1::SecretService::Stub;
  static std::unique_ptr<Stub> NewStub(std::shared_ptr<grpc::Channel> c) {
    return v1::SecretService::NewStub(c);
  }
  static Object* Mutable(Write& w) { return w.mutable_secret(); }
  static constexpr auto kGet = &Stub::GetSecret;
  static constexpr auto kList = &Stub::ListSecrets;
  static constexpr auto kCreate = &Stub::CreateSecret;
  static constexpr auto kUpdate = &Stub::UpdateSecret;
  static constexpr auto kDelete = &Stub::DeleteSecret;
};

template <typename Calls>
class CoreBackend : public KindBackend {
 public:
  using Object = typename Calls::Object;

  explicit CoreBackend(std::shared_ptr<grpc::Channel> channel)
      : stub_(Calls::NewStub(std::move(channel))) {}

  std::unique_ptr<google::protobuf::Message> New() const override {
    return std::make_unique<Object>();
  }

  grpc::Status Get(const CallOptions& call, const std::string& ns, const std::string& name,
                   std::unique_ptr<google::protobuf::Message>* out) override {
    v1::ObjectKey key;
    key.set_namespace_(ns);
    key.set_name(name);
    Object reply;
    auto ctx = Context(call);
    grpc::Status s = (stub_.get()->*Calls::kGet)(ctx.get(), key, &reply);
    if (s.ok()) *out = Copy(std::move(reply));
    return s;
  }

  grpc::Status List(const CallOptions& call, const ListQuery& query, ListResult* out) override {
    v1::ListRequest req;
    req.set_namespace_(query.namespace_);
    req.set_label_selector(query.label_selector);
    req.set_page_size(query.page_size);
    req.set_page_token(query.page_token);
    typename Calls::ListReply reply;
    auto ctx = Context(call);
    grpc::Status s = (stub_.get()->*Calls::kList)(ctx.get(), req, &reply);
    if (!s.ok()) return s;
    for (auto& item : *reply.mutable_items()) out->items.push_back(Copy(std::move(item)));
    out->next_page_token = reply.next_page_token();
    out->resource_version = reply.resource_version();
    return s;
  }

  grpc::Status Create(const CallOptions& call, const google::protobuf::Message& object,
                      bool dry_run, WriteResult* out) override {
    return Write(Calls::kCreate, call, object, dry_run, out);
  }

  grpc::Status Update(const CallOptions& call, const google::protobuf::Message& object,
                      bool dry_run, WriteResult* out) override {
    return Write(Calls::kUpdate, call, object, dry_run, out);
  }

  grpc::Status Delete(const CallOptions& call, const std::string& ns, const std::string& name,
                      const std::string& resource_version, DeleteResult* out) override {
    v1::DeleteRequest req;
    req.set_namespace_(ns);
    req.set_name(name);
    req.set_resource_version(resource_version);
    v1::DeleteResponse reply;
    auto ctx = Context(call);
    grpc::Status s = (stub_.get()->*Calls::kDelete)(ctx.get(), req, &reply);
    if (s.ok()) out->deleted = reply.deleted();
    return s;
  }

 private:
  template <typename Method>
  grpc::Status Write(Method method, const CallOptions& call,
                     const google::protobuf::Message& object, bool dry_run, WriteResult* out) {
    typename Calls::Write req;
    Calls::Mutable(req)->CopyFrom(object);
    req.set_dry_run(dry_run);
    Object reply;
    auto ctx = Context(call);
    grpc::Status s = (stub_.get()->*method)(ctx.get(), req, &reply);
    if (s.ok()) out->object = Copy(std::move(reply));
    return s;
  }

  std::unique_ptr<typename Calls::Stub> stub_;
};

}  // namespace

std::unique_ptr<KindBackend> NewWorkspaceBackend(std::shared_ptr<grpc::Channel> channel) {
  return std::make_unique<WorkspaceBackend>(std::move(channel));
}
std::unique_ptr<KindBackend> NewConfigMapBackend(std::shared_ptr<grpc::Channel> channel) {
  return std::make_unique<CoreBackend<ConfigMapCalls>>(std::move(channel));
}
std::unique_ptr<KindBackend> NewSecretBackend(std::shared_ptr<grpc::Channel> channel) {
  return std::make_unique<CoreBackend<SecretCalls>>(std::move(channel));
}

}  // namespace kaito::shim
