#include "server/controllers/event_recorder.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "server/controllers/conditions.h"
#include "server/registry/object_meta.h"

namespace kaito::server {
namespace {

// FNV-1a: a short, stable suffix for event names (not a security boundary).
uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// What the log lines about an event of `object` are about: the workspace itself, or the object
// and the workspace its labels name.
LogSubject SubjectOf(const std::string& kind, const v1::ObjectMeta& meta) {
  if (kind == "Workspace") return WorkspaceSubject(meta.namespace_(), meta.name());
  return SubjectFromLabels(meta.labels(), absl::AsciiStrToLower(kind) + "/" + meta.name());
}

}  // namespace

std::string EventRecorder::EventName(const v1::ObjectReference& ref, const std::string& type,
                                     const std::string& reason, const std::string& message) {
  const uint64_t h =
      Fnv1a(ref.kind() + "\n" + ref.uid() + "\n" + type + "\n" + reason + "\n" + message);
  std::string base = ref.name().substr(0, 200);
  return absl::StrFormat("%s.%016x", base, h);
}

void EventRecorder::Record(const google::protobuf::Message& object, const std::string& type,
                           const std::string& reason, const std::string& message) {
  const v1::ObjectMeta& meta = Metadata(object);
  v1::Event event;
  v1::ObjectReference* ref = event.mutable_involved_object();
  ref->set_kind(object.GetDescriptor()->name());
  ref->set_namespace_(meta.namespace_());
  ref->set_name(meta.name());
  ref->set_uid(meta.uid());
  event.mutable_metadata()->set_namespace_(meta.namespace_().empty() ? "default"
                                                                     : meta.namespace_());
  event.mutable_metadata()->set_name(EventName(*ref, type, reason, message));
  event.set_type(type);
  event.set_reason(reason);
  event.set_message(message.size() > 1024 ? message.substr(0, 1021) + "..." : message);
  event.set_source(source_);
  // Microseconds, so that events of the same second keep their order.
  const auto now =
      google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(clock_->Now()));
  *event.mutable_last_timestamp() = now;
  *event.mutable_first_timestamp() = now;
  {
    absl::MutexLock lock(&mu_);
    event.set_count(++counts_[event.metadata().name()]);
  }
  LogSubject about = SubjectOf(ref->kind(), meta);
  LogAbout(spdlog::level::debug, about, "event {} {}: {}", type, reason, message);
  Write(std::move(event), std::move(about), 3);
}

void EventRecorder::Write(v1::Event event, LogSubject about, int attempts) {
  if (auto stored = events_->GetShared(event.metadata().namespace_(), event.metadata().name())) {
    // Aggregate into the stored event (also after a restart, when counts_ is empty).
    v1::Event merged = *stored;
    merged.set_count(std::max(stored->count() + 1, event.count()));
    *merged.mutable_last_timestamp() = event.last_timestamp();
    merged.mutable_metadata()->clear_resource_version();
    {
      absl::MutexLock lock(&mu_);
      counts_[merged.metadata().name()] = merged.count();
    }
    events_->Update(std::move(merged), false,
                    [this, event, about = std::move(about),
                     attempts](absl::StatusOr<WriteResult<v1::Event>> r) mutable {
                      if (!r.ok() && attempts > 1 &&
                          (absl::IsNotFound(r.status()) || absl::IsAborted(r.status()))) {
                        return Write(std::move(event), std::move(about), attempts - 1);
                      }
                      if (!r.ok()) {
                        LogAbout(spdlog::level::warn, about, "event {}: write failed: {}",
                                 event.reason(), r.status().ToString());
                      }
                    });
    return;
  }
  events_->Create(event, false,
                  [this, event, about = std::move(about),
                   attempts](absl::StatusOr<WriteResult<v1::Event>> r) mutable {
                    if (!r.ok() && attempts > 1 && absl::IsAlreadyExists(r.status())) {
                      return Write(std::move(event), std::move(about), attempts - 1);
                    }
                    if (!r.ok()) {
                      LogAbout(spdlog::level::warn, about, "event {}: write failed: {}",
                               event.reason(), r.status().ToString());
                    }
                  });
}

}  // namespace kaito::server
