// Kubernetes API discovery for the served resources: /api (core versions), /apis (groups),
// /apis/GROUP, the APIResourceList of each group version, and /version. These are the
// legacy (unaggregated) documents, which every client reads; a client that asks for
// aggregated discovery (apidiscovery.k8s.io/v2) gets them too and falls back to them, as it
// does with any server that does not serve aggregated discovery.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kaito::shim {

// APIVersions for /api; `host` (the request's Host header) is the server address given.
nlohmann::ordered_json CoreApiVersions(const std::string& host);
nlohmann::ordered_json ApiGroupList();
std::optional<nlohmann::ordered_json> ApiGroup(const std::string& group);
// The APIResourceList of `group` ("" for core) and `version`; nullopt when not served.
std::optional<nlohmann::ordered_json> ResourceList(const std::string& group,
                                                   const std::string& version);
// /version, in the shape of Kubernetes' version.Info.
nlohmann::ordered_json VersionInfo();

}  // namespace kaito::shim
