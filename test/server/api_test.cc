// The Workspace, ConfigMap and Secret APIs over real gRPC against an in-process
// kaito-server with the SQLite store.
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "common/k8s_names.h"

#include "server/api_fixture.h"

namespace kaito::server {
namespace {

using ::testing::HasSubstr;


TEST_F(ApiTest, CreateSetsServerOwnedMetadataAndGetReturnsIt) {
  v1::Workspace in = MakeWorkspace("workspace-phi-4");
  in.mutable_metadata()->set_uid("client-chosen");
  in.mutable_metadata()->set_resource_version("77");
  in.mutable_status()->set_state("Ready");  // Status is the controller's.
  v1::Workspace created = MustCreate(in);
  const auto& m = created.metadata();
  EXPECT_EQ(m.namespace_(), "default");
  EXPECT_EQ(m.resource_version(), "1");
  EXPECT_EQ(m.generation(), 1);
  EXPECT_EQ(m.uid().size(), 36u);
  EXPECT_NE(m.uid(), "client-chosen");
  EXPECT_TRUE(m.has_creation_timestamp());
  EXPECT_EQ(created.api_version(), "kaito.sh/v1beta1");
  EXPECT_EQ(created.kind(), "Workspace");
  EXPECT_FALSE(created.has_status());
  v1::Workspace got;
  ASSERT_TRUE(Get("workspace-phi-4", &got).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, created));
}

TEST_F(ApiTest, KaitoSchemaDefaultsAreStored) {
  v1::Workspace ws = MakeWorkspace("defaults");
  ws.mutable_resource()->clear_count();
  v1::Workspace created = MustCreate(ws);
  EXPECT_TRUE(created.resource().has_count());
  EXPECT_EQ(created.resource().count(), 1);
  // Re-applying the same manifest (still without count) changes nothing.
  ws.mutable_metadata()->set_resource_version(created.metadata().resource_version());
  v1::UpdateWorkspaceResponse out;
  ASSERT_TRUE(Update(ws, &out).ok());
  EXPECT_EQ(out.workspace().metadata().resource_version(), created.metadata().resource_version());
  v1::Workspace alpha = MakeWorkspace("alpha");
  alpha.set_api_version("kaito.sh/v1alpha1");
  alpha.mutable_resource()->clear_instance_type();
  EXPECT_EQ(MustCreate(alpha).resource().instance_type(), "Standard_NC24ads_A100_v4");
}

TEST_F(ApiTest, CreateTwiceIsAlreadyExists) {
  MustCreate(MakeWorkspace("a"));
  v1::CreateWorkspaceResponse out;
  grpc::Status s = Create(MakeWorkspace("a"), &out);
  EXPECT_EQ(s.error_code(), grpc::ALREADY_EXISTS);
  EXPECT_EQ(s.error_message(), "workspaces \"a\" already exists");
}

TEST_F(ApiTest, InvalidInputListsEveryProblemAndStoresNothing) {
  v1::Workspace bad = MakeWorkspace("phi-3.5-mini");
  bad.set_api_version("kaito.sh/v2");
  (*bad.mutable_metadata()->mutable_labels())["bad key"] = "v";
  (*bad.mutable_resource()->mutable_label_selector()->mutable_match_labels())["x"] = "not valid!";
  bad.mutable_resource()->set_count(-1);
  bad.set_termination_grace_period_seconds(-5);
  v1::CreateWorkspaceResponse out;
  grpc::Status s = Create(bad, &out);
  ASSERT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("Workspace \"phi-3.5-mini\" is invalid"));
  EXPECT_THAT(s.error_message(), HasSubstr("metadata.name: Invalid value: \"phi-3.5-mini\""));
  EXPECT_THAT(s.error_message(), HasSubstr("apiVersion: Unsupported value: \"kaito.sh/v2\""));
  EXPECT_THAT(s.error_message(), HasSubstr("metadata.labels: Invalid value: \"bad key\""));
  EXPECT_EQ(Revision(), 0);
  EXPECT_EQ(List("").items_size(), 0);
  // The label selector problems are reported once the metadata is right.
  bad.mutable_metadata()->set_name("ok");
  bad.set_api_version("");
  bad.mutable_metadata()->mutable_labels()->clear();
  s = Create(bad, &out);
  EXPECT_THAT(s.error_message(), HasSubstr("resource.labelSelector.matchLabels[x]: Invalid value"));
  EXPECT_THAT(s.error_message(), HasSubstr("resource.count: Invalid value: -1"));
  EXPECT_THAT(s.error_message(), HasSubstr("terminationGracePeriodSeconds: Invalid value: -5"));
  EXPECT_EQ(Revision(), 0);
}

