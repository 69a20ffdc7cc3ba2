// The API semantics of one stored kind (Workspace, ConfigMap, Secret), independent of
// gRPC: create with server-set metadata, get and list from the cache, optimistic update,
// graceful delete through deletionTimestamp and finalizers, watch. Replies are delivered
// through callbacks because writes complete on the store's writer thread; nothing here
// blocks.
//
// Store layout: key "/<resource>/<namespace>/<name>", value = the serialized object with
// an empty resourceVersion (the store revision is the resourceVersion), sealed by the
// kind's `ValueTransformer` when it has one (Secrets).
#pragma once

#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/field_errors.h"
#include "common/k8s_names.h"
#include "common/label_selector.h"
#include "common/limits.h"
#include "server/registry/object_cache.h"
#include "server/registry/object_meta.h"
#include "server/registry/value_transformer.h"
#include "server/store/store.h"

namespace kaito::server {

using kaito::kMaxObjectBytes;  // Largest stored object (common/limits.h).
// Largest total size of a object's annotations, as Kubernetes.
inline constexpr size_t kMaxAnnotationBytes = 256 * 1024;
inline constexpr char kDefaultNamespace[] = "default";

template <typename T>
struct WriteResult {
  T object;
  std::vector<std::string> warnings;
  bool deleted = false;  // Delete: the object is gone (not waiting for finalizers).
};

template <typename T>
using WriteDone = absl::AnyInvocable<void(absl::StatusOr<WriteResult<T>>) &&>;

template <typename T>
struct ListResult {
  std::vector<T> items;
  std::string next_page_token;
  int64_t revision = 0;
};

// What differs between kinds.
template <typename T>
struct KindPolicy {
  std::string kind;              // "Workspace"
  std::string resource;          // "workspaces"
  bool name_is_dns_label = true; // else a DNS subdomain.
  // Cluster-scoped kinds (Node, NodeClaim) have no namespace: keys are
  // "/<resource>/<name>" and metadata.namespace is always empty.
  bool cluster_scoped = false;
  // Fills apiVersion and kind when empty; checks them when set.
  std::function<void(T& object, FieldErrors& errors)> normalize;
  // Kind-specific validation. `old` is null on create.
  std::function<void(const T& object, const T* old, FieldErrors& errors,
                     std::vector<std::string>& warnings)>
      validate;
  // Whether the spec (what bumps `generation`) differs.
  std::function<bool(const T& a, const T& b)> spec_equal;
  // Checks an update as the client sent it (before `prepare`), against the stored object.
  std::function<void(const T& request, const T& stored, FieldErrors& errors)>
      check_update_request;
  // Prepares an incoming object for storing: keeps server-owned parts of `stored`
  // (null on create), such as `status`.
  std::function<void(T& incoming, const T* stored)> prepare;
  // Removes what clients may never read (secret values).
  std::function<void(T& object)> redact;
  // Called on an update that leaves the spec unchanged, before it is compared with the
  // stored object: it may change `incoming` (a workspace applied again while Failed
  // records a retry request), which then makes the write happen.
  std::function<void(T& incoming, const T& stored, absl::Time now)> on_spec_unchanged_update;
};

template <typename T>
class ObjectRegistry {
 public:
  // `transformer` seals every value before it is stored (null: stored as serialized); the
  // kind's cache must open with the same one. Both outlive the registry.
  ObjectRegistry(KindPolicy<T> policy, store::Store* store, ObjectCache* cache, Clock* clock,
                 const ValueTransformer* transformer = nullptr)
      : policy_(std::move(policy)), store_(store), cache_(cache), clock_(clock),
        transformer_(transformer), rng_(std::random_device{}()) {}

  const KindPolicy<T>& policy() const { return policy_; }
  ObjectCache* cache() const { return cache_; }

  std::string Key(const std::string& ns, const std::string& name) const {
    if (policy_.cluster_scoped) return "/" + policy_.resource + "/" + name;
    return "/" + policy_.resource + "/" + ns + "/" + name;
  }
  std::string Prefix(const std::string& ns) const {
    return ns.empty() || policy_.cluster_scoped ? "/" + policy_.resource + "/"
                                                : "/" + policy_.resource + "/" + ns + "/";
  }

