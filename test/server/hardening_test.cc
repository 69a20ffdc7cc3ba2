// What a hostile or careless client can try against the API: requests that do not
// decode, fields the server does not know, huge echoed input, secret guessing, secret
// references that are paths, finalizers on an object being deleted, and watches from
// the future. Each was a defect once; each test fails without its fix.
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/unknown_field_set.h>
#include <prometheus/metric_family.h>

#include <set>

#include "common/field_errors.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "server/api_fixture.h"

namespace kaito::server {
namespace {

using ::testing::HasSubstr;

// The value of `family`'s series whose labels include every one of `labels`, as the server's
// registry has it now (0 when there is none).
double Series(ServerApp& app, const std::string& family_name,
              const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& family : app.metrics_registry().Collect()) {
    if (family.name != family_name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      size_t matched = 0;
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        auto it = labels.find(label.name);
        if (it != labels.end() && it->second == label.value) ++matched;
      }
      if (matched < labels.size()) continue;
      if (family.type == prometheus::MetricType::Histogram) {
        return static_cast<double>(metric.histogram.sample_count);
      }
      return metric.counter.value;
    }
  }
  return 0;
}

double Handled(ServerApp& app, const std::string& method, const std::string& code) {
  return Series(app, "kaito_grpc_server_handled_total",
                {{"grpc_method", method}, {"grpc_code", code}});
}

// A length-delimited protobuf field.
std::string Field(int number, const std::string& bytes) {
  std::string out;
  uint32_t tag = static_cast<uint32_t>(number << 3 | 2);
  for (uint64_t v : {static_cast<uint64_t>(tag), static_cast<uint64_t>(bytes.size())}) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  }
  return out + bytes;
}

class HardeningTest : public ApiTest {};

TEST_F(HardeningTest, UndecodableRequestsAreInvalidArgumentAndCounted) {
  v1::CreateWorkspaceRequest valid;
  *valid.mutable_workspace() = MakeWorkspace("cut");
  const std::string whole = valid.SerializeAsString();
  // Cut inside the workspace message: its length prefix promises more than follows.
  const std::string truncated = whole.substr(0, whole.size() / 2);
  grpc::Status s = RawUnaryCall(channel_, "/kaito.v1.WorkspaceService/CreateWorkspace", truncated);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("cannot be decoded as kaito.v1.CreateWorkspaceRequest"));
  // Nesting deeper than protobuf's recursion limit (a Struct value in a Struct value ...).
  std::string deep = "";
  for (int i = 0; i < 200; ++i) deep = Field(1, Field(1, "k") + Field(2, Field(5, deep)));
  s = RawUnaryCall(channel_, "/kaito.v1.WorkspaceService/CreateWorkspace",
                   Field(1, Field(5, Field(2, deep))));
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << s.error_message();
  s = RawUnaryCall(channel_, "/kaito.v1.ConfigService/CreateConfigMap", "\x0a\x05\x1a\x03\x0a\x01");
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("kaito.v1.WriteConfigMapRequest"));
  EXPECT_EQ(Handled(*app_, "CreateWorkspace", "INVALID_ARGUMENT"), 2);
  EXPECT_EQ(Handled(*app_, "CreateConfigMap", "INVALID_ARGUMENT"), 1);
  EXPECT_EQ(Revision(), 0);
}

