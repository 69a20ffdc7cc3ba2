#include "tools/kube-shim/k8s_protobuf.h"

#include "absl/strings/match.h"
#include "common/manifest_codec.h"
#include "kaito/k8swire/core_v1.pb.h"

namespace kaito::shim {
namespace {

constexpr char kMagic[] = {'k', '8', 's', '\0'};

}  // namespace

bool IsProtobuf(const std::string& content_type) {
  return absl::StartsWith(content_type, kProtobufMediaType);
}

absl::StatusOr<nlohmann::ordered_json> ProtobufToJson(const ResourceType& resource,
                                                      const std::string& body) {
  if (body.size() < sizeof(kMagic) || body.compare(0, sizeof(kMagic), kMagic, sizeof(kMagic))) {
    return absl::InvalidArgumentError("the protobuf body does not start with the magic \"k8s\\0\"");
  }
  k8swire::Unknown envelope;
  if (!envelope.ParseFromArray(body.data() + sizeof(kMagic),
                               static_cast<int>(body.size() - sizeof(kMagic)))) {
    return absl::InvalidArgumentError("the protobuf body does not decode");
  }
  if (!envelope.contentencoding().empty()) {
    return absl::InvalidArgumentError("protobuf content encoding \"" +
                                      envelope.contentencoding() + "\" is not supported");
  }
  std::unique_ptr<google::protobuf::Message> object;
  if (resource.group.empty() && resource.kind == "Secret") {
    object = std::make_unique<k8swire::Secret>();
  } else if (resource.group.empty() && resource.kind == "ConfigMap") {
    object = std::make_unique<k8swire::ConfigMap>();
  } else {
    return absl::UnimplementedError(resource.QualifiedName() +
                                    " have no protobuf encoding; send application/json");
  }
  if (!object->ParseFromString(envelope.raw())) {
    return absl::InvalidArgumentError("the protobuf " + resource.kind + " does not decode");
  }
  nlohmann::ordered_json out = {{"apiVersion", envelope.typemeta().apiversion()},
                                {"kind", envelope.typemeta().kind()}};
  if (out["apiVersion"] == "") out.erase("apiVersion");
  if (out["kind"] == "") out.erase("kind");
  nlohmann::ordered_json fields = MessageToJsonValue(*object);
  for (auto& [key, value] : fields.items()) out[key] = std::move(value);
  return out;
}

}  // namespace kaito::shim