  void Create(T object, bool dry_run, WriteDone<T> done) {
    // Fields this server does not know are never stored and served back.
    object.DiscardUnknownFields();
    v1::ObjectMeta* meta = object.mutable_metadata();
    DefaultNamespace(*meta);
    FieldErrors errors;
    std::vector<std::string> warnings;
    policy_.normalize(object, errors);
    ValidateMeta(object, errors);
    // Server-owned metadata: whatever the client sent is replaced.
    meta->clear_resource_version();
    meta->clear_deletion_timestamp();
    meta->set_generation(1);
    *meta->mutable_creation_timestamp() = Now();
    meta->set_uid(NewUid());
    if (policy_.prepare) policy_.prepare(object, nullptr);
    if (errors.empty()) policy_.validate(object, nullptr, errors, warnings);
    if (!errors.empty()) return std::move(done)(errors.ToStatus(Subject(object)));
    std::string value;
    if (absl::Status s = Serialize(object, &value); !s.ok()) return std::move(done)(s);
    if (dry_run) {
      return std::move(done)(Reply(std::move(object), std::move(warnings)));
    }
    const std::string key = Key(meta->namespace_(), meta->name());
    store_->Put(key, std::move(value), store::kMustNotExist,
                [this, object = std::move(object), warnings = std::move(warnings),
                 done = std::move(done)](absl::StatusOr<int64_t> rev) mutable {
                  if (!rev.ok()) return std::move(done)(Translate(rev.status(), object));
                  object.mutable_metadata()->set_resource_version(std::to_string(*rev));
                  std::move(done)(Reply(std::move(object), std::move(warnings)));
                });
  }

  absl::StatusOr<T> Get(std::string ns, const std::string& name) {
    if (ns.empty() && !policy_.cluster_scoped) ns = kDefaultNamespace;
    auto cached = cache_->Get(Key(ns, name));
    if (!cached) return NotFound(name);
    T object = static_cast<const T&>(*cached->object);
    if (policy_.redact) policy_.redact(object);
    return object;
  }

  // The stored object without redaction, for the server's own components; nullopt when
  // absent.
  std::shared_ptr<const T> GetShared(std::string ns, const std::string& name) {
    if (ns.empty() && !policy_.cluster_scoped) ns = kDefaultNamespace;
    auto cached = cache_->Get(Key(ns, name));
    if (!cached) return nullptr;
    return std::static_pointer_cast<const T>(cached->object);
  }

  // Every stored object under `ns` (all namespaces when empty) that `filter` accepts,
  // without redaction, from the cache. For the server's own components.
  std::vector<std::shared_ptr<const T>> ListShared(
      const std::string& ns, const std::function<bool(const T&)>& filter = nullptr) {
    auto page = cache_->List(Prefix(ns), "", 0, [&](const google::protobuf::Message& m) {
      return !filter || filter(static_cast<const T&>(m));
    });
    std::vector<std::shared_ptr<const T>> out;
    out.reserve(page.items.size());
    for (const CachedObject& c : page.items) out.push_back(std::static_pointer_cast<const T>(c.object));
    return out;
  }

  // Replaces the status, and only the status: no generation bump, no admission rules.
  // With a resourceVersion in `object` the write is conditional (ABORTED when stale);
  // without, the status is written over the newest stored object. With a uid, NOT_FOUND
  // when the stored object is another incarnation of the name. Writes nothing when
  // the status is unchanged. The controllers' only way to write status.
  void UpdateStatus(T object, WriteDone<T> done) {
    object.DiscardUnknownFields();
    DefaultNamespace(*object.mutable_metadata());
    int64_t expected = store::kAnyRevision;
    const std::string& rv = object.metadata().resource_version();
    if (!rv.empty() && (!absl::SimpleAtoi(rv, &expected) || expected <= 0)) {
      return std::move(done)(absl::InvalidArgumentError(
          "metadata.resourceVersion: \"" + Abbreviate(rv) + "\" is not a resource version"));
    }
    UpdateStatusAttempt(std::move(object), expected, kMaxAttempts, std::move(done));
  }