TEST_F(ApiTest, DryRunValidatesWithoutStoring) {
  v1::CreateWorkspaceResponse out;
  ASSERT_TRUE(Create(MakeWorkspace("dry"), &out, /*dry_run=*/true).ok());
  EXPECT_EQ(out.workspace().metadata().name(), "dry");
  EXPECT_EQ(Revision(), 0);
  v1::Workspace got;
  EXPECT_EQ(Get("dry", &got).error_code(), grpc::NOT_FOUND);
}

TEST_F(ApiTest, UpdateIsOptimisticAndBumpsGenerationOnlyForSpec) {
  v1::Workspace v1 = MustCreate(MakeWorkspace("w"));
  // Metadata-only change: new resourceVersion, same generation.
  v1::Workspace labels = v1;
  (*labels.mutable_metadata()->mutable_labels())["team"] = "ml";
  v1::UpdateWorkspaceResponse out;
  ASSERT_TRUE(Update(labels, &out).ok());
  v1::Workspace v2 = out.workspace();
  EXPECT_EQ(v2.metadata().generation(), 1);
  EXPECT_NE(v2.metadata().resource_version(), v1.metadata().resource_version());
  // Stale resourceVersion: ABORTED, nothing changes.
  v1::Workspace stale = v1;
  AddAdapter(stale, "stale-adapter");
  grpc::Status s = Update(stale, &out);
  EXPECT_EQ(s.error_code(), grpc::ABORTED);
  EXPECT_THAT(s.error_message(), HasSubstr("the object has been modified"));
  // Spec change at the current version bumps the generation.
  v1::Workspace spec = v2;
  AddAdapter(spec, "adapter-a");
  spec.mutable_status()->set_state("Ready");  // Ignored.
  ASSERT_TRUE(Update(spec, &out).ok());
  EXPECT_EQ(out.workspace().metadata().generation(), 2);
  EXPECT_FALSE(out.workspace().has_status());
  EXPECT_EQ(out.workspace().metadata().uid(), v1.metadata().uid());
  // A no-op update writes nothing.
  const int64_t before = Revision();
  v1::Workspace same = out.workspace();
  ASSERT_TRUE(Update(same, &out).ok());
  EXPECT_EQ(Revision(), before);
  EXPECT_EQ(out.workspace().metadata().resource_version(), same.metadata().resource_version());
  // Without a resourceVersion the update is unconditional.
  v1::Workspace blind = same;
  blind.mutable_metadata()->clear_resource_version();
  (*blind.mutable_metadata()->mutable_labels())["blind"] = "yes";
  ASSERT_TRUE(Update(blind, &out).ok());
  EXPECT_EQ(out.workspace().metadata().labels().at("blind"), "yes");
}

TEST_F(ApiTest, UpdateOfMissingObjectIsNotFound) {
  v1::UpdateWorkspaceResponse out;
  EXPECT_EQ(Update(MakeWorkspace("ghost"), &out).error_code(), grpc::NOT_FOUND);
}

