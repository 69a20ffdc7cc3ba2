// Records Events about objects, as Kubernetes' event recorder: the same (object, type,
// reason, message) within the TTL bumps `count` and `lastTimestamp` of one Event instead
// of writing a new one. Writes are asynchronous and best effort: a failed event write is
// logged, never returned to the caller, and never blocks it.
//
// Thread-safety: every method may be called from any thread; state behind `mu_`.
#pragma once

#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/logging.h"
#include "kaito/v1/event.pb.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

class EventRecorder {
 public:
  EventRecorder(ObjectRegistry<v1::Event>* events, Clock* clock, std::string source)
      : events_(events), clock_(clock), source_(std::move(source)) {}

  // `object` is any stored kind (its metadata names it). Cluster-scoped objects' events
  // go to the "default" namespace, as Kubernetes does for nodes.
  void Normal(const google::protobuf::Message& object, const std::string& reason,
              const std::string& message) {
    Record(object, "Normal", reason, message);
  }
  void Warning(const google::protobuf::Message& object, const std::string& reason,
               const std::string& message) {
    Record(object, "Warning", reason, message);
  }
  void Record(const google::protobuf::Message& object, const std::string& type,
              const std::string& reason, const std::string& message);

  // The name of the Event that (object, type, reason, message) aggregates into.
  static std::string EventName(const v1::ObjectReference& ref, const std::string& type,
                               const std::string& reason, const std::string& message);

 private:
  void Write(v1::Event event, LogSubject about, int attempts);

  ObjectRegistry<v1::Event>* const events_;
  Clock* const clock_;
  const std::string source_;
  absl::Mutex mu_;
  // The newest count written per event name, so that repeats aggregate without a read.
  std::map<std::string, int32_t> counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
