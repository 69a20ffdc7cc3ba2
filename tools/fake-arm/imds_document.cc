#include "tools/fake-arm/imds_document.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kaito::fakearm {

Json DefaultImdsDocument(const ClusterIdentity& identity) {
  const std::string vmss = AgentPoolModel::VmssName("gpu");
  const std::string node_rg = identity.NodeResourceGroup();
  return Json{
      {"compute",
       {{"azEnvironment", "AzurePublicCloud"},
        {"location", identity.location},
        {"name", vmss + "_0"},
        {"osType", "Linux"},
        {"priority", ""},
        {"provider", "Microsoft.Compute"},
        {"resourceGroupName", node_rg},
        {"resourceId",
         absl::StrCat("/subscriptions/", identity.subscription, "/resourceGroups/", node_rg,
                      "/providers/Microsoft.Compute/virtualMachineScaleSets/", vmss,
                      "/virtualMachines/0")},
        {"subscriptionId", identity.subscription},
        {"tagsList", Json::array()},
        {"vmId", "00000000-0000-4000-8000-000000000001"},
        {"vmScaleSetName", vmss},
        {"vmSize", "Standard_NC24ads_A100_v4"},
        {"zone", ""}}},
      {"network",
       {{"interface",
         Json::array({Json{
             {"ipv4",
              {{"ipAddress",
                Json::array({Json{{"privateIpAddress", "10.224.0.4"}, {"publicIpAddress", ""}}})},
               {"subnet", Json::array({Json{{"address", "10.224.0.0"}, {"prefix", "16"}}})}}},
             {"ipv6", {{"ipAddress", Json::array()}}},
             {"macAddress", "000D3A000001"}}})}}}};
}

ImdsAnswer ImdsLookup(const Json& document, const std::vector<std::string>& path,
                      const std::string& format) {
  auto error = [](int status, const std::string& message) {
    return ImdsAnswer{status, Dump(Json{{"error", message}}), kJsonContentType};
  };
  if (format != "json" && format != "text") {
    return error(400, "Bad request. Unsupported format '" + format +
                          "'; supported formats are json and text.");
  }
  const Json* node = &document;
  for (const std::string& segment : path) {
    if (node->is_object()) {
      auto it = node->find(segment);
      if (it == node->end()) return error(404, "Not found");
      node = &*it;
    } else if (node->is_array()) {
      size_t index = 0;
      if (!absl::SimpleAtoi(segment, &index) || index >= node->size()) {
        return error(404, "Not found");
      }
      node = &(*node)[index];
    } else {
      return error(404, "Not found");
    }
  }
  if (format == "json") return ImdsAnswer{200, Dump(*node), kJsonContentType};
  std::string text;
  if (node->is_object()) {
    for (const auto& [key, child] : node->items()) {
      absl::StrAppend(&text, text.empty() ? "" : "\n", key, child.is_structured() ? "/" : "");
    }
  } else if (node->is_array()) {
    for (size_t i = 0; i < node->size(); ++i) {
      absl::StrAppend(&text, i == 0 ? "" : "\n", i, (*node)[i].is_structured() ? "/" : "");
    }
  } else if (node->is_string()) {
    text = node->get<std::string>();
  } else {
    text = Dump(*node);
  }
  return ImdsAnswer{200, text, "text/plain; charset=utf-8"};
}

}  // namespace kaito::fakearm