TEST_F(ApiTest, DeleteWithoutFinalizersIsImmediate) {
  MustCreate(MakeWorkspace("w"));
  v1::DeleteWorkspaceResponse out;
  ASSERT_TRUE(Delete("w", &out).ok());
  EXPECT_TRUE(out.deleted());
  v1::Workspace got;
  EXPECT_EQ(Get("w", &got).error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(Delete("w", &out).error_code(), grpc::NOT_FOUND);
}

TEST_F(ApiTest, DeleteWithFinalizersIsGraceful) {
  v1::Workspace in = MakeWorkspace("w");
  in.mutable_metadata()->add_finalizers("workspace.finalizer.kaito.sh");
  MustCreate(in);
  v1::DeleteWorkspaceResponse out;
  ASSERT_TRUE(Delete("w", &out).ok());
  EXPECT_FALSE(out.deleted());
  EXPECT_TRUE(out.workspace().metadata().has_deletion_timestamp());
  v1::Workspace got;
  ASSERT_TRUE(Get("w", &got).ok());
  EXPECT_TRUE(got.metadata().has_deletion_timestamp());
  // A second delete changes nothing.
  const int64_t before = Revision();
  ASSERT_TRUE(Delete("w", &out).ok());
  EXPECT_EQ(Revision(), before);
  // Removing the last finalizer lets it go.
  got.mutable_metadata()->clear_finalizers();
  v1::UpdateWorkspaceResponse upd;
  ASSERT_TRUE(Update(got, &upd).ok());
  EXPECT_EQ(Get("w", &got).error_code(), grpc::NOT_FOUND);
}

TEST_F(ApiTest, ListFiltersByNamespaceAndLabelsAndPages) {
  for (int i = 0; i < 7; ++i) {
    v1::Workspace ws = MakeWorkspace("w" + std::to_string(i), i % 2 ? "odd" : "even");
    ws.mutable_metadata()->set_namespace_(i < 5 ? "team-a" : "team-b");
    MustCreate(ws);
  }
  EXPECT_EQ(List("").items_size(), 7);
  EXPECT_EQ(List("team-a").items_size(), 5);
  EXPECT_EQ(List("team-a", "app=odd").items_size(), 2);
  EXPECT_EQ(List("", "app in (odd,even),app!=even").items_size(), 3);
  std::vector<std::string> names;
  std::string token;
  int pages = 0;
  do {
    auto page = List("", "", 3, token);
    for (const auto& ws : page.items()) names.push_back(ws.metadata().name());
    token = page.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(names.size(), 7u);
  grpc::Status s;
  List("", "app==", 0, "", &s);
  EXPECT_TRUE(s.ok()) << "an empty value is a valid selector";
  List("", "bad key=1", 0, "", &s);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  List("team-a", "", 2, "garbage!", &s);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
}


TEST_F(ApiTest, WatchSendsInitialStateBookmarkThenChanges) {
  MustCreate(MakeWorkspace("existing"));
  WatchReader watch(ws_.get(), v1::WatchWorkspacesRequest());
  ASSERT_TRUE(watch.WaitForEvents(2));
  EXPECT_EQ(watch.Events()[0].type(), v1::ADDED);
  EXPECT_EQ(watch.Events()[1].type(), v1::BOOKMARK);
  v1::Workspace w = MustCreate(MakeWorkspace("new"));
  (*w.mutable_metadata()->mutable_labels())["x"] = "y";
  v1::UpdateWorkspaceResponse upd;
  ASSERT_TRUE(Update(w, &upd).ok());
  v1::DeleteWorkspaceResponse del;
  ASSERT_TRUE(Delete("new", &del).ok());
  ASSERT_TRUE(watch.WaitForEvents(5));
  auto events = watch.Events();
  EXPECT_EQ(events[2].type(), v1::ADDED);
  EXPECT_EQ(events[3].type(), v1::MODIFIED);
  EXPECT_EQ(events[3].object().metadata().labels().at("x"), "y");
  EXPECT_EQ(events[4].type(), v1::DELETED);
  EXPECT_EQ(events[4].object().metadata().name(), "new");
}

TEST_F(ApiTest, WatchResumesFromResourceVersionAndFilters) {
  v1::Workspace a = MustCreate(MakeWorkspace("a", "x"));
  MustCreate(MakeWorkspace("b", "y"));
  MustCreate(MakeWorkspace("c", "x"));
  v1::WatchWorkspacesRequest req;
  req.set_resource_version(a.metadata().resource_version());
  req.set_label_selector("app=x");
  WatchReader watch(ws_.get(), req);
  ASSERT_TRUE(watch.WaitForEvents(1));
  MustCreate(MakeWorkspace("d", "x"));
  ASSERT_TRUE(watch.WaitForEvents(2));
  auto events = watch.Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].object().metadata().name(), "c");
  EXPECT_EQ(events[1].object().metadata().name(), "d");
}

