#include "common/manifest_codec.h"

#include <google/protobuf/util/message_differencer.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kaito/v1/config.pb.h"
#include "kaito/v1/workspace.pb.h"

namespace kaito {
namespace {

using ::testing::HasSubstr;
using namespace std::string_literals;

const v1::Workspace& AsWorkspace(const ManifestDocument& d) {
  return static_cast<const v1::Workspace&>(*d.object);
}

TEST(ManifestCodecTest, ParsesKaitoWorkspaceWithoutSpec) {
  auto docs = ParseManifests(R"(
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: workspace-phi-4
  labels: {team: ml}
  annotations:
    kaito.sh/runtime: vllm
resource:
  count: 2
  instanceType: "Standard_NC24ads_A100_v4"
  labelSelector:
    matchLabels:
      apps: phi-4
    matchExpressions:
      - {key: tier, operator: In, values: [a, b]}
inference:
  preset:
    name: phi-4
    presetOptions:
      modelAccessSecret: hf-token
  adapters:
    - source:
        name: adapter-a
        image: "example.com/adapter:1"
      strength: "0.5"
  template:
    spec:
      containers:
        - name: c
          image: nginx
          ports: [{containerPort: 80}]
          env: [{name: A, value: "1"}]
)");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 1u);
  ASSERT_TRUE((*docs)[0].status.ok()) << (*docs)[0].status;
  const auto& ws = AsWorkspace((*docs)[0]);
  EXPECT_EQ(ws.metadata().name(), "workspace-phi-4");
  EXPECT_EQ(ws.metadata().annotations().at("kaito.sh/runtime"), "vllm");
  EXPECT_EQ(ws.resource().count(), 2);
  EXPECT_TRUE(ws.resource().has_count());
  EXPECT_EQ(ws.resource().instance_type(), "Standard_NC24ads_A100_v4");
  EXPECT_EQ(ws.resource().label_selector().match_labels().at("apps"), "phi-4");
  EXPECT_EQ(ws.resource().label_selector().match_expressions(0).values_size(), 2);
  EXPECT_EQ(ws.inference().preset().preset_options().model_access_secret(), "hf-token");
  EXPECT_EQ(ws.inference().adapters(0).strength(), "0.5");
  const auto& containers =
      ws.inference().template_().fields().at("spec").struct_value().fields().at("containers");
  EXPECT_EQ(containers.list_value().values(0).struct_value().fields().at("image").string_value(),
            "nginx");
}

TEST(ManifestCodecTest, MultiDocumentWithConfigMapAndSecret) {
  auto docs = ParseManifests(R"(
apiVersion: v1
kind: Secret
metadata: {name: hf-token}
type: Opaque
data:
  HF_TOKEN: aGVsbG8=
stringData:
  OTHER: plain
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ds-inference-params
data:
  inference_config.yaml: |
    vllm:
      max-model-len: 131072
---
# an empty document is skipped
)");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 2u);
  const auto& secret = static_cast<const v1::Secret&>(*(*docs)[0].object);
  EXPECT_EQ(secret.data().at("HF_TOKEN"), "hello");
  EXPECT_EQ(secret.string_data().at("OTHER"), "plain");
  const auto& cm = static_cast<const v1::ConfigMap&>(*(*docs)[1].object);
  EXPECT_THAT(cm.data().at("inference_config.yaml"), HasSubstr("max-model-len: 131072"));
}

TEST(ManifestCodecTest, UnknownFieldNamesItsPath) {
  auto docs = ParseManifests(R"(
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: w}
resource:
  instanceTyp: Standard_NC24ads_A100_v4
  labelSelector: {matchLabels: {a: b}, bogus: 1}
spec: {}
)");
  ASSERT_TRUE(docs.ok());
  const absl::Status& s = (*docs)[0].status;
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("document 1 (Workspace \"w\")"));
  EXPECT_THAT(s.message(), HasSubstr("resource.instanceTyp: unknown field \"instanceTyp\""));
  EXPECT_THAT(s.message(), HasSubstr("resource.labelSelector.bogus: unknown field"));
  EXPECT_THAT(s.message(), HasSubstr("spec: unknown field \"spec\""));
  EXPECT_EQ((*docs)[0].object, nullptr);
}

