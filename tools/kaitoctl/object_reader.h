// Reading objects of every kind kaitoctl serves, by name or as a list, behind one pair of
// calls so that `get`, `delete`, `wait` and `describe` treat the kinds alike.
#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <vector>

#include "tools/kaitoctl/client.h"
#include "tools/kaitoctl/resource_types.h"

namespace kaito::ctl {

using Objects = std::vector<std::unique_ptr<google::protobuf::Message>>;

// Where to read: the namespace (empty: every namespace; ignored for cluster-scoped kinds),
// a label selector, and for skus the cloud.
struct ReadScope {
  std::string ns;
  std::string selector;
  std::string cloud;
};

// Appends every object of `type` in `scope` to `out`, all pages. `resource_version`, when
// not null, gets the revision of the first page (where a watch starts).
CallStatus ListObjects(Client& c, const ResourceType& type, const ReadScope& scope, Objects* out,
                       std::string* resource_version = nullptr);

// Appends the object `name` of `type` to `out`; NOT_FOUND (the server's, or for workloads,
// which have no Get, kubectl's words) when there is none.
CallStatus GetObject(Client& c, const ResourceType& type, const ReadScope& scope,
                     const std::string& name, Objects* out);

// The name of an object read by the calls above: metadata.name, or for presets and skus
// their `name`.
std::string NameOf(const google::protobuf::Message& object);

// metadata.resourceVersion of an object read by the calls above; empty for presets and skus.
std::string ResourceVersionOf(const google::protobuf::Message& object);

}  // namespace kaito::ctl