TEST_F(ApiTest, FilteredWatchSeesObjectsEnterAndLeaveTheSelector) {
  v1::Workspace w = MustCreate(MakeWorkspace("mover", "y"));
  v1::WatchWorkspacesRequest req;
  req.set_label_selector("app=x");
  WatchReader watch(ws_.get(), req);
  ASSERT_TRUE(watch.WaitForEvents(1));  // The bookmark: nothing matches yet.
  v1::UpdateWorkspaceResponse out;
  (*w.mutable_metadata()->mutable_labels())["app"] = "x";
  ASSERT_TRUE(Update(w, &out).ok());
  w = out.workspace();
  (*w.mutable_metadata()->mutable_labels())["tier"] = "1";
  ASSERT_TRUE(Update(w, &out).ok());
  w = out.workspace();
  (*w.mutable_metadata()->mutable_labels())["app"] = "z";
  ASSERT_TRUE(Update(w, &out).ok());
  ASSERT_TRUE(watch.WaitForEvents(4));
  auto events = watch.Events();
  EXPECT_EQ(events[0].type(), v1::BOOKMARK);
  EXPECT_EQ(events[1].type(), v1::ADDED) << "started matching";
  EXPECT_EQ(events[2].type(), v1::MODIFIED);
  EXPECT_EQ(events[3].type(), v1::DELETED) << "stopped matching";
  EXPECT_EQ(events[3].object().metadata().labels().at("app"), "z");
}

TEST_F(ApiTest, WatchFromCompactedRevisionIsOutOfRange) {
  Restart(/*watch_history=*/3);
  for (int i = 0; i < 6; ++i) MustCreate(MakeWorkspace("w" + std::to_string(i)));
  v1::WatchWorkspacesRequest req;
  req.set_resource_version("1");
  WatchReader watch(ws_.get(), req);
  ASSERT_TRUE(watch.WaitDone());
  EXPECT_EQ(watch.status().error_code(), grpc::OUT_OF_RANGE);
  req.set_resource_version("bogus");
  WatchReader bad(ws_.get(), req);
  ASSERT_TRUE(bad.WaitDone());
  EXPECT_EQ(bad.status().error_code(), grpc::INVALID_ARGUMENT);
}

// A client that stops reading: its backlog overflows and the stream ends with ABORTED;
// then the client goes away with a write in flight. The server must finish the stream
// exactly once and keep serving.
TEST_F(ApiTest, StalledWatcherIsCutOffAndServerKeepsServing) {
  Restart(/*watch_history=*/10000, /*watch_backlog=*/50);
  v1::Workspace w = MustCreate(MakeWorkspace("busy"));
  auto ctx = std::make_unique<grpc::ClientContext>();
  v1::WatchWorkspacesRequest req;
  req.set_resource_version(w.metadata().resource_version());
  auto reader = ws_->WatchWorkspaces(ctx.get(), req);  // Never read; cancelled at the end.
  // Read only once the updates are in; on a connection of its own, so that the stalled
  // stream's flow-control window does not hold it up.
  grpc::ChannelArguments own_connection;
  own_connection.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto late_stub = v1::WorkspaceService::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(app_->grpc_port()), grpc::InsecureChannelCredentials(),
      own_connection));
  grpc::ClientContext late_ctx;
  late_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto late = late_stub->WatchWorkspaces(&late_ctx, req);
  // More updates than a stream may queue, written concurrently so they group-commit.
  const int kUpdates = 5000;
  std::atomic<int> done{0}, failed{0};
  for (int i = 0; i < kUpdates; ++i) {
    v1::Workspace next = w;
    (*next.mutable_metadata()->mutable_labels())["n"] = std::to_string(i);
    next.mutable_metadata()->set_resource_version("");
    app_->store()->Put("/workspaces/default/busy", [&] {
      next.mutable_metadata()->clear_resource_version();
      return next.SerializeAsString();
    }(), store::kAnyRevision, [&](absl::StatusOr<int64_t> r) {
      if (!r.ok()) ++failed;
      ++done;
    });
  }
  ASSERT_TRUE(testing::WaitFor([&] { return done.load() == kUpdates; }, absl::Seconds(60)));
  EXPECT_EQ(failed.load(), 0);
  // The late reader gets what was sent before the cut-off, then ABORTED with the
  // revision to resume from.
  v1::WorkspaceEvent event;
  int received = 0;
  while (late->Read(&event)) ++received;
  grpc::Status late_status = late->Finish();
  EXPECT_EQ(late_status.error_code(), grpc::ABORTED) << late_status.error_message();
  EXPECT_THAT(late_status.error_message(), HasSubstr("watch fell behind ("));
  EXPECT_LT(received, kUpdates);
  ctx->TryCancel();
  reader->Finish();
  reader.reset();
  ctx.reset();
  MustCreate(MakeWorkspace("still-serving"));
  EXPECT_TRUE(testing::WaitFor([&] { return app_->workspaces()->cache()->watchers() == 0; },
                               absl::Seconds(10)));
}