// Every RPC is in the gRPC series: unary calls of every service (System and Preset
// included) and the watch stream, with its messages and its end.
TEST_F(HardeningTest, EveryMethodIsCountedStreamsIncluded) {
  {
    grpc::ClientContext ctx;
    v1::VersionInfo version;
    ASSERT_TRUE(system_->GetVersion(&ctx, v1::GetVersionRequest(), &version).ok());
  }
  MustCreate(MakeWorkspace("one"));
  {
    WatchReader watch(ws_.get(), v1::WatchWorkspacesRequest());
    ASSERT_TRUE(watch.WaitForEvents(2));  // The workspace, then the bookmark.
    MustCreate(MakeWorkspace("two"));
    ASSERT_TRUE(watch.WaitForEvents(3));
    EXPECT_EQ(Series(*app_, "kaito_grpc_server_started_total",
                     {{"grpc_method", "WatchWorkspaces"}, {"grpc_type", "server_stream"}}),
              1);
  }  // Cancelled by the client.
  const std::map<std::string, std::string> watch = {{"grpc_service", "kaito.v1.WorkspaceService"},
                                                    {"grpc_method", "WatchWorkspaces"},
                                                    {"grpc_type", "server_stream"}};
  EXPECT_TRUE(testing::WaitFor(
      [&] { return Series(*app_, "kaito_grpc_server_handling_seconds", watch) == 1; },
      absl::Seconds(10)))
      << "the stream's end is recorded";
  EXPECT_GE(Series(*app_, "kaito_grpc_server_msg_sent_total", watch), 3);
  auto code = watch;
  code["grpc_code"] = "CANCELLED";
  EXPECT_EQ(Series(*app_, "kaito_grpc_server_handled_total", code), 1);
  EXPECT_EQ(Series(*app_, "kaito_grpc_server_handled_total",
                   {{"grpc_service", "kaito.v1.SystemService"},
                    {"grpc_method", "GetVersion"},
                    {"grpc_type", "unary"},
                    {"grpc_code", "OK"}}),
            1);
  EXPECT_EQ(Handled(*app_, "CreateWorkspace", "OK"), 2);
  EXPECT_EQ(
      Series(*app_, "kaito_grpc_server_msg_received_total", {{"grpc_method", "CreateWorkspace"}}),
      2);
}

TEST_F(HardeningTest, UnknownFieldsAreNeitherStoredNorServedBack) {
  // A workspace with a field number this server has never heard of, inside metadata and
  // at the top.
  v1::Workspace ws = MakeWorkspace("unknown-fields");
  std::string meta = ws.metadata().SerializeAsString() + Field(900, "smuggled");
  ws.clear_metadata();
  std::string body = ws.SerializeAsString() + Field(3, meta) + Field(901, "also smuggled");
  grpc::Status s =
      RawUnaryCall(channel_, "/kaito.v1.WorkspaceService/CreateWorkspace", Field(1, body));
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::Workspace got;
  ASSERT_TRUE(Get("unknown-fields", &got).ok());
  EXPECT_TRUE(got.GetReflection()->GetUnknownFields(got).empty());
  EXPECT_TRUE(got.metadata().GetReflection()->GetUnknownFields(got.metadata()).empty());
  EXPECT_EQ(got.metadata().labels().at("app"), "phi");
  // And after a restart, from the store itself.
  Restart();
  ASSERT_TRUE(Get("unknown-fields", &got).ok());
  EXPECT_EQ(got.SerializeAsString().find("smuggled"), std::string::npos);
}

TEST_F(HardeningTest, ErrorsEchoLongInputOnlyUpToABound) {
  // A name of 20,000 characters: once it was echoed whole in the reply's status header,
  // which then broke the reply itself.
  v1::Workspace ws = MakeWorkspace(std::string(20000, 'a'));
  v1::CreateWorkspaceResponse out;
  grpc::Status s = Create(ws, &out);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("metadata.name"));
  EXPECT_THAT(s.error_message(), HasSubstr("(20000 bytes)"));
  EXPECT_LE(s.error_message().size(), kMaxErrorMessage + 64);
  // A resourceVersion of the same size on delete, and a name on get.
  grpc::ClientContext ctx;
  v1::DeleteWorkspaceRequest del;
  del.set_name("x");
  del.set_resource_version(std::string(20000, '9'));
  v1::DeleteWorkspaceResponse del_out;
  s = ws_->DeleteWorkspace(&ctx, del, &del_out);
  EXPECT_TRUE(s.error_code() == grpc::INVALID_ARGUMENT || s.error_code() == grpc::NOT_FOUND)
      << s.error_message();
  EXPECT_LE(s.error_message().size(), kMaxErrorMessage + 64);
  v1::Workspace got;
  s = Get(std::string(20000, 'b'), &got);
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND);
  EXPECT_LE(s.error_message().size(), 2 * kMaxEchoedValue);
}