  absl::StatusOr<ListResult<T>> List(const std::string& ns, const std::string& label_selector,
                                     int32_t page_size, const std::string& page_token) {
    auto selector = LabelSelectorMatcher::Parse(label_selector);
    if (!selector.ok()) return selector.status();
    if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
    const std::string prefix = Prefix(ns);
    std::string start_after;
    if (!page_token.empty()) {
      if (!absl::WebSafeBase64Unescape(page_token, &start_after) ||
          !store::HasPrefix(start_after, prefix)) {
        return absl::InvalidArgumentError("page_token: invalid or not from this list");
      }
    }
    auto page = cache_->List(prefix, start_after, static_cast<size_t>(page_size),
                             [&](const google::protobuf::Message& m) {
                               return selector->Matches(Metadata(m).labels());
                             });
    ListResult<T> result;
    result.revision = page.revision;
    for (const CachedObject& c : page.items) {
      result.items.push_back(static_cast<const T&>(*c.object));
      if (policy_.redact) policy_.redact(result.items.back());
    }
    if (page.more && !result.items.empty()) {
      const auto& last = result.items.back().metadata();
      result.next_page_token = absl::WebSafeBase64Escape(Key(last.namespace_(), last.name()));
    }
    return result;
  }

  // Replaces labels, annotations, finalizers and the spec. With a resourceVersion the
  // update is conditional (ABORTED when stale); without, it retries internal conflicts.
  void Update(T object, bool dry_run, WriteDone<T> done) {
    object.DiscardUnknownFields();
    DefaultNamespace(*object.mutable_metadata());
    int64_t expected = store::kAnyRevision;
    const std::string& rv = object.metadata().resource_version();
    if (!rv.empty() && (!absl::SimpleAtoi(rv, &expected) || expected <= 0)) {
      FieldErrors errors;
      errors.Add("metadata.resourceVersion", "Invalid value: \"" + rv + "\": not a resource version");
      return std::move(done)(errors.ToStatus(Subject(object)));
    }
    UpdateAttempt(std::move(object), expected, dry_run, kMaxAttempts, std::move(done));
  }

  // Graceful delete: with finalizers the object gets a deletionTimestamp and stays until
  // the last finalizer is removed; without, it goes at once.
  void Delete(std::string ns, const std::string& name, const std::string& resource_version,
              WriteDone<T> done) {
    if (ns.empty() && !policy_.cluster_scoped) ns = kDefaultNamespace;
    int64_t expected = store::kAnyRevision;
    if (!resource_version.empty() &&
        (!absl::SimpleAtoi(resource_version, &expected) || expected <= 0)) {
      return std::move(done)(absl::InvalidArgumentError(
          "resource_version: \"" + Abbreviate(resource_version) + "\" is not a resource version"));
    }
    DeleteAttempt(std::move(ns), name, expected, kMaxAttempts, std::move(done));
  }

  // Parses a List/Watch resourceVersion: empty = -1 ("now, with initial events").
  static absl::StatusOr<int64_t> ParseWatchRevision(const std::string& rv) {
    if (rv.empty()) return -1;
    int64_t value;
    if (!absl::SimpleAtoi(rv, &value) || value < 0) {
      return absl::InvalidArgumentError("resource_version: \"" + Abbreviate(rv) +
                                        "\" is not a resource version");
    }
    return value;
  }

 private:
  static constexpr int kMaxAttempts = 5;

  // A conflict is retried internally only for unconditional writes (no resourceVersion
  // from the client), a bounded number of times.
  // The cached object a write starts from. With several replicas on one store, this
  // replica's cache may lag a write the client saw on another: when the request names a newer
  // revision than the cache holds, or the cache lacks a key the store has, it waits (up to
  // 2 s; a blocking wait, on this rare path only) for the watch to deliver it.
  std::optional<CachedObject> CachedForWrite(const std::string& key, int64_t expected) {
    auto cached = cache_->Get(key);
    if (store_->Backend() != "etcd") return cached;
    int64_t want = 0;
    if (cached) {
      if (expected != store::kAnyRevision && expected > cached->mod_revision) want = expected;
    } else {
      auto kv = store_->Get(key);
      if (kv.ok()) want = kv->mod_revision;
    }
    if (want == 0) return cached;
    return cache_->AwaitKey(key, want, absl::Seconds(2));
  }

  static bool ShouldRetry(const absl::Status& status, int64_t expected, int attempts) {
    return status.code() == absl::StatusCode::kAborted && expected == store::kAnyRevision &&
           attempts > 1;
  }

  void DefaultNamespace(v1::ObjectMeta& meta) const {
    if (policy_.cluster_scoped) {
      meta.clear_namespace_();
    } else if (meta.namespace_().empty()) {
      meta.set_namespace_(kDefaultNamespace);
    }
  }