TEST_F(ApiTest, StateAndWatchHistorySurviveRestart) {
  v1::Workspace a = MustCreate(MakeWorkspace("a"));
  MustCreate(MakeWorkspace("b"));
  Restart();
  v1::Workspace got;
  ASSERT_TRUE(Get("a", &got).ok());
  EXPECT_EQ(got.metadata().uid(), a.metadata().uid());
  v1::WatchWorkspacesRequest req;
  req.set_resource_version(a.metadata().resource_version());
  WatchReader watch(ws_.get(), req);
  ASSERT_TRUE(watch.WaitForEvents(1));
  EXPECT_EQ(watch.Events()[0].object().metadata().name(), "b");
}

TEST_F(ApiTest, SecretValuesAreWriteOnly) {
  v1::Secret s;
  s.mutable_metadata()->set_name("hf-token");
  (*s.mutable_data())["HF_TOKEN"] = "hf_secret_value";
  (*s.mutable_string_data())["OTHER"] = "plain";
  v1::WriteSecretRequest req;
  *req.mutable_secret() = s;
  v1::Secret created;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(secrets_->CreateSecret(&ctx, req, &created).ok());
  }
  EXPECT_EQ(created.data().size(), 2u);
  EXPECT_EQ(created.data().at("HF_TOKEN"), "");
  EXPECT_EQ(created.data().at("OTHER"), "");
  EXPECT_TRUE(created.string_data().empty());
  EXPECT_EQ(created.type(), "Opaque");
  v1::ObjectKey key;
  key.set_name("hf-token");
  v1::Secret got;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(secrets_->GetSecret(&ctx, key, &got).ok());
  }
  EXPECT_EQ(got.data().at("HF_TOKEN"), "");
  v1::ListSecretsResponse list;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(secrets_->ListSecrets(&ctx, v1::ListRequest(), &list).ok());
  }
  ASSERT_EQ(list.items_size(), 1);
  EXPECT_EQ(list.items(0).data().at("HF_TOKEN"), "");
  // The value is stored, just never returned.
  auto raw = app_->store()->Get("/secrets/default/hf-token");
  ASSERT_TRUE(raw.ok());
  EXPECT_NE(raw->value.find("hf_secret_value"), std::string::npos);
}

TEST_F(ApiTest, ConfigMapKeysAndImmutabilityAreChecked) {
  v1::ConfigMap cm;
  cm.mutable_metadata()->set_name("params");
  (*cm.mutable_data())["inference_config.yaml"] = "vllm: {}";
  cm.set_immutable(true);
  v1::WriteConfigMapRequest req;
  *req.mutable_config_map() = cm;
  v1::ConfigMap created;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(cm_->CreateConfigMap(&ctx, req, &created).ok());
  }
  (*req.mutable_config_map()->mutable_data())["inference_config.yaml"] = "vllm: {x: 1}";
  v1::ConfigMap out;
  {
    grpc::ClientContext ctx;
    grpc::Status s = cm_->UpdateConfigMap(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("field is immutable"));
  }
  v1::ConfigMap bad;
  bad.mutable_metadata()->set_name("bad");
  (*bad.mutable_data())["a/b"] = "x";
  *req.mutable_config_map() = bad;
  {
    grpc::ClientContext ctx;
    grpc::Status s = cm_->CreateConfigMap(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("data: Invalid value: \"a/b\""));
  }
}