TEST_F(HardeningTest, FinalizersCannotBeAddedToAnObjectBeingDeleted) {
  v1::Workspace ws = MakeWorkspace("finalized");
  ws.mutable_metadata()->add_finalizers("example.com/keep");
  MustCreate(ws);
  v1::DeleteWorkspaceResponse deleting;
  ASSERT_TRUE(Delete("finalized", &deleting).ok());
  ASSERT_FALSE(deleting.deleted());
  v1::Workspace current = deleting.workspace();
  ASSERT_TRUE(current.metadata().has_deletion_timestamp());

  v1::Workspace more = current;
  more.mutable_metadata()->add_finalizers("example.com/another");
  v1::UpdateWorkspaceResponse out;
  grpc::Status s = Update(more, &out);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("metadata.finalizers: Forbidden: no new finalizers can be added if the "
                        "object is being deleted, found new finalizers [\"example.com/another\"]"));
  // Removing the last one is allowed, and the object goes.
  v1::Workspace fewer = current;
  fewer.mutable_metadata()->clear_finalizers();
  ASSERT_TRUE(Update(fewer, &out).ok());
  v1::Workspace got;
  EXPECT_EQ(Get("finalized", &got).error_code(), grpc::NOT_FOUND);
}

TEST_F(HardeningTest, WatchFromBeyondTheCurrentRevisionIsRefused) {
  MustCreate(MakeWorkspace("w"));
  v1::WatchWorkspacesRequest req;
  req.set_resource_version(std::to_string(Revision() + 1000));
  WatchReader watch(ws_.get(), req);
  ASSERT_TRUE(watch.WaitDone());
  EXPECT_EQ(watch.status().error_code(), grpc::OUT_OF_RANGE);
  EXPECT_THAT(watch.status().error_message(), HasSubstr("too large resource version"));
  // The current revision itself is fine.
  req.set_resource_version(std::to_string(Revision()));
  WatchReader ok(ws_.get(), req);
  MustCreate(MakeWorkspace("w2"));
  ASSERT_TRUE(ok.WaitForEvents(1));
  EXPECT_EQ(ok.Events()[0].object().metadata().name(), "w2");
}

class SecretOracleTest : public ApiTest {
 protected:
  v1::Secret Secret(const std::string& value, bool immutable = false) {
    v1::Secret s;
    s.mutable_metadata()->set_name("token");
    (*s.mutable_data())["HF_TOKEN"] = value;
    s.set_immutable(immutable);
    return s;
  }
  grpc::Status Write(bool create, const v1::Secret& secret, bool dry_run, v1::Secret* out) {
    grpc::ClientContext ctx;
    v1::WriteSecretRequest req;
    *req.mutable_secret() = secret;
    req.set_dry_run(dry_run);
    return create ? secrets_->CreateSecret(&ctx, req, out) : secrets_->UpdateSecret(&ctx, req, out);
  }
};

TEST_F(SecretOracleTest, AnUpdateRepliesAlikeWhetherOrNotTheValueWasGuessed) {
  v1::Secret created;
  ASSERT_TRUE(Write(true, Secret("the-real-value"), false, &created).ok());
  v1::Secret right, wrong;
  ASSERT_TRUE(Write(false, Secret("the-real-value"), true, &right).ok());
  ASSERT_TRUE(Write(false, Secret("a-wrong-guess"), true, &wrong).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(right, wrong))
      << right.DebugString() << "\nvs\n"
      << wrong.DebugString();
  EXPECT_EQ(right.metadata().generation(), created.metadata().generation() + 1);
  // For real: the correct guess is a write like any other.
  ASSERT_TRUE(Write(false, Secret("the-real-value"), false, &right).ok());
  EXPECT_EQ(right.metadata().generation(), created.metadata().generation() + 1);
  EXPECT_NE(right.metadata().resource_version(), created.metadata().resource_version());
}

TEST_F(SecretOracleTest, AnImmutableSecretRefusesValuesWhateverTheyAre) {
  v1::Secret created;
  ASSERT_TRUE(Write(true, Secret("the-real-value", true), false, &created).ok());
  v1::Secret out;
  grpc::Status right = Write(false, Secret("the-real-value", true), false, &out);
  grpc::Status wrong = Write(false, Secret("a-wrong-guess", true), false, &out);
  EXPECT_EQ(right.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(right.error_code(), wrong.error_code());
  EXPECT_EQ(right.error_message(), wrong.error_message());
  // Metadata still changes without values, and the values stay.
  v1::Secret labelled = Secret("", true);
  labelled.clear_data();
  (*labelled.mutable_metadata()->mutable_labels())["team"] = "a";
  ASSERT_TRUE(Write(false, labelled, false, &out).ok());
  auto stored = app_->secrets()->GetShared("default", "token");
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->data().at("HF_TOKEN"), "the-real-value");
  EXPECT_EQ(stored->metadata().labels().at("team"), "a");
}