TEST(ManifestCodecTest, WrongTypesAreErrors) {
  auto docs = ParseManifests(R"(
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: w
  labels: {count: 3}
resource:
  count: "2"
  instanceType: [a]
  preferredNodes: node-1
inference:
  adapters:
    - source: {name: a}
      strength: 0.5
)");
  ASSERT_TRUE(docs.ok());
  const std::string msg((*docs)[0].status.message());
  EXPECT_THAT(msg, HasSubstr("metadata.labels[count]: Invalid type: expected string, got number"));
  EXPECT_THAT(msg, HasSubstr("resource.count: Invalid type: expected integer, got string"));
  EXPECT_THAT(msg, HasSubstr("resource.instanceType: Invalid type: expected string, got array"));
  EXPECT_THAT(msg, HasSubstr("resource.preferredNodes: Invalid type: expected array, got string"));
  EXPECT_THAT(msg, HasSubstr("inference.adapters[0].strength: Invalid type: expected string, got number"));
}

TEST(ManifestCodecTest, OutOfRangeIntegerAndBadBase64) {
  auto docs = ParseManifests(R"(
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: w}
resource: {count: 99999999999}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
data: {k: "not base64!"}
)");
  ASSERT_TRUE(docs.ok());
  EXPECT_THAT((*docs)[0].status.message(), HasSubstr("resource.count: Invalid value: 99999999999: out of range"));
  EXPECT_THAT((*docs)[1].status.message(), HasSubstr("data[k]: Invalid value: illegal base64 data"));
}

TEST(ManifestCodecTest, UnsupportedKindFailsOnlyItsDocument) {
  auto docs = ParseManifests(R"(
apiVersion: kaito.sh/v1alpha1
kind: RAGEngine
metadata: {name: rag}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pvc}
---
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: ok}
)");
  ASSERT_TRUE(docs.ok());
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_EQ((*docs)[0].status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT((*docs)[0].status.message(), HasSubstr("kind RAGEngine (kaito.sh/v1alpha1) is not supported"));
  EXPECT_THAT((*docs)[1].status.message(), HasSubstr("document 2 (PersistentVolumeClaim \"pvc\")"));
  EXPECT_TRUE((*docs)[2].status.ok());
}

TEST(ManifestCodecTest, MalformedYamlNamesLine) {
  auto docs = ParseManifests("apiVersion: v1\nkind: [unclosed\n");
  ASSERT_FALSE(docs.ok());
  EXPECT_THAT(docs.status().message(), HasSubstr("malformed YAML at line"));
}

TEST(ManifestCodecTest, MissingKindOrNonMapDocument) {
  auto docs = ParseManifests("metadata: {name: x}\n---\n- a\n- b\n");
  ASSERT_TRUE(docs.ok());
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_THAT((*docs)[0].status.message(), HasSubstr("apiVersion and kind are required"));
  EXPECT_THAT((*docs)[1].status.message(), HasSubstr("expected a mapping"));
}

TEST(ManifestCodecTest, DeepNestingIsRejectedNotCrashing) {
  std::string deep = "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: w}\n"
                     "inference:\n  template: ";
  for (int i = 0; i < 100; ++i) deep += "{a: ";
  deep += "1";
  for (int i = 0; i < 100; ++i) deep += "}";
  deep += "\n";
  auto docs = ParseManifests(deep);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_THAT((*docs)[0].status.message(), HasSubstr("nesting is deeper than"));
  // Far deeper than the YAML parser's own guard: an error, not a stack overflow.
  std::string deeper(100000, '[');
  EXPECT_FALSE(ParseManifests(deeper).ok());
}

