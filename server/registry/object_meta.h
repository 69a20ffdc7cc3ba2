// Generic access to the `metadata` field that every stored kind has.
#pragma once

#include <google/protobuf/message.h>

#include "kaito/v1/meta.pb.h"

namespace kaito::server {

// The `metadata` field of `object`; every kind served by the registry has one.
inline const v1::ObjectMeta& Metadata(const google::protobuf::Message& object) {
  const auto* field = object.GetDescriptor()->FindFieldByName("metadata");
  return static_cast<const v1::ObjectMeta&>(object.GetReflection()->GetMessage(object, field));
}

inline v1::ObjectMeta* MutableMetadata(google::protobuf::Message* object) {
  const auto* field = object->GetDescriptor()->FindFieldByName("metadata");
  return static_cast<v1::ObjectMeta*>(object->GetReflection()->MutableMessage(object, field));
}

}  // namespace kaito::server
