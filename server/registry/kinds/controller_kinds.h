// The kinds the control plane writes itself: Node (registered by agents, or by operators
// for bring-your-own clusters), NodeClaim, Workload and Event. Their spec is written
// through Create/Update, their status only through UpdateStatus; one template serves
// them all, so the rules cannot drift between kinds.
#pragma once

#include <string>

#include "kaito/v1/event.pb.h"
#include "kaito/v1/node.pb.h"
#include "kaito/v1/nodeclaim.pb.h"
#include "kaito/v1/workload.pb.h"
#include "server/registry/kinds/type_meta.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

inline constexpr char kKaitoApiVersion[] = "kaito.sh/v1beta1";

// `T` has api_version, kind and metadata, and optionally a `status` message that Update
// keeps from the stored object.
template <typename T>
KindPolicy<T> ControllerKindPolicy(std::string kind, std::string resource,
                                   std::string api_version, bool cluster_scoped,
                                   bool name_is_dns_label) {
  KindPolicy<T> p;
  p.kind = kind;
  p.resource = std::move(resource);
  p.cluster_scoped = cluster_scoped;
  p.name_is_dns_label = name_is_dns_label;
  p.normalize = [kind, api_version](T& object, FieldErrors& errors) {
    NormalizeTypeMeta(api_version, {api_version}, kind, object.mutable_api_version(),
                      object.mutable_kind(), errors);
  };
  p.validate = [](const T&, const T*, FieldErrors&, std::vector<std::string>&) {};
  p.spec_equal = [](const T& a, const T& b) { return EqualExcept(a, b, {"metadata", "status"}); };
  p.prepare = [](T& incoming, const T* stored) {
    const auto* field = incoming.GetDescriptor()->FindFieldByName("status");
    if (stored == nullptr || field == nullptr) return;  // Create keeps the given status.
    const auto* reflection = incoming.GetReflection();
    if (reflection->HasField(*stored, field)) {
      reflection->MutableMessage(&incoming, field)->CopyFrom(reflection->GetMessage(*stored, field));
    } else {
      reflection->ClearField(&incoming, field);
    }
  };
  return p;
}

inline KindPolicy<v1::Node> NodePolicy() {
  return ControllerKindPolicy<v1::Node>("Node", "nodes", "v1", /*cluster_scoped=*/true,
                                        /*name_is_dns_label=*/false);
}
inline KindPolicy<v1::NodeClaim> NodeClaimPolicy() {
  return ControllerKindPolicy<v1::NodeClaim>("NodeClaim", "nodeclaims", kKaitoApiVersion, true,
                                             true);
}
inline KindPolicy<v1::Workload> WorkloadPolicy() {
  return ControllerKindPolicy<v1::Workload>("Workload", "workloads", kKaitoApiVersion, false,
                                            false);
}
inline KindPolicy<v1::Event> EventPolicy() {
  return ControllerKindPolicy<v1::Event>("Event", "events", "v1", false, false);
}

}  // namespace kaito::server
