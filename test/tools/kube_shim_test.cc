// The shim's pure parts: patches, Status mapping, discovery and OpenAPI documents, tables.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/field_errors.h"
#include "common/rpc_metrics.h"
#include "kaito/v1/workspace.pb.h"
#include "tools/kube-shim/discovery.h"
#include "tools/kube-shim/k8s_status.h"
#include "tools/kube-shim/openapi.h"
#include "tools/kube-shim/patch.h"
#include "tools/kube-shim/resources.h"
#include "tools/kube-shim/table.h"

namespace kaito::shim {
namespace {

using json = nlohmann::ordered_json;

const ResourceType& Workspaces() { return *FindResource("kaito.sh", "v1beta1", "workspaces"); }

TEST(PatchTest, MergePatchSetsAndRemoves) {
  json current = {{"metadata", {{"labels", {{"a", "1"}, {"b", "2"}}}}}};
  auto out = ApplyPatch(PatchType::kMerge, current, R"({"metadata":{"labels":{"a":null,"c":"3"}}})");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)["metadata"]["labels"], json({{"b", "2"}, {"c", "3"}}));
}

TEST(PatchTest, JsonPatchAppliesAndFailsATest) {
  json current = {{"metadata", {{"name", "x"}}}};
  auto added = ApplyPatch(PatchType::kJson, current,
                          R"([{"op":"add","path":"/metadata/labels","value":{"k":"v"}}])");
  ASSERT_TRUE(added.ok());
  EXPECT_EQ((*added)["metadata"]["labels"]["k"], "v");
  auto failed = ApplyPatch(PatchType::kJson, current,
                           R"([{"op":"test","path":"/metadata/name","value":"y"}])");
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyPatch(PatchType::kJson, current, R"({"op":"add"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyPatch(PatchType::kMerge, current, "{not json").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PatchTest, StrategicMergeDropsDirectives) {
  json current = {{"data", {{"a", "1"}}}};
  auto out = ApplyPatch(PatchType::kStrategic, current,
                        R"({"$patch":"merge","data":{"b":"2","$retainKeys":["a"]}})");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, json({{"data", {{"a", "1"}, {"b", "2"}}}}));
}

TEST(PatchTest, MediaTypes) {
  EXPECT_EQ(PatchTypeOf("application/merge-patch+json"), PatchType::kMerge);
  EXPECT_EQ(PatchTypeOf("application/json-patch+json; charset=utf-8"), PatchType::kJson);
  EXPECT_EQ(PatchTypeOf("application/strategic-merge-patch+json"), PatchType::kStrategic);
  EXPECT_EQ(PatchTypeOf("application/apply-patch+yaml"), PatchType::kApply);
  EXPECT_EQ(PatchTypeOf("text/plain"), PatchType::kUnsupported);
}

TEST(StatusTest, FieldErrorsBecome422WithCauses) {
  FieldErrors errors;
  errors.Add("resource.instanceType", "Unsupported value: \"x\"");
  errors.Add("resource.labelSelector", "Required value");
  ApiError e = FromGrpc(ToGrpcStatus(errors.ToStatus("Workspace \"w\"")), Workspaces(), "w");
  EXPECT_EQ(e.http_code, 422);
  EXPECT_EQ(e.reason, "Invalid");
  EXPECT_EQ(e.message,
            "Workspace.kaito.sh \"w\" is invalid: [resource.instanceType: Unsupported value: "
            "\"x\", resource.labelSelector: Required value]");
  json status = StatusObject(e);
  ASSERT_EQ(status["details"]["causes"].size(), 2u);
  EXPECT_EQ(status["details"]["causes"][1]["reason"], "FieldValueRequired");
  EXPECT_EQ(status["details"]["causes"][1]["field"], "resource.labelSelector");
  EXPECT_EQ(status["code"], 422);
}

TEST(StatusTest, CodesAndMessagesAsKubeApiserverWordsThem) {
  const ResourceType& ws = Workspaces();
  ApiError nf = FromGrpc(grpc::Status(grpc::StatusCode::NOT_FOUND, "no"), ws, "x");
  EXPECT_EQ(nf.http_code, 404);
  EXPECT_EQ(nf.message, "workspaces.kaito.sh \"x\" not found");
  ApiError dup = FromGrpc(grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "dup"), ws, "x");
  EXPECT_EQ(dup.http_code, 409);
  EXPECT_EQ(dup.reason, "AlreadyExists");
  EXPECT_EQ(FromGrpc(grpc::Status(grpc::StatusCode::ABORTED, "stale"), ws, "x").reason, "Conflict");
  ApiError busy = FromGrpc(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "slow"), ws, "x");
  EXPECT_EQ(busy.http_code, 429);
  EXPECT_GT(busy.retry_after_seconds, 0);
  EXPECT_EQ(FromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), ws, "").http_code, 503);
  EXPECT_EQ(FromGrpc(grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "old"), ws, "").http_code, 410);
  EXPECT_EQ(FromGrpc(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no"), ws, "x").http_code,
            403);
  EXPECT_EQ(FromGrpc(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad"), ws, "x").http_code,
            400);
}

TEST(DiscoveryTest, WorkspacesAsKaitosCrdDeclaresThem) {
  auto list = ResourceList("kaito.sh", "v1beta1");
  ASSERT_TRUE(list.has_value());
  const json& ws = (*list)["resources"][0];
  EXPECT_EQ(ws["name"], "workspaces");
  EXPECT_EQ(ws["shortNames"], json({"wk", "wks"}));
  EXPECT_EQ(ws["categories"], json({"workspace"}));
  EXPECT_TRUE(ws["namespaced"]);
  EXPECT_THAT(ws["verbs"].get<std::vector<std::string>>(), ::testing::Contains("watch"));
  EXPECT_EQ((*list)["resources"][1]["name"], "workspaces/status");
  EXPECT_TRUE(ResourceList("kaito.sh", "v1alpha1").has_value());
  EXPECT_FALSE(ResourceList("kaito.sh", "v2").has_value());
  auto core = ResourceList("", "v1");
  ASSERT_TRUE(core.has_value());
  EXPECT_EQ((*core)["resources"].size(), 2u);
  EXPECT_EQ(ApiGroupList()["groups"][0]["preferredVersion"]["version"], "v1beta1");
}

TEST(OpenApiTest, SchemasFromTheProtos) {
  json schema = MessageSchema(v1::Workspace::descriptor());
  const json& resource = schema["properties"]["resource"];
  EXPECT_EQ(resource["properties"]["instanceType"]["type"], "string");
  EXPECT_EQ(resource["properties"]["count"]["format"], "int32");
  EXPECT_EQ(resource["properties"]["labelSelector"]["properties"]["matchLabels"]["type"],
            "object");
  EXPECT_EQ(schema["properties"]["metadata"]["properties"]["generation"]["format"], "int64");
  EXPECT_EQ(schema["properties"]["metadata"]["properties"]["creationTimestamp"]["format"],
            "date-time");
  EXPECT_TRUE(schema["properties"]["inference"]["properties"]["template"]
                    ["x-kubernetes-preserve-unknown-fields"]);
  auto doc = OpenApiV3("apis/kaito.sh/v1beta1");
  ASSERT_TRUE(doc.has_value());
  const json& ws = (*doc)["components"]["schemas"]["sh.kaito.v1beta1.Workspace"];
  EXPECT_EQ(ws["x-kubernetes-group-version-kind"][0]["kind"], "Workspace");
  // Descriptions are the proto comments, one line each without the comment marker.
  EXPECT_EQ(ws["properties"]["resource"]["properties"]["instanceType"]["description"],
            "The GPU instance type (SKU), e.g. Standard_NC24ads_A100_v4.");
  const json& patch =
      (*doc)["paths"]["/apis/kaito.sh/v1beta1/namespaces/{namespace}/workspaces/{name}"]["patch"];
  bool field_validation = false;
  for (const auto& p : patch["parameters"]) field_validation |= p["name"] == "fieldValidation";
  EXPECT_TRUE(field_validation);
  EXPECT_FALSE(patch["requestBody"]["content"].contains("application/strategic-merge-patch+json"));
  EXPECT_TRUE(OpenApiV3Index()["paths"].contains("api/v1"));
  EXPECT_FALSE(OpenApiV3("apis/other/v1").has_value());
}

TEST(TableTest, WorkspaceRowsCarryTheSeedColumns) {
  v1::Workspace ws;
  ws.mutable_metadata()->set_name("w");
  ws.mutable_resource()->set_instance_type("Standard_NC6s_v3");
  auto* c = ws.mutable_status()->add_conditions();
  c->set_type("WorkspaceReady");
  c->set_status("True");
  json columns = TableColumns(Workspaces());
  ASSERT_EQ(columns.size(), 10u);
  json row = TableRow(ws, json{{"metadata", {{"name", "w"}}}}, RowObject::kMetadata,
                      absl::Now());
  EXPECT_EQ(row["cells"][0], "w");
  EXPECT_EQ(row["cells"][1], "Standard_NC6s_v3");
  EXPECT_EQ(row["cells"][2], "Unknown");
  EXPECT_EQ(row["cells"][6], "True");
  EXPECT_EQ(row["object"]["kind"], "PartialObjectMetadata");
  int shown = 0;
  for (const auto& col : columns) shown += col["priority"] == 0;
  EXPECT_EQ(shown, 6);
}

}  // namespace
}  // namespace kaito::shim