TEST_F(ApiTest, OversizedObjectsAreRejected) {
  v1::Workspace big = MakeWorkspace("big");
  (*big.mutable_metadata()->mutable_annotations())["a"] = std::string(300 * 1024, 'x');
  v1::CreateWorkspaceResponse out;
  grpc::Status s = Create(big, &out);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("metadata.annotations: Too long"));
  v1::ConfigMap cm;
  cm.mutable_metadata()->set_name("huge");
  (*cm.mutable_data())["k"] = std::string(5 << 20, 'x');
  v1::WriteConfigMapRequest req;
  *req.mutable_config_map() = cm;
  v1::ConfigMap cm_out;
  grpc::ClientContext ctx;
  s = cm_->CreateConfigMap(&ctx, req, &cm_out);
  EXPECT_EQ(s.error_code(), grpc::RESOURCE_EXHAUSTED) << "over the request limit (1.5 MiB + 64 KiB)";
  EXPECT_EQ(Revision(), 0);
}

TEST_F(ApiTest, InvalidUtf8OnTheWireIsRejectedAndServerKeepsServing) {
  // CreateWorkspaceRequest{workspace: {metadata: {name: "\xff\xfe"}}}, hand-encoded,
  // because a well-behaved client library refuses to produce it.
  const std::string meta = std::string("\x0a\x02\xff\xfe", 4);
  const std::string workspace = std::string("\x1a") + static_cast<char>(meta.size()) + meta;
  const std::string request = std::string("\x0a") + static_cast<char>(workspace.size()) + workspace;
  grpc::Status status = RawUnaryCall(channel_, "/kaito.v1.WorkspaceService/CreateWorkspace", request);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(),
              HasSubstr("cannot be decoded as kaito.v1.CreateWorkspaceRequest"));
  EXPECT_EQ(Revision(), 0);
  MustCreate(MakeWorkspace("still-serving"));
}

// Random bytes and mutated valid requests against every unary method: each call gets
// an error or a valid reply, the server keeps serving, and nothing valid-looking slips
// into the store with a bad name.
TEST_F(ApiTest, GarbageRequestsNeverCrashTheServer) {
  MustCreate(MakeWorkspace("keep"));
  const int64_t before = Revision();
  const std::vector<std::string> methods = {
      "/kaito.v1.WorkspaceService/CreateWorkspace", "/kaito.v1.WorkspaceService/GetWorkspace",
      "/kaito.v1.WorkspaceService/ListWorkspaces",  "/kaito.v1.WorkspaceService/UpdateWorkspace",
      "/kaito.v1.WorkspaceService/DeleteWorkspace", "/kaito.v1.ConfigService/CreateConfigMap",
      "/kaito.v1.SecretService/CreateSecret",       "/kaito.v1.SecretService/UpdateSecret"};
  v1::CreateWorkspaceRequest valid;
  *valid.mutable_workspace() = MakeWorkspace("fuzz");
  const std::string seed = valid.SerializeAsString();
  std::mt19937 rng(42);
  int calls = 0;
  for (int i = 0; i < 400; ++i) {
    std::string payload;
    if (i % 2 == 0) {
      payload.resize(rng() % 200);
      for (char& c : payload) c = static_cast<char>(rng());
    } else {
      payload = seed;
      for (int flips = 0; flips < 3; ++flips) payload[rng() % payload.size()] = static_cast<char>(rng());
    }
    grpc::Status status = RawUnaryCall(channel_, methods[i % methods.size()], payload);
    EXPECT_NE(status.error_code(), grpc::DEADLINE_EXCEEDED);
    EXPECT_NE(status.error_code(), grpc::UNIMPLEMENTED) << "an undecodable request is "
                                                            "INVALID_ARGUMENT";
    ++calls;
  }
  EXPECT_EQ(calls, 400);
  v1::Workspace got;
  ASSERT_TRUE(Get("keep", &got).ok()) << "stored objects survive garbage";
  // Whatever was accepted passed validation: every stored workspace name is a DNS label.
  const v1::ListWorkspacesResponse all = List("");
  for (const auto& ws : all.items()) {
    EXPECT_EQ(CheckDnsLabel(ws.metadata().name()), "") << ws.metadata().name();
  }
  EXPECT_GE(Revision(), before);
  MustCreate(MakeWorkspace("after-fuzz"));
}