TEST(ManifestCodecTest, AliasExpansionIsBounded) {
  // "Billion laughs": each level doubles; the node budget stops it.
  std::string bomb = "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: w}\n"
                     "x0: &a0 [1, 1]\n";
  for (int i = 1; i < 40; ++i) {
    bomb += "x" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" +
            std::to_string(i - 1) + ", *a" + std::to_string(i - 1) + "]\n";
  }
  bomb += "inference: {template: {spec: *a39}}\n";
  auto docs = ParseManifests(bomb);
  ASSERT_TRUE(docs.ok());
  EXPECT_FALSE((*docs)[0].status.ok());
}

TEST(ManifestCodecTest, SyntaxErrorNamesItsDocument) {
  auto docs = ParseManifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
                             "apiVersion: v1\nkind: [unclosed\n");
  ASSERT_FALSE(docs.ok());
  EXPECT_THAT(docs.status().message(), HasSubstr("document 2: malformed YAML at line 7"));
  std::string deeper(100000, '[');
  EXPECT_THAT(ParseManifests(deeper).status().message(),
              HasSubstr("document 1: malformed YAML at line 1, column "));
}

TEST(ManifestCodecTest, UnterminatedQuotedStringIsMalformedNotPartOfTheValue) {
  // yaml-cpp 0.7 would run each of these strings to the end of the input, so that the
  // lines after it became part of the value (and were stored).
  for (const char* yaml : {
           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"abc\n  namespace: default\n"
           "data:\n  a: b\n",
           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 'abc\n  namespace: default\n",
           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: &n \"abc\n  namespace: x\n",
           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"ab\\\"c\n  namespace: x\n",
           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 'it''s\n  namespace: x\n",
       }) {
    auto docs = ParseManifests(yaml);
    ASSERT_FALSE(docs.ok()) << yaml;
    EXPECT_EQ(docs.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(docs.status().message(), HasSubstr("document 1: malformed YAML at line 4, column "))
        << yaml;
    EXPECT_THAT(docs.status().message(), HasSubstr("never closed")) << yaml;
  }
  // After a byte order mark (yaml-cpp's offsets start after it) and after a zero byte.
  for (const std::string& yaml :
       {"\xEF\xBB\xBF"s + "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"abc\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"a\0b\"}\n"s +
            "data:\n  k: \"abc\n  j: x\n"}) {
    auto docs = ParseManifests(yaml);
    ASSERT_FALSE(docs.ok());
    EXPECT_THAT(docs.status().message(), HasSubstr("never closed"));
  }
  // In a later document, and in a value of ConfigMap data.
  auto docs = ParseManifests(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\n"
      "kind: ConfigMap\nmetadata: {name: b}\ndata:\n  config: \"x: 1\n  other: 2\n");
  ASSERT_FALSE(docs.ok());
  EXPECT_THAT(docs.status().message(),
              HasSubstr("document 2: malformed YAML at line 9, column 11"));
}

TEST(ManifestCodecTest, ClosedQuotedStringsOfEveryFormParse) {
  auto docs = ParseManifests(R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: "quoted"   # a "comment" with quotes
  labels: {"a": 'b', c: "d\"e", f: 'it''s'}
  annotations:
    plain: don't "stop" here
    escaped: "back\\slash"
    tagged: !!str "tagged"
    anchored: &x 'anchored'
    alias: *x
    multi: "line one
      line two"
    block: |
      a "quote that never closes
      and 'another
    folded: >-
      it's
    empty: ""
    single: ''
data: {"k": "v", 'k2': [not, a, string]}
---
- "item"
- ['a', "b", !!str "c"]
)");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 2u);
  // Only `data.k2` is wrong (a list for a string); everything before it was read.
  EXPECT_THAT((*docs)[0].status.message(), HasSubstr("data[k2]: Invalid type: expected string"));
  auto ok = ParseManifests(R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: "quoted"
  annotations:
    plain: don't "stop" here
    escaped: "back\\slash\""
    anchored: &x 'it''s'
    alias: *x
    multi: "line one
      line two"
    block: |
      a "quote that never closes
)");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_TRUE((*ok)[0].status.ok()) << (*ok)[0].status;
  const auto& cm = static_cast<const v1::ConfigMap&>(*(*ok)[0].object);
  EXPECT_EQ(cm.metadata().name(), "quoted");
  EXPECT_EQ(cm.metadata().annotations().at("plain"), "don't \"stop\" here");
  EXPECT_EQ(cm.metadata().annotations().at("escaped"), "back\\slash\"");
  EXPECT_EQ(cm.metadata().annotations().at("alias"), "it's");
  EXPECT_EQ(cm.metadata().annotations().at("multi"), "line one line two");
  EXPECT_EQ(cm.metadata().annotations().at("block"), "a \"quote that never closes\n");
}

TEST(ManifestCodecTest, DuplicateKeyFailsItsDocumentWithPathAndLines) {
  auto docs = ParseManifests(R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: one
  name: two
data: {a: "1", b: "2", a: "3"}
---
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: w}
inference:
  template:
    spec:
      containers:
        - name: a
          image: x
        - name: b
          image: y
          name: c
---
apiVersion: v1
kind: ConfigMap
metadata: {name: fine, labels: {name: x}}
data: {name: y}
)");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_EQ((*docs)[0].status.message(),
            "document 1 (ConfigMap \"one\") is invalid: metadata.name: duplicate key \"name\" at "
            "line 5, already set at line 4; data.a: duplicate key \"a\" at line 6, already set at "
            "line 6");
  EXPECT_EQ((*docs)[0].object, nullptr);
  EXPECT_THAT((*docs)[1].status.message(),
              HasSubstr("inference.template.spec.containers[1].name: duplicate key \"name\" at "
                        "line 19, already set at line 17"));
  // The same key in different mappings is no duplicate.
  EXPECT_TRUE((*docs)[2].status.ok()) << (*docs)[2].status;
}