  google::protobuf::Timestamp Now() {
    return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
        absl::ToUnixNanos(clock_->Now()) / 1000000000 * 1000000000);
  }

  std::string NewUid() {
    absl::MutexLock lock(&rng_mu_);
    const uint64_t a = rng_(), b = rng_();
    // RFC 4122 version 4.
    return absl::StrFormat("%08x-%04x-4%03x-%04x-%012x", static_cast<uint32_t>(a >> 32),
                           static_cast<uint32_t>((a >> 16) & 0xffff),
                           static_cast<uint32_t>(a & 0xfff),
                           static_cast<uint32_t>(((b >> 48) & 0x3fff) | 0x8000),
                           b & 0xffffffffffffULL);
  }

  std::string Subject(const T& object) const {
    return policy_.kind + " \"" + Abbreviate(object.metadata().name()) + "\"";
  }

  absl::Status NotFound(const std::string& name) const {
    return absl::NotFoundError(policy_.resource + " \"" + Abbreviate(name) + "\" not found");
  }

  absl::Status Translate(const absl::Status& status, const T& object) const {
    const std::string name = Abbreviate(object.metadata().name());
    switch (status.code()) {
      case absl::StatusCode::kAlreadyExists:
        return absl::AlreadyExistsError(policy_.resource + " \"" + name + "\" already exists");
      case absl::StatusCode::kNotFound:
        return NotFound(name);
      case absl::StatusCode::kAborted:
        return absl::AbortedError("Operation cannot be fulfilled on " + policy_.resource + " \"" +
                                  name +
                                  "\": the object has been modified; please apply your changes "
                                  "to the latest version and try again");
      default:
        return status;
    }
  }

  WriteResult<T> Reply(T object, std::vector<std::string> warnings, bool deleted = false) {
    if (policy_.redact) policy_.redact(object);
    return WriteResult<T>{std::move(object), std::move(warnings), deleted};
  }

  absl::Status Serialize(T object, std::string* out) const {
    object.mutable_metadata()->clear_resource_version();
    if (!object.SerializeToString(out)) {
      return absl::InvalidArgumentError(Subject(object) + ": cannot be serialized");
    }
    if (out->size() > kMaxObjectBytes) {
      return absl::InvalidArgumentError(Subject(object) + " is too large: " +
                                        std::to_string(out->size()) + " bytes, limit " +
                                        std::to_string(kMaxObjectBytes));
    }
    if (transformer_ != nullptr) {
      // Sealed for its own key: the same bytes under another key do not open.
      auto sealed =
          transformer_->Seal(Key(object.metadata().namespace_(), object.metadata().name()), *out);
      if (!sealed.ok()) return sealed.status();
      *out = std::move(*sealed);
    }
    return absl::OkStatus();
  }

  void ValidateMeta(const T& object, FieldErrors& errors) const {
    const v1::ObjectMeta& meta = object.metadata();
    std::string err = policy_.name_is_dns_label ? CheckDnsLabel(meta.name())
                                                : CheckDnsSubdomain(meta.name());
    if (!err.empty()) errors.Add("metadata.name", err);
    if (!policy_.cluster_scoped) {
      if (std::string e = CheckDnsLabel(meta.namespace_()); !e.empty()) {
        errors.Add("metadata.namespace", e);
      }
    }
    for (const auto& [k, v] : meta.labels()) {
      if (std::string e = CheckQualifiedName(k); !e.empty()) errors.Add("metadata.labels", e);
      if (std::string e = CheckLabelValue(v); !e.empty()) {
        errors.Add("metadata.labels[" + k + "]", e);
      }
    }
    size_t annotation_bytes = 0;
    for (const auto& [k, v] : meta.annotations()) {
      if (std::string e = CheckQualifiedName(k); !e.empty()) errors.Add("metadata.annotations", e);
      annotation_bytes += k.size() + v.size();
    }
    if (annotation_bytes > kMaxAnnotationBytes) {
      errors.Add("metadata.annotations", "Too long: must have at most " +
                                             std::to_string(kMaxAnnotationBytes) + " bytes");
    }
    for (int i = 0; i < meta.finalizers_size(); ++i) {
      if (std::string e = CheckQualifiedName(meta.finalizers(i)); !e.empty()) {
        errors.Add("metadata.finalizers[" + std::to_string(i) + "]", e);
      }
    }
  }