TEST_F(ApiTest, SecretReferencesMustBeNamesInTheWorkspaceNamespace) {
  struct Case {
    std::function<void(v1::Workspace&)> mutate;
    const char* field;
  };
  const std::vector<Case> cases = {
      {[](v1::Workspace& ws) {
         ws.mutable_inference()->mutable_preset()->set_name("llama-3.1-8b-instruct");
         ws.mutable_inference()
             ->mutable_preset()
             ->mutable_preset_options()
             ->set_model_access_secret("../other-namespace/token");
       },
       "inference.preset.presetOptions.modelAccessSecret"},
      {[](v1::Workspace& ws) { MakeTuning(ws)->mutable_output()->set_image_push_secret("a/b"); },
       "tuning.output.imagePushSecret"},
      {[](v1::Workspace& ws) {
         MakeTuning(ws)->mutable_input()->add_image_pull_secrets(std::string("nul\0x", 5));
       },
       "tuning.input.imagePullSecrets[0]"},
      {[](v1::Workspace& ws) {
         AddAdapter(ws, "a");
         ws.mutable_inference()->mutable_adapters(0)->mutable_source()->add_image_pull_secrets(
             std::string(254, 'a'));
       },
       "inference.adapters[0].source.imagePullSecrets[0]"},
      {[](v1::Workspace& ws) { ws.mutable_inference()->set_config("x..y"); }, "inference.config"},
  };
  for (const Case& c : cases) {
    v1::Workspace ws = MakeWorkspace("refs");
    c.mutate(ws);
    v1::CreateWorkspaceResponse out;
    grpc::Status s = Create(ws, &out, /*dry_run=*/true);
    EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), HasSubstr(std::string(c.field) + ": Invalid value"))
        << s.error_message();
  }
  EXPECT_EQ(Revision(), 0);
}

// Issue 7 asks for reflection v1 beside gRPC's v1alpha.
TEST_F(ApiTest, ReflectionV1ListsServicesAndResolvesSymbols) {
  namespace rv1 = grpc::reflection::v1;
  auto stub = rv1::ServerReflection::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&ctx);
  auto ask = [&](const rv1::ServerReflectionRequest& req) {
    rv1::ServerReflectionResponse resp;
    EXPECT_TRUE(stream->Write(req));
    EXPECT_TRUE(stream->Read(&resp));
    return resp;
  };
  rv1::ServerReflectionRequest list;
  list.set_list_services("");
  std::set<std::string> names;
  const rv1::ServerReflectionResponse listed = ask(list);
  for (const auto& s : listed.list_services_response().service()) names.insert(s.name());
  EXPECT_TRUE(names.count("kaito.v1.WorkspaceService"));
  EXPECT_TRUE(names.count("kaito.v1.NodeService"));
  EXPECT_TRUE(names.count("grpc.reflection.v1.ServerReflection"));

  rv1::ServerReflectionRequest symbol;
  symbol.set_file_containing_symbol("kaito.v1.WorkspaceService.CreateWorkspace");
  std::set<std::string> files;
  const rv1::ServerReflectionResponse found = ask(symbol);
  for (const std::string& bytes : found.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto proto;
    ASSERT_TRUE(proto.ParseFromString(bytes));
    files.insert(proto.name());
  }
  EXPECT_TRUE(files.count("kaito/v1/workspace.proto"));
  EXPECT_TRUE(files.count("kaito/v1/meta.proto")) << "with what it imports";
  // Within a stream each file goes once: asking again for a symbol of the same file
  // sends nothing new.
  symbol.set_file_containing_symbol("kaito.v1.Workspace");
  EXPECT_EQ(ask(symbol).file_descriptor_response().file_descriptor_proto_size(), 0);

  rv1::ServerReflectionRequest missing;
  missing.set_file_containing_symbol("kaito.v1.NoSuchThing");
  rv1::ServerReflectionResponse error = ask(missing);
  EXPECT_EQ(error.error_response().error_code(), grpc::NOT_FOUND);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace kaito::server
