// Status conditions as metav1.Condition: a condition's lastTransitionTime changes only
// when its status does.
#pragma once

#include <google/protobuf/util/time_util.h>

#include <string>

#include "absl/time/time.h"
#include "kaito/v1/meta.pb.h"

namespace kaito::server {

// Kaito's condition types (shared/reference/kaito.md §1.3) plus WorkspaceReady, the
// column of the seed document.
inline constexpr char kConditionNodeClaimReady[] = "NodeClaimReady";
inline constexpr char kConditionResourceReady[] = "ResourceReady";
inline constexpr char kConditionInferenceReady[] = "InferenceReady";
inline constexpr char kConditionJobStarted[] = "JobStarted";
inline constexpr char kConditionWorkspaceSucceeded[] = "WorkspaceSucceeded";
inline constexpr char kConditionWorkspaceReady[] = "WorkspaceReady";
inline constexpr char kConditionWorkspaceDeleting[] = "WorkspaceDeleting";

inline google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(t));
}
inline absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

inline const v1::Condition* FindCondition(
    const google::protobuf::RepeatedPtrField<v1::Condition>& conditions, const std::string& type) {
  for (const auto& c : conditions) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

inline bool IsConditionTrue(const google::protobuf::RepeatedPtrField<v1::Condition>& conditions,
                            const std::string& type) {
  const v1::Condition* c = FindCondition(conditions, type);
  return c != nullptr && c->status() == "True";
}

// Sets (or adds) the condition `type`. Messages are cut to 256 characters, as Kaito does.
inline void SetCondition(google::protobuf::RepeatedPtrField<v1::Condition>* conditions,
                         const std::string& type, bool status, const std::string& reason,
                         std::string message, int64_t generation, absl::Time now) {
  if (message.size() > 256) message = message.substr(0, 253) + "...";
  const std::string s = status ? "True" : "False";
  v1::Condition* c = nullptr;
  for (auto& existing : *conditions) {
    if (existing.type() == type) c = &existing;
  }
  if (c == nullptr) {
    c = conditions->Add();
    c->set_type(type);
  }
  if (c->status() != s || !c->has_last_transition_time()) {
    *c->mutable_last_transition_time() = ToTimestamp(now);
  }
  c->set_status(s);
  c->set_reason(reason);
  c->set_message(std::move(message));
  c->set_observed_generation(generation);
}

inline void RemoveCondition(google::protobuf::RepeatedPtrField<v1::Condition>* conditions,
                            const std::string& type) {
  for (int i = conditions->size() - 1; i >= 0; --i) {
    if (conditions->Get(i).type() == type) conditions->erase(conditions->begin() + i);
  }
}

}  // namespace kaito::server