  void UpdateAttempt(T object, int64_t expected, bool dry_run, int attempts, WriteDone<T> done) {
    const std::string ns = object.metadata().namespace_();
    const std::string key = Key(ns, object.metadata().name());
    auto cached = CachedForWrite(key, expected);
    if (!cached) return std::move(done)(NotFound(object.metadata().name()));
    const T& stored = static_cast<const T&>(*cached->object);
    if (expected != store::kAnyRevision && expected != cached->mod_revision) {
      return std::move(done)(Translate(absl::AbortedError("stale"), object));
    }
    FieldErrors errors;
    std::vector<std::string> warnings;
    policy_.normalize(object, errors);
    ValidateMeta(object, errors);
    if (policy_.check_update_request) policy_.check_update_request(object, stored, errors);
    // Server-owned metadata comes from the stored object.
    v1::ObjectMeta* meta = object.mutable_metadata();
    const v1::ObjectMeta& old = stored.metadata();
    if (!meta->uid().empty() && meta->uid() != old.uid()) {
      errors.Add("metadata.uid", "Invalid value: \"" + meta->uid() + "\": field is immutable");
    }
    meta->set_uid(old.uid());
    *meta->mutable_creation_timestamp() = old.creation_timestamp();
    if (old.has_deletion_timestamp()) {
      *meta->mutable_deletion_timestamp() = old.deletion_timestamp();
      // As Kubernetes: an object being deleted may lose finalizers, never gain one.
      std::string added;
      for (const std::string& f : meta->finalizers()) {
        if (std::find(old.finalizers().begin(), old.finalizers().end(), f) ==
            old.finalizers().end()) {
          added += (added.empty() ? "\"" : ", \"") + Abbreviate(f) + "\"";
        }
      }
      if (!added.empty()) {
        errors.Add("metadata.finalizers",
                   "Forbidden: no new finalizers can be added if the object is being deleted, "
                   "found new finalizers [" + added + "]");
      }
    } else {
      meta->clear_deletion_timestamp();
    }
    meta->set_generation(old.generation());
    meta->clear_resource_version();
    if (policy_.prepare) policy_.prepare(object, &stored);
    if (errors.empty()) policy_.validate(object, &stored, errors, warnings);
    if (!errors.empty()) return std::move(done)(errors.ToStatus(Subject(object)));
    if (!policy_.spec_equal(object, stored)) {
      meta->set_generation(old.generation() + 1);
    } else if (policy_.on_spec_unchanged_update) {
      policy_.on_spec_unchanged_update(object, stored, clock_->Now());
    }

    T stored_plain = stored;
    stored_plain.mutable_metadata()->clear_resource_version();
    if (google::protobuf::util::MessageDifferencer::Equals(object, stored_plain)) {
      // Nothing changed: no write, the resourceVersion stays (as Kubernetes does).
      return std::move(done)(Reply(stored, std::move(warnings)));
    }
    const bool finalize = meta->has_deletion_timestamp() && meta->finalizers().empty();
    if (dry_run) {
      object.mutable_metadata()->set_resource_version(old.resource_version());
      return std::move(done)(Reply(std::move(object), std::move(warnings), finalize));
    }
    std::string value;
    if (!finalize) {
      if (absl::Status s = Serialize(object, &value); !s.ok()) return std::move(done)(s);
    }
    store::WriteCallback complete = [this, object = std::move(object),
                                     warnings = std::move(warnings), done = std::move(done),
                                     attempts, expected, dry_run,
                                     finalize](absl::StatusOr<int64_t> rev) mutable {
      if (!rev.ok() && ShouldRetry(rev.status(), expected, attempts)) {
        return UpdateAttempt(std::move(object), expected, dry_run, attempts - 1, std::move(done));
      }
      if (!rev.ok()) return std::move(done)(Translate(rev.status(), object));
      object.mutable_metadata()->set_resource_version(std::to_string(*rev));
      std::move(done)(Reply(std::move(object), std::move(warnings), finalize));
    };
    if (finalize) {
      // The last finalizer is gone from an object being deleted: it goes now.
      store_->Delete(key, cached->mod_revision, std::move(complete));
    } else {
      store_->Put(key, std::move(value), cached->mod_revision, std::move(complete));
    }
  }