TEST(ManifestCodecTest, DuplicateKindOrKeyThroughAnAliasIsCaught) {
  auto docs = ParseManifests(
      "apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: a}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: &n name}\ndata: {name: x, *n : y}\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_THAT((*docs)[0].status.message(),
              HasSubstr("kind: duplicate key \"kind\" at line 3, already set at line 2"));
  EXPECT_THAT((*docs)[1].status.message(), HasSubstr("data.name: duplicate key \"name\""));
}

TEST(ManifestCodecTest, DocumentsWithAnchorsAndNoKindFailCleanly) {
  // Each fails its own document; none takes the stream or the process down.
  auto docs = ParseManifests(R"(base: &base {name: x}
other: *base
---
&list [1, *list]
---
&self {key: *self}
---
? &k {a: 1}
: v
*k : w
---
metadata: &m {name: *m, namespace: *m}
---
apiVersion: &v v1
metadata: {name: *v}
---
&s scalar
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ok}
)");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 8u);
  for (size_t i = 0; i + 1 < docs->size(); ++i) {
    EXPECT_FALSE((*docs)[i].status.ok()) << i;
    EXPECT_EQ((*docs)[i].object, nullptr) << i;
  }
  EXPECT_TRUE(docs->back().status.ok()) << docs->back().status;
}