TEST_F(ApiTest, KaitoRulesRejectBadWorkspacesAndStoreNothing) {
  const int64_t before = Revision();
  struct Bad {
    std::function<void(v1::Workspace&)> mutate;
    const char* message;
  };
  const Bad cases[] = {
      {[](v1::Workspace& w) { w.mutable_inference()->mutable_preset()->set_name("gpt-5"); },
       "inference.preset.name: Unsupported inference preset name gpt-5"},
      {[](v1::Workspace& w) { w.mutable_resource()->set_instance_type("Standard_Bad"); },
       "resource.instanceType: Unsupported instance type Standard_Bad"},
      {[](v1::Workspace& w) {
         for (int i = 0; i < 20; ++i) AddAdapter(w, "a" + std::to_string(i));
       },
       "maximum of 10 allowed"},
      {[](v1::Workspace& w) {
         MakeTuning(w)->mutable_input()->add_urls("http://169.254.169.254/latest/meta-data");
       },
       "tuning.input.urls[0]: Invalid value: URL \"http://169.254.169.254/latest/meta-data\" points at"},
      {[](v1::Workspace& w) { MakeTuning(w)->mutable_input()->set_image("Not/A:Valid Image"); },
       "tuning.input.image: Invalid value: invalid reference format"},
  };
  for (const Bad& c : cases) {
    v1::Workspace ws = MakeWorkspace("bad");
    c.mutate(ws);
    v1::CreateWorkspaceResponse out;
    grpc::Status s = Create(ws, &out);
    EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << c.message;
    EXPECT_THAT(s.error_message(), HasSubstr(c.message));
  }
  EXPECT_EQ(Revision(), before);
}

TEST_F(ApiTest, DryRunReturnsThePlanAndWarnings) {
  v1::Workspace ws = MakeWorkspace("planned");
  ws.mutable_resource()->set_instance_type("Standard_NC48ads_A100_v4");
  ws.mutable_inference()->mutable_preset()->set_name("llama-3.3-70b-instruct");
  ws.mutable_inference()->mutable_preset()->mutable_preset_options()->set_model_access_secret("hf");
  v1::CreateWorkspaceResponse out;
  ASSERT_TRUE(Create(ws, &out, /*dry_run=*/true).ok());
  EXPECT_EQ(out.plan().target_node_count(), 2);
  EXPECT_EQ(out.plan().min_gpus(), 3);
  ASSERT_EQ(out.plan().workloads_size(), 2);
  EXPECT_EQ(out.plan().workloads(0).role(), "leader");
  EXPECT_EQ(Revision(), 0);
  ws.mutable_resource()->set_instance_type("Standard_NC4as_T4_v3");
  ws.mutable_metadata()->set_name("old-gpu");
  ASSERT_TRUE(Create(ws, &out, /*dry_run=*/true).ok());
  EXPECT_THAT(::testing::PrintToString(out.warnings()), HasSubstr("cannot run bfloat16"));
}

TEST_F(ApiTest, PresetServiceListsCatalogs) {
  auto presets = v1::PresetService::NewStub(channel_);
  grpc::ClientContext ctx;
  v1::ListModelsResponse models;
  ASSERT_TRUE(presets->ListModels(&ctx, v1::ListModelsRequest(), &models).ok());
  EXPECT_GE(models.models_size(), 60);
  grpc::ClientContext ctx2;
  v1::GetModelRequest get;
  get.set_name("Microsoft/Phi-4");
  v1::ModelInfo phi;
  ASSERT_TRUE(presets->GetModel(&ctx2, get, &phi).ok());
  EXPECT_EQ(phi.name(), "phi-4");
  EXPECT_EQ(phi.weights(), "27.31Gi");
  get.set_name("nope");
  grpc::ClientContext ctx3;
  EXPECT_EQ(presets->GetModel(&ctx3, get, &phi).error_code(), grpc::NOT_FOUND);
  grpc::ClientContext ctx4;
  v1::ListSkusRequest skus_req;
  skus_req.set_cloud("aws");
  v1::ListSkusResponse skus;
  ASSERT_TRUE(presets->ListSkus(&ctx4, skus_req, &skus).ok());
  ASSERT_GT(skus.skus_size(), 0);
  EXPECT_EQ(skus.skus(0).cloud(), "aws");
}

