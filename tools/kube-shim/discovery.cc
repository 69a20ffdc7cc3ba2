#include "tools/kube-shim/discovery.h"

#include <algorithm>

#include "common/version.h"
#include "tools/kube-shim/resources.h"

namespace kaito::shim {
namespace {

using json = nlohmann::ordered_json;

json GroupJson(const std::string& group) {
  json versions = json::array();
  std::vector<std::string> seen;
  for (const auto& r : ServedResources()) {
    if (r.group != group) continue;
    for (const auto& v : r.versions) {
      if (std::find(seen.begin(), seen.end(), v) != seen.end()) continue;
      seen.push_back(v);
      versions.push_back({{"groupVersion", group + "/" + v}, {"version", v}});
    }
  }
  return {{"name", group}, {"versions", versions}, {"preferredVersion", versions.at(0)}};
}

json Verbs(const ResourceType& r) {
  json verbs = {"create", "delete", "deletecollection", "get", "list", "patch", "update"};
  if (r.watchable) verbs.push_back("watch");
  return verbs;
}

}  // namespace

json CoreApiVersions(const std::string& host) {
  return {{"kind", "APIVersions"},
          {"versions", {"v1"}},
          {"serverAddressByClientCIDRs",
           json::array({{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", host}}})}};
}

json ApiGroupList() {
  json groups = json::array();
  for (const auto& g : ServedGroups()) groups.push_back(GroupJson(g));
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
}

std::optional<json> ApiGroup(const std::string& group) {
  for (const auto& g : ServedGroups()) {
    if (g != group) continue;
    json doc = {{"kind", "APIGroup"}, {"apiVersion", "v1"}};
    json group_doc = GroupJson(g);
    for (auto& [key, value] : group_doc.items()) doc[key] = value;
    return doc;
  }
  return std::nullopt;
}

std::optional<json> ResourceList(const std::string& group, const std::string& version) {
  json resources = json::array();
  for (const auto& r : ServedResources()) {
    if (r.group != group || !r.Serves(version)) continue;
    json entry = {{"name", r.plural},      {"singularName", r.singular}, {"namespaced", true},
                  {"kind", r.kind},        {"verbs", Verbs(r)}};
    if (!r.short_names.empty()) entry["shortNames"] = r.short_names;
    if (!r.categories.empty()) entry["categories"] = r.categories;
    resources.push_back(std::move(entry));
    if (r.has_status) {
      resources.push_back({{"name", r.plural + "/status"},
                           {"singularName", ""},
                           {"namespaced", true},
                           {"kind", r.kind},
                           {"verbs", {"get"}}});
    }
  }
  if (resources.empty()) return std::nullopt;
  return json{{"kind", "APIResourceList"},
              {"apiVersion", "v1"},
              {"groupVersion", group.empty() ? version : group + "/" + version},
              {"resources", resources}};
}

json VersionInfo() {
  // Clients compare major and minor with their own: the Kubernetes API level the shim
  // follows (its conventions and kubectl's expectations as of 1.32).
  return {{"major", "1"},
          {"minor", "32"},
          {"gitVersion", std::string("v1.32.0+kaito-") + Version()},
          {"gitCommit", ""},
          {"gitTreeState", "clean"},
          {"buildDate", ""},
          {"goVersion", ""},
          {"compiler", "gcc"},
          {"platform", "linux/amd64"}};
}

}  // namespace kaito::shim
