// The reflection JSON writer (common/message_json.h) against protobuf's own printer: the
// same JSON for every example manifest and for messages built to reach each corner (escapes,
// 64-bit integers, enums by name and number, optional zeros, timestamps at each precision,
// free-form Struct numbers), maps sorted, and the printer's fallback where the writer stops.
#include "common/message_json.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/manifest_codec.h"
#include "kaito/v1/config.pb.h"
#include "kaito/v1/workspace.pb.h"
#include "support/process.h"

namespace kaito {
namespace {

namespace fs = std::filesystem;

// Both writers' output as JSON values (objects compare regardless of member order).
void ExpectSameAsProtobuf(const google::protobuf::Message& m, const std::string& what) {
  auto text = WriteMessageJson(m);
  ASSERT_TRUE(text.has_value()) << what;
  const nlohmann::json ours = nlohmann::json::parse(*text);
  const nlohmann::json theirs = nlohmann::json::parse(MessageToJsonViaProtobuf(m).dump());
  EXPECT_EQ(ours, theirs) << what << "\nours:   " << *text
                          << "\ntheirs: " << MessageToJsonViaProtobuf(m).dump();
}

v1::Workspace Parse(const std::string& text_proto) {
  v1::Workspace w;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text_proto, &w)) << text_proto;
  return w;
}

TEST(MessageJsonTest, EveryExampleWorkspaceAsProtobufPrintsIt) {
  std::vector<fs::path> roots = {fs::path(testing::Env("KAITO_SOURCE_DIR")) / "examples"};
  fs::path shared = testing::Env("KAITO_EXAMPLES_DIR");
  if (!fs::is_directory(shared)) shared = "/work/shared/kaito-examples";
  if (fs::is_directory(shared)) roots.push_back(shared);
  int compared = 0;
  for (const fs::path& root : roots) {
    if (!fs::is_directory(root)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (!entry.is_regular_file() || entry.path().extension() != ".yaml") continue;
      auto docs = ParseManifests(testing::ReadFile(entry.path()));
      if (!docs.ok()) continue;
      for (const auto& doc : *docs) {
        if (!doc.status.ok()) continue;
        ExpectSameAsProtobuf(*doc.object, entry.path().string() + " " + doc.Describe());
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 5);
}

TEST(MessageJsonTest, EveryCornerAsProtobufPrintsIt) {
  const v1::Workspace w = Parse(R"pb(
    api_version: "kaito.sh/v1beta1"
    kind: "Workspace"
    metadata {
      name: "q\"uote\\back\nnew\ttab\001ctl\177del/slash <&> \303\251\342\202\254\360\237\230\200"
      labels { key: "b" value: "2" }
      labels { key: "a" value: "1" }
      labels { key: "" value: "" }
      generation: 9223372036854775807
      creation_timestamp { seconds: 1700000000 }
      deletion_timestamp { seconds: 1700000000 nanos: 5000000 }
      finalizers: "x"
      finalizers: ""
    }
    inference {
      template {
        fields {
          key: "n"
          value {
            list_value {
              values { number_value: 3 }
              values { number_value: 0.1 }
              values { number_value: -0.0 }
              values { number_value: 1e21 }
              values { number_value: 1e15 }
              values { number_value: 123456789.125 }
              values { number_value: -2.5e-7 }
              values { bool_value: false }
              values { null_value: NULL_VALUE }
              values { string_value: "" }
              values { struct_value {} }
              values { list_value {} }
            }
          }
        }
        fields {
          key: "z"
          value {
            struct_value {
              fields {
                key: "k"
                value { string_value: "v" }
              }
            }
          }
        }
      }
    }
    status {
      conditions {
        type: "Ready"
        observed_generation: -5
        last_transition_time { seconds: 0 nanos: 1000 }
      }
      conditions { last_transition_time { seconds: 253402300799 nanos: 999999999 } }
      target_node_count: -2147483648
      performance {}
    }
    termination_grace_period_seconds: 0
  )pb");
  ExpectSameAsProtobuf(w, "corners");

  // Optional zero printed; a present empty message as {}; the unset ones absent.
  const std::string text = *WriteMessageJson(w);
  EXPECT_NE(text.find("\"terminationGracePeriodSeconds\":0"), std::string::npos) << text;
  EXPECT_NE(text.find("\"performance\":{}"), std::string::npos) << text;
  EXPECT_EQ(text.find("\"tuning\""), std::string::npos) << text;
  // Maps sorted by key, as Kubernetes prints them.
  EXPECT_NE(text.find(R"("labels":{"":"","a":"1","b":"2"})"), std::string::npos) << text;
  // Escapes as nlohmann::json writes them.
  EXPECT_NE(text.find(R"(q\"uote\\back\nnew\ttab\u0001ctl)"), std::string::npos) << text;

  v1::ConfigMap cm;
  (*cm.mutable_data())["k"] = "v";
  (*cm.mutable_binary_data())["bin"] = std::string("\x00\xff\x10 ok", 6);
  ExpectSameAsProtobuf(cm, "configmap with bytes");

  v1::WorkspaceEvent event;
  event.set_type(v1::BOOKMARK);
  ExpectSameAsProtobuf(event, "enum by name");
  event.set_type(static_cast<v1::EventType>(77));
  ExpectSameAsProtobuf(event, "enum without a name");
}

TEST(MessageJsonTest, SameTextAsTheCodecPrintedWithoutMaps) {
  // Without maps the member order is the field order for both: byte for byte equal.
  v1::Workspace w = Parse(R"pb(
    kind: "Workspace"
    metadata { name: "w" namespace: "default" resource_version: "12" generation: 3 }
    resource { instance_type: "Standard_NC24ads_A100_v4" }
    status { worker_nodes: "n1" target_node_count: 1 state: "Ready" }
  )pb");
  EXPECT_EQ(*WriteMessageJson(w), MessageToJsonViaProtobuf(w).dump());
  EXPECT_EQ(MessageToJson(w, false), MessageToJsonViaProtobuf(w).dump());
}

TEST(MessageJsonTest, HeadComesFirstAndReplacesItsFields) {
  v1::Workspace w = Parse(R"pb(api_version: "old"
                               kind: "Old"
                               metadata { name: "w" })pb");
  EXPECT_EQ(*WriteMessageJson(w, {{"apiVersion", "kaito.sh/v1alpha1"}, {"kind", "Workspace"}}),
            R"({"apiVersion":"kaito.sh/v1alpha1","kind":"Workspace","metadata":{"name":"w"}})");
}

TEST(MessageJsonTest, WhatOnlyProtobufPrintsFallsBackToIt) {
  v1::Workspace bad_utf8 = Parse(R"pb(metadata { name: "ok" })pb");
  bad_utf8.mutable_metadata()->set_name("\xc3\x28");
  EXPECT_FALSE(WriteMessageJson(bad_utf8).has_value());
  EXPECT_EQ(MessageToJson(bad_utf8, false), MessageToJsonViaProtobuf(bad_utf8).dump());

  v1::Workspace far = Parse(R"pb(metadata { creation_timestamp { seconds: 253402300800 } })pb");
  EXPECT_FALSE(WriteMessageJson(far).has_value());

  v1::Workspace nan;
  (*nan.mutable_inference()->mutable_template_()->mutable_fields())["x"].set_number_value(
      std::numeric_limits<double>::quiet_NaN());
  EXPECT_FALSE(WriteMessageJson(nan).has_value());
  EXPECT_EQ(MessageToJson(nan, false), MessageToJsonViaProtobuf(nan).dump());
}

}  // namespace
}  // namespace kaito