// Bring-your-own nodes: without a provisioner, workspaces select nodes that the store
// knows (put there directly until agents register them).
class ByoApiTest : public ApiTest {
 protected:
  void SetUp() override {
    dev_ = false;  // No provisioner: bring-your-own nodes.
    Start();
  }
  void PutNode(const std::string& name, const std::string& app, int mib) {
    v1::Node node;
    node.mutable_metadata()->set_name(name);
    auto& labels = *node.mutable_metadata()->mutable_labels();
    labels["apps"] = app;
    labels["nvidia.com/gpu.product"] = "NVIDIA-A100-SXM4-80GB";
    labels["nvidia.com/gpu.count"] = "1";
    labels["nvidia.com/gpu.memory"] = std::to_string(mib);
    ASSERT_TRUE(store::PutSync(*app_->store(), "/nodes/" + name, node.SerializeAsString(),
                               store::kAnyRevision)
                    .ok());
  }
};

TEST_F(ByoApiTest, SelectsNodesFromTheStore) {
  v1::Workspace ws = MakeWorkspace("byo", "phi");
  ws.mutable_resource()->clear_instance_type();
  v1::CreateWorkspaceResponse out;
  grpc::Status s = Create(ws, &out);
  EXPECT_THAT(s.error_message(), HasSubstr("No nodes found matching the specified label selector"));
  PutNode("gpu-1", "phi", 81920);
  s = Create(ws, &out, /*dry_run=*/true);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.plan().instance_type(), "bring-your-own nodes");
  EXPECT_EQ(out.plan().gpu_memory_per_gpu(), "80Gi");
  ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
  s = Create(ws, &out);
  EXPECT_THAT(s.error_message(), HasSubstr("instanceType must be empty when node auto-provisioning is disabled"));
}

TEST_F(ApiTest, VersionReportsStore) {
  grpc::ClientContext ctx;
  v1::VersionInfo info;
  ASSERT_TRUE(system_->GetVersion(&ctx, v1::GetVersionRequest(), &info).ok());
  EXPECT_EQ(info.store(), testing::Env("KAITO_TEST_STORE") == "etcd" ? "etcd" : "sqlite");
  EXPECT_FALSE(info.version().empty());
}

TEST_F(ApiTest, ConcurrentUpdatesWithoutVersionAllLand) {
  MustCreate(MakeWorkspace("hot"));
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      v1::Workspace w = MakeWorkspace("hot");
      v1::Workspace current;
      if (!Get("hot", &current).ok()) ++failures;
      *w.mutable_metadata()->mutable_labels() = current.metadata().labels();
      (*w.mutable_metadata()->mutable_labels())["t" + std::to_string(t)] = "1";
      // Read-modify-write with the version, retried on conflict, as kaitoctl does.
      for (int attempt = 0; attempt < 50; ++attempt) {
        if (!Get("hot", &current).ok()) break;
        v1::Workspace next = current;
        (*next.mutable_metadata()->mutable_labels())["t" + std::to_string(t)] = "1";
        v1::UpdateWorkspaceResponse out;
        grpc::Status s = Update(next, &out);
        if (s.ok()) return;
        if (s.error_code() != grpc::ABORTED) break;
      }
      ++failures;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  v1::Workspace final_ws;
  ASSERT_TRUE(Get("hot", &final_ws).ok());
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(final_ws.metadata().labels().contains("t" + std::to_string(t))) << t;
  }
}

}  // namespace
}  // namespace kaito::server