TEST(ManifestCodecTest, AliasBombOfStringsStopsAtTheLargestRequest) {
  // 10 KB, then four levels of ten aliases each: 100 MB once expanded, in 10,000 strings
  // (well under the node budget).
  std::string bomb = "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: w}\n"
                     "inference:\n  template:\n    a0: &a0 \"" + std::string(10000, 'x') + "\"\n";
  for (int i = 1; i <= 4; ++i) {
    bomb += "    a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) bomb += (j ? ", *a" : "*a") + std::to_string(i - 1);
    bomb += "]\n";
  }
  const absl::Time start = absl::Now();
  auto docs = ParseManifests(bomb);
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_FALSE((*docs)[0].status.ok());
  EXPECT_THAT((*docs)[0].status.message(),
              HasSubstr("document is too large: its content, with YAML aliases expanded, passes " +
                        std::to_string(kMaxDocumentBytes) + " bytes"));
  EXPECT_EQ((*docs)[0].object, nullptr);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(ManifestCodecTest, ContentLargerThanTheLargestRequestFailsWithoutAliases) {
  std::string big = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  a: \"" +
                    std::string(kMaxDocumentBytes / 2, 'x') + "\"\n  b: \"" +
                    std::string(kMaxDocumentBytes / 2, 'y') + "\"\n";
  auto docs = ParseManifests(big);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_THAT((*docs)[0].status.message(), HasSubstr("data[b]: document is too large"));
  // Just under it is read (the server judges it against the object limit).
  std::string fits = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  a: \"" +
                     std::string(kMaxObjectBytes - 100, 'x') + "\"\n";
  docs = ParseManifests(fits);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_TRUE((*docs)[0].status.ok()) << (*docs)[0].status;
}

TEST(ManifestCodecTest, ErrorsPerDocumentAreBounded) {
  // An alias of a mapping of unknown fields, used many times: the errors stop.
  std::string yaml = "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: w}\n"
                     "resource: {labelSelector: {matchExpressions: [";
  yaml += "&e {bogus: 1, other: 2}";
  for (int i = 0; i < 5000; ++i) yaml += ", *e";
  yaml += "]}}\n";
  auto docs = ParseManifests(yaml);
  ASSERT_TRUE(docs.ok()) << docs.status();
  const std::string message(docs->front().status.message());
  EXPECT_THAT(message, HasSubstr("too many errors"));
  EXPECT_LT(message.size(), 64u * 1024) << message.size();
}

// Found by test/fuzz/manifest_codec_fuzzer: yaml-cpp returned empty documents from ",a"
// forever without reading on, so that `kaitoctl apply` hung, its memory growing by
// gigabytes a second until it was killed. The same loop is the crash on "documents with
// anchors and no kind" of issue 8 ("&a ,": std::bad_alloc, abort).
TEST(ManifestCodecTest, InputWhereTheParserMakesNoProgressIsMalformed) {
  auto docs = ParseManifests(",a");
  ASSERT_FALSE(docs.ok());
  EXPECT_EQ(docs.status().message(),
            "document 1: malformed YAML at line 1, column 1: no YAML node can start here");
  // The others stop at the document yaml-cpp starts without `---` before they loop.
  for (const char* yaml :
       {"apiVersion: v1\n---\n,x\n", "&a ,", "!t &a ,", "x: &a 1\n---\n&b ,"}) {
    docs = ParseManifests(yaml);
    ASSERT_FALSE(docs.ok()) << yaml;
    EXPECT_THAT(docs.status().message(), HasSubstr(": malformed YAML at line ")) << yaml;
  }
}

// yaml-cpp 0.7 starts a new document, without `---`, where a mapping follows a block
// sequence at the left margin; that is not YAML, and the second "document" would apply.
TEST(ManifestCodecTest, ADocumentWithoutItsMarkerIsMalformed) {
  auto docs = ParseManifests(
      "- stray\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n");
  ASSERT_FALSE(docs.ok());
  EXPECT_THAT(docs.status().message(),
              HasSubstr("document 2: malformed YAML at line 2, column 1: a new document must "
                        "start with ---"));
  // Markers, and a document after `...`, comments and blank lines between, are fine.
  docs = ParseManifests(
      "a: 1\n...\n# next\n\nb: 2\n--- # c\nc: 3\n---\n- d\n--- e\n...   \n\n- f\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(docs->size(), 6u);
}

// Found by the fuzzer: invalid UTF-8 was accepted into string fields, which protobuf
// cannot carry (and `get -o yaml` printed something else).
TEST(ManifestCodecTest, InvalidUtf8InAStringOrKeyFailsItsDocument) {
  auto docs = ParseManifests(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {\"\x9a\x8fps\": x}}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: \"\xc3\x28\"}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata: {k: \"caf\xc3\xa9 \\u00e9\"}\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_THAT((*docs)[0].status.message(),
              HasSubstr("metadata.labels: map keys must be valid UTF-8"));
  EXPECT_THAT((*docs)[1].status.message(), HasSubstr("data[k]: Invalid value: not valid UTF-8"));
  ASSERT_TRUE((*docs)[2].status.ok()) << (*docs)[2].status;
  EXPECT_EQ(static_cast<const v1::ConfigMap&>(*(*docs)[2].object).data().at("k"),
            "caf\xc3\xa9 \xc3\xa9");
}

// Found by the fuzzer: `MessageToYaml` cut a string at a NUL and printed control
// characters inside a block literal, so that what `get -o yaml` printed applied as
// something else.
TEST(ManifestCodecTest, StringsOfAnyCharactersRoundTripThroughYaml) {
  v1::ConfigMap cm;
  cm.set_api_version("v1");
  cm.set_kind("ConfigMap");
  cm.mutable_metadata()->set_name("chars");
  auto& data = *cm.mutable_data();
  data["nul"] = std::string("a\0b\n", 4);
  data["controls"] = "bell\a and \x13 and del \x7f\n";
  data["tab"] = "a\tb\n";
  data["cr"] = "a\r\nb\n";
  data["nel"] = "line\xc2\x85next\n";
  data["ls"] = "line\xe2\x80\xa8next\n";
  data["bom"] = "\xef\xbb\xbf" "x";
  data["indented-first"] = "  indented\nthen not\n";
  data["blank-then-indented"] = "\n  indented\n";
  data["spaces-line"] = "   \nx\n";
  data["plain-literal"] = "line one\nline two\n";
  data["two-newlines"] = "x\n\n";
  data["only-newline"] = "\n";
  data["empty"] = "";
  data["null-word"] = "null";
  // Found by the fuzzer: a key past YAML's 1024-character simple keys printed as one.
  auto& annotations = *cm.mutable_metadata()->mutable_annotations();
  annotations[std::string(2000, 'k')] = "long key";
  annotations[std::string(300, '\x01')] = "escaped key";
  annotations[std::string(500, 'a')] = "simple key";
  const std::string yaml = MessageToYaml(cm);
  auto docs = ParseManifests(yaml);
  ASSERT_TRUE(docs.ok()) << docs.status() << "\n" << yaml;
  ASSERT_EQ(docs->size(), 1u) << yaml;
  ASSERT_TRUE((*docs)[0].status.ok()) << (*docs)[0].status << "\n" << yaml;
  const auto& back = static_cast<const v1::ConfigMap&>(*(*docs)[0].object);
  for (const auto& [key, value] : cm.data()) {
    ASSERT_TRUE(back.data().contains(key)) << key << "\n" << yaml;
    EXPECT_EQ(back.data().at(key), value) << key << "\n" << yaml;
  }
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, cm)) << yaml;
  // Ordinary text still prints as a block literal.
  EXPECT_THAT(yaml, HasSubstr("plain-literal: |\n    line one\n    line two\n"));
}

TEST(ManifestCodecTest, OversizedManifestIsRejected) {
  std::string big(kMaxManifestBytes + 1, ' ');
  EXPECT_EQ(ParseManifests(big).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ManifestCodecTest, YamlRoundTrip) {
  v1::Workspace ws;
  ws.set_api_version("kaito.sh/v1beta1");
  ws.set_kind("Workspace");
  ws.mutable_metadata()->set_name("w");
  (*ws.mutable_metadata()->mutable_labels())["version"] = "1.0";
  ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
  ws.mutable_resource()->set_count(1);
  (*ws.mutable_resource()->mutable_label_selector()->mutable_match_labels())["on"] = "true";
  ws.mutable_inference()->add_adapters()->set_strength("1.0");
  ws.mutable_inference()->mutable_adapters(0)->mutable_source()->set_name("a");
  ws.mutable_inference()->set_config("line1\nline2");
  const std::string yaml = MessageToYaml(ws);
  auto docs = ParseManifests(yaml);
  ASSERT_TRUE(docs.ok()) << docs.status() << "\n" << yaml;
  ASSERT_TRUE((*docs)[0].status.ok()) << (*docs)[0].status << "\n" << yaml;
  EXPECT_EQ(AsWorkspace((*docs)[0]).SerializeAsString(), ws.SerializeAsString()) << yaml;
}

}  // namespace
}  // namespace kaito