  void UpdateStatusAttempt(T object, int64_t expected, int attempts, WriteDone<T> done) {
    const std::string key = Key(object.metadata().namespace_(), object.metadata().name());
    auto cached = CachedForWrite(key, expected);
    if (!cached) return std::move(done)(NotFound(object.metadata().name()));
    if (expected != store::kAnyRevision && expected != cached->mod_revision) {
      return std::move(done)(Translate(absl::AbortedError("stale"), object));
    }
    if (!object.metadata().uid().empty() &&
        object.metadata().uid() != Metadata(*cached->object).uid()) {
      // The object was deleted and made again under the same name: this status was
      // about the one before.
      return std::move(done)(NotFound(object.metadata().name()));
    }
    T updated = static_cast<const T&>(*cached->object);
    const google::protobuf::FieldDescriptor* field = updated.GetDescriptor()->FindFieldByName("status");
    const google::protobuf::Reflection* reflection = updated.GetReflection();
    if (reflection->HasField(object, field)) {
      reflection->MutableMessage(&updated, field)->CopyFrom(reflection->GetMessage(object, field));
    } else {
      reflection->ClearField(&updated, field);
    }
    if (google::protobuf::util::MessageDifferencer::Equals(updated,
                                                           static_cast<const T&>(*cached->object))) {
      return std::move(done)(WriteResult<T>{std::move(updated), {}, false});
    }
    std::string value;
    if (absl::Status s = Serialize(updated, &value); !s.ok()) return std::move(done)(s);
    store_->Put(key, std::move(value), cached->mod_revision,
                [this, object = std::move(object), updated, expected, attempts,
                 done = std::move(done)](absl::StatusOr<int64_t> rev) mutable {
                  if (!rev.ok() && ShouldRetry(rev.status(), expected, attempts)) {
                    return UpdateStatusAttempt(std::move(object), expected, attempts - 1,
                                               std::move(done));
                  }
                  if (!rev.ok()) return std::move(done)(Translate(rev.status(), updated));
                  updated.mutable_metadata()->set_resource_version(std::to_string(*rev));
                  std::move(done)(WriteResult<T>{std::move(updated), {}, false});
                });
  }

  void DeleteAttempt(std::string ns, std::string name, int64_t expected, int attempts,
                     WriteDone<T> done) {
    const std::string key = Key(ns, name);
    auto cached = CachedForWrite(key, expected);
    if (!cached) return std::move(done)(NotFound(name));
    T object = static_cast<const T&>(*cached->object);
    if (expected != store::kAnyRevision && expected != cached->mod_revision) {
      return std::move(done)(Translate(absl::AbortedError("stale"), object));
    }
    auto finish = [this, ns, name, expected, attempts, done = std::move(done)](
                      T object, bool deleted, absl::StatusOr<int64_t> rev) mutable {
      if (!rev.ok() && ShouldRetry(rev.status(), expected, attempts)) {
        return DeleteAttempt(std::move(ns), std::move(name), expected, attempts - 1,
                             std::move(done));
      }
      if (!rev.ok()) return std::move(done)(Translate(rev.status(), object));
      object.mutable_metadata()->set_resource_version(std::to_string(*rev));
      std::move(done)(Reply(std::move(object), {}, deleted));
    };
    if (object.metadata().finalizers().empty()) {
      store_->Delete(key, cached->mod_revision,
                     [object, finish = std::move(finish)](absl::StatusOr<int64_t> rev) mutable {
                       finish(std::move(object), true, std::move(rev));
                     });
      return;
    }
    if (object.metadata().has_deletion_timestamp()) {
      // Already being deleted: nothing more to record.
      return finish(std::move(object), false, cached->mod_revision);
    }
    *object.mutable_metadata()->mutable_deletion_timestamp() = Now();
    std::string value;
    if (absl::Status s = Serialize(object, &value); !s.ok()) return finish(object, false, s);
    store_->Put(key, std::move(value), cached->mod_revision,
                [object, finish = std::move(finish)](absl::StatusOr<int64_t> rev) mutable {
                  finish(std::move(object), false, std::move(rev));
                });
  }

  const KindPolicy<T> policy_;
  store::Store* const store_;
  ObjectCache* const cache_;
  Clock* const clock_;
  const ValueTransformer* const transformer_;
  absl::Mutex rng_mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(rng_mu_);
};

}  // namespace kaito::server
