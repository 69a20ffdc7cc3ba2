// kaito-kube-shim with real Kubernetes clients only: the machine's kubectl (or Debian's
// kubernetes-client) with a kubeconfig pointing at the shim, Debian's python3-kubernetes,
// and plain HTTP (cpp-httplib's client) for what a client library would hide: codes,
// reasons and Status bodies. kaito-server runs in dev mode behind the shim.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

std::string Kubectl() {
  std::string path = Env("KUBECTL");
  return path.empty() ? "/usr/bin/kubectl" : path;
}

class KubeShimTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    fs::create_directories(dir_->path() + "/server");
    // A short watch history (100 events), so that a watch from an old version expires.
    auto server = StartServer(dir_->path() + "/server", {"--watch-history", "100"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = new ServerProcess(std::move(*server));
    const std::string port_file = dir_->path() + "/shim.port";
    auto shim = Daemon::Start({BinDir() + "/kaito-kube-shim", "--server", server_->address(),
                               "--listen", "127.0.0.1:0", "--port-file", port_file,
                               "--metrics-listen", "", "--log-level", "debug"},
                              dir_->path() + "/shim.log");
    ASSERT_TRUE(shim.ok()) << shim.status();
    shim_ = new Daemon(std::move(*shim));
    ASSERT_TRUE(WaitForPortFile(port_file, &shim_port_, absl::Seconds(20)))
        << ReadFile(dir_->path() + "/shim.log");
    WriteKubeconfig(Kubeconfig(), "default");
  }

  // A kubeconfig for the shim whose context's namespace is `ns`.
  static void WriteKubeconfig(const std::string& path, const std::string& ns) {
    std::ofstream(path) << "apiVersion: v1\nkind: Config\nclusters:\n- name: shim\n"
                           "  cluster:\n    server: http://127.0.0.1:"
                        << shim_port_
                        << "\ncontexts:\n- name: shim\n  context:\n    cluster: shim\n"
                           "    namespace: "
                        << ns
                        << "\n    user: me\ncurrent-context: shim\nusers:\n- name: me\n  "
                           "user: {}\n";
  }

  static void TearDownTestSuite() {
    delete shim_;
    delete server_;
    delete dir_;
  }

  static std::string Kubeconfig() { return dir_->path() + "/kubeconfig"; }

  // kubectl with the shim's kubeconfig and a discovery cache of this test's own.
  static RunResult Run(std::vector<std::string> args, const std::string& stdin_data = "",
                       const std::string& kubeconfig = Kubeconfig()) {
    args.insert(args.begin(), {Kubectl(), "--kubeconfig", kubeconfig, "--cache-dir",
                               dir_->path() + "/kube-cache"});
    return RunCommand(args, stdin_data, {"HOME=" + dir_->path()}, absl::Seconds(60));
  }

  static std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_->path() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  static httplib::Client Http() {
    httplib::Client client("127.0.0.1", shim_port_);
    client.set_read_timeout(30, 0);
    return client;
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static Daemon* shim_;
  static int shim_port_;
};

TempDir* KubeShimTest::dir_ = nullptr;
ServerProcess* KubeShimTest::server_ = nullptr;
Daemon* KubeShimTest::shim_ = nullptr;
int KubeShimTest::shim_port_ = 0;

constexpr char kInference[] = R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: NAME
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels:
      apps: phi-4
inference:
  preset:
    name: phi-4-mini-instruct
)";

std::string InferenceManifest(const std::string& name) {
  std::string text = kInference;
  text.replace(text.find("NAME"), 4, name);
  return text;
}

TEST_F(KubeShimTest, SeedDocumentCommandsAsWritten) {
  const std::string seed = Env("KAITO_SOURCE_DIR") + "/examples/tuning-phi-3.yaml";
  RunResult created = Run({"apply", "-f", seed});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(created.out, "workspace.kaito.sh/workspace-tuning-phi-3 created\n");
  RunResult again = Run({"apply", "-f", seed});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "workspace.kaito.sh/workspace-tuning-phi-3 unchanged\n");

  RunResult table = Run({"get", "workspace"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  std::vector<std::string> lines = absl::StrSplit(table.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 2u) << table.out;
  std::vector<std::string> header = absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  EXPECT_THAT(header, ::testing::ElementsAre("NAME", "INSTANCE", "RESOURCEREADY",
                                             "INFERENCEREADY", "WORKSPACEREADY", "AGE"));
  EXPECT_THAT(table.out, HasSubstr("workspace-tuning-phi-3"));
  EXPECT_THAT(table.out, HasSubstr("Standard_NC6s_v3"));

  RunResult wide = Run({"get", "workspace", "-o", "wide"});
  ASSERT_EQ(wide.exit_code, 0) << wide.err;
  std::vector<std::string> wide_header =
      absl::StrSplit(wide.out.substr(0, wide.out.find('\n')), ' ', absl::SkipEmpty());
  EXPECT_THAT(wide_header, ::testing::ElementsAre("NAME", "INSTANCE", "RESOURCEREADY",
                                                  "INFERENCEREADY", "JOBSTARTED",
                                                  "WORKSPACESUCCEEDED", "WORKSPACEREADY",
                                                  "TARGETNODECOUNT", "STATE", "AGE"));

  RunResult yaml = Run({"get", "workspace", "workspace-tuning-phi-3", "-o", "yaml"});
  ASSERT_EQ(yaml.exit_code, 0) << yaml.err;
  EXPECT_THAT(yaml.out, HasSubstr("kind: Workspace"));
  EXPECT_THAT(yaml.out, HasSubstr("method: qlora"));
  EXPECT_THAT(yaml.out, HasSubstr("generation: 1\n"));

  RunResult path = Run({"get", "wk", "workspace-tuning-phi-3", "-o",
                        "jsonpath={.tuning.preset.name}"});
  ASSERT_EQ(path.exit_code, 0) << path.err;
  EXPECT_EQ(path.out, "phi-3-mini-128k-instruct");

  // Dev mode's simulated cloud provides the node: kubectl wait follows the watch until then.
  RunResult ready = Run({"wait", "--for=condition=ResourceReady",
                         "workspace/workspace-tuning-phi-3", "--timeout=50s"});
  ASSERT_EQ(ready.exit_code, 0) << ready.err;
  EXPECT_EQ(ready.out, "workspace.kaito.sh/workspace-tuning-phi-3 condition met\n");

  RunResult deleted = Run({"delete", "workspace", "workspace-tuning-phi-3", "--timeout=60s"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "workspace.kaito.sh \"workspace-tuning-phi-3\" deleted\n");
  RunResult gone = Run({"get", "workspace", "workspace-tuning-phi-3"});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("Error from server (NotFound): workspaces.kaito.sh "
                                  "\"workspace-tuning-phi-3\" not found"));
}

TEST_F(KubeShimTest, ApplyThenChangeALabelIsConfigured) {
  const std::string file = Write("label.yaml", InferenceManifest("label-me"));
  ASSERT_EQ(Run({"apply", "-f", file}).exit_code, 0);
  RunResult labelled = Run({"label", "workspace", "label-me", "team=a"});
  ASSERT_EQ(labelled.exit_code, 0) << labelled.err;
  EXPECT_EQ(labelled.out, "workspace.kaito.sh/label-me labeled\n");
  RunResult shown = Run({"get", "wk", "label-me", "--show-labels", "--no-headers"});
  EXPECT_THAT(shown.out, HasSubstr("team=a"));
  // The file changes: apply says configured, and the label set by kubectl label stays.
  std::string changed = InferenceManifest("label-me");
  changed.replace(changed.find("resource:"), 0, "  annotations:\n    owner: team-a\n");
  Write("label.yaml", changed);
  RunResult configured = Run({"apply", "-f", file});
  ASSERT_EQ(configured.exit_code, 0) << configured.err;
  EXPECT_EQ(configured.out, "workspace.kaito.sh/label-me configured\n");
  RunResult path = Run({"get", "wk", "label-me", "-o",
                        "jsonpath={.metadata.labels.team} {.metadata.annotations.owner}"});
  EXPECT_EQ(path.out, "a team-a");
}

TEST_F(KubeShimTest, InvalidWorkspaceIsUnprocessableWithFieldCauses) {
  std::string text = InferenceManifest("bad-one");
  text.replace(text.find("  labelSelector:"), std::string("  labelSelector:\n    matchLabels:\n      apps: phi-4\n").size(), "");
  const std::string file = Write("bad.yaml", text);
  RunResult r = Run({"apply", "-f", file});
  EXPECT_EQ(r.exit_code, 1);
  // kubectl words a 422 with causes as "The <kind> <name> is invalid:", one cause a line.
  EXPECT_THAT(r.err, HasSubstr("The Workspace \"bad-one\" is invalid"));
  EXPECT_THAT(r.err, HasSubstr("resource.labelSelector: Required value"));

  auto client = Http();
  json body = {{"apiVersion", "kaito.sh/v1beta1"},
               {"kind", "Workspace"},
               {"metadata", {{"name", "bad-two"}}},
               {"resource", {{"instanceType", "Standard_NC24ads_A100_v4"}}},
               {"inference", {{"preset", {{"name", "phi-4-mini-instruct"}}}}}};
  auto res = client.Post("/apis/kaito.sh/v1beta1/namespaces/default/workspaces", body.dump(),
                         "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 422);
  json status = json::parse(res->body);
  EXPECT_EQ(status["kind"], "Status");
  EXPECT_EQ(status["reason"], "Invalid");
  EXPECT_EQ(status["code"], 422);
  std::vector<std::string> fields;
  for (const auto& cause : status["details"]["causes"]) fields.push_back(cause["field"]);
  EXPECT_THAT(fields, ::testing::Contains("resource.labelSelector"));

  // An unknown field names its path, as the manifest codec does.
  body["resource"]["instanceTyp"] = "x";
  res = client.Post("/apis/kaito.sh/v1beta1/namespaces/default/workspaces", body.dump(),
                    "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 422) << res->body;
  EXPECT_THAT(res->body, HasSubstr("resource.instanceTyp"));
}

// GETs of workspaces come from the shim's read cache once kaito-server has allowed the
// caller in the namespace; each must still see every write acknowledged before it, at once.
TEST_F(KubeShimTest, EveryGetSeesTheWritesBeforeIt) {
  auto client = Http();
  const std::string path = "/apis/kaito.sh/v1beta1/namespaces/default/workspaces/fresh";
  // The shim's copy is live (dev mode: the shim may watch every namespace).
  EXPECT_TRUE(WaitFor(
      [] { return absl::StrContains(ReadFile(dir_->path() + "/shim.log"), "read cache: "); },
      absl::Seconds(20)));
  auto missing = client.Get(path);  // Through the server: the caller is allowed here.
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  json body = {
      {"apiVersion", "kaito.sh/v1beta1"},
      {"kind", "Workspace"},
      {"metadata", {{"name", "fresh"}}},
      {"resource",
       {{"instanceType", "Standard_NC24ads_A100_v4"},
        {"labelSelector", {{"matchLabels", {{"apps", "fresh"}}}}}}},
      {"inference", {{"preset", {{"name", "phi-4-mini-instruct"}}}}}};
  auto created = client.Post("/apis/kaito.sh/v1beta1/namespaces/default/workspaces",
                             body.dump(), "application/json");
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;
  std::string version = json::parse(created->body)["metadata"]["resourceVersion"];
  auto got = client.Get(path);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->status, 200) << got->body;
  // The controller may have written the status since: never older than the create.
  EXPECT_GE(std::stoll(json::parse(got->body)["metadata"]["resourceVersion"].get<std::string>()),
            std::stoll(version));
  for (int i = 0; i < 30; ++i) {
    json patch = {{"metadata", {{"labels", {{"round", std::to_string(i)}}}}}};
    auto patched = client.Patch(path, patch.dump(), "application/merge-patch+json");
    ASSERT_TRUE(patched);
    ASSERT_EQ(patched->status, 200) << patched->body;
    version = json::parse(patched->body)["metadata"]["resourceVersion"];
    auto read = client.Get(path);
    ASSERT_TRUE(read);
    ASSERT_EQ(read->status, 200);
    json object = json::parse(read->body);
    EXPECT_EQ(object["metadata"]["labels"]["round"], std::to_string(i));
    EXPECT_GE(std::stoll(object["metadata"]["resourceVersion"].get<std::string>()),
              std::stoll(version));
    // Small replies go out uncompressed even to a client that accepts gzip, as
    // kube-apiserver sends them.
    EXPECT_EQ(read->get_header_value("Content-Encoding"), "");
  }
  auto deleted = client.Delete(path);
  ASSERT_TRUE(deleted);
  ASSERT_EQ(deleted->status, 200) << deleted->body;
  auto after = client.Get(path);
  ASSERT_TRUE(after);
  if (after->status == 200) {  // Held by a finalizer while the controller cleans up.
    EXPECT_TRUE(json::parse(after->body)["metadata"].contains("deletionTimestamp"))
        << after->body;
  } else {
    EXPECT_EQ(after->status, 404) << after->body;
  }
}

TEST_F(KubeShimTest, ConflictsAndPreconditionsAre409) {
  const std::string file = Write("conflict.yaml", InferenceManifest("conflict"));
  ASSERT_EQ(Run({"apply", "-f", file}).exit_code, 0);
  auto client = Http();
  const std::string path = "/apis/kaito.sh/v1beta1/namespaces/default/workspaces/conflict";
  auto got = client.Get(path);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->status, 200);
  json ws = json::parse(got->body);
  json stale = ws;
  // The controller writes the status meanwhile (dev mode), which moves the resourceVersion:
  // re-read and retry on a conflict, as a client does.
  int put_status = 0;
  std::string put_body;
  for (int attempt = 0; attempt < 10; ++attempt) {
    ws["metadata"]["labels"] = {{"round", "1"}};
    auto put = client.Put(path, ws.dump(), "application/json");
    ASSERT_TRUE(put);
    put_status = put->status;
    put_body = put->body;
    if (put_status != 409) break;
    ws = json::parse(client.Get(path)->body);
  }
  ASSERT_EQ(put_status, 200) << put_body;
  stale["metadata"]["labels"] = {{"round", "stale"}};
  auto put = client.Put(path, stale.dump(), "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 409);
  EXPECT_EQ(json::parse(put->body)["reason"], "Conflict");

  auto dup = client.Post("/apis/kaito.sh/v1beta1/namespaces/default/workspaces",
                         json::parse(got->body).dump(), "application/json");
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->status, 409);
  EXPECT_EQ(json::parse(dup->body)["reason"], "AlreadyExists");

  // The status subresource is read-only.
  auto status_put = client.Put(path + "/status", ws.dump(), "application/json");
  ASSERT_TRUE(status_put);
  EXPECT_EQ(status_put->status, 405);
  auto status_get = client.Get(path + "/status");
  ASSERT_TRUE(status_get);
  EXPECT_EQ(status_get->status, 200);

  // A delete whose resourceVersion precondition is stale is refused.
  json options = {{"preconditions", {{"resourceVersion", stale["metadata"]["resourceVersion"]}}}};
  auto del = client.Delete(path, options.dump(), "application/json");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 409) << del->body;
}

TEST_F(KubeShimTest, PatchesOfEveryType) {
  const std::string file = Write("patch.yaml", InferenceManifest("patched"));
  ASSERT_EQ(Run({"apply", "-f", file}).exit_code, 0);
  RunResult merge = Run({"patch", "wk", "patched", "--type=merge", "-p",
                         R"({"metadata":{"labels":{"by":"merge"}}})"});
  ASSERT_EQ(merge.exit_code, 0) << merge.err;
  EXPECT_EQ(merge.out, "workspace.kaito.sh/patched patched\n");
  RunResult jsonpatch = Run({"patch", "wk", "patched", "--type=json", "-p",
                             R"([{"op":"add","path":"/metadata/labels/by2","value":"json"}])"});
  ASSERT_EQ(jsonpatch.exit_code, 0) << jsonpatch.err;
  RunResult labels = Run({"get", "wk", "patched", "-o", "jsonpath={.metadata.labels}"});
  EXPECT_THAT(labels.out, HasSubstr("\"by\":\"merge\""));
  EXPECT_THAT(labels.out, HasSubstr("\"by2\":\"json\""));
  RunResult failed_test = Run({"patch", "wk", "patched", "--type=json", "-p",
                               R"([{"op":"test","path":"/metadata/name","value":"other"}])"});
  EXPECT_EQ(failed_test.exit_code, 1);

  // Server-side apply: creates, then changes what the applied configuration says.
  const std::string ssa = Write("ssa.yaml", InferenceManifest("applied-on-server"));
  RunResult first = Run({"apply", "--server-side", "-f", ssa});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "workspace.kaito.sh/applied-on-server serverside-applied\n");
  RunResult second = Run({"apply", "--server-side", "-f", ssa});
  ASSERT_EQ(second.exit_code, 0) << second.err;
}

TEST_F(KubeShimTest, WatchStreamsChanges) {
  const std::string log = dir_->path() + "/watch.log";
  auto watch = Daemon::Start({Kubectl(), "--kubeconfig", Kubeconfig(), "--cache-dir",
                              dir_->path() + "/kube-cache", "get", "wk", "-w", "-o", "name"},
                             log);
  ASSERT_TRUE(watch.ok());
  const std::string file = Write("watched.yaml", InferenceManifest("watched"));
  ASSERT_EQ(Run({"apply", "-f", file}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(ReadFile(log), "workspace.kaito.sh/watched"); },
                      absl::Seconds(30)))
      << ReadFile(log);
  watch->Stop();
}

TEST_F(KubeShimTest, RawWatchHasBookmarksAndExpiresOldVersions) {
  auto client = Http();
  // More changes than the server's history keeps, then a watch from before them: an ERROR
  // event with a 410 Expired Status, after which a client lists again.
  const std::string file = Write("churn.yaml", InferenceManifest("churn"));
  ASSERT_EQ(Run({"apply", "-f", file}).exit_code, 0);
  const std::string first_version =
      json::parse(client.Get("/apis/kaito.sh/v1beta1/namespaces/default/workspaces/churn")->body)
          ["metadata"]["resourceVersion"];
  for (int i = 0; i < 120; ++i) {
    json patch = {{"metadata", {{"labels", {{"round", std::to_string(i)}}}}}};
    auto res = client.Patch("/apis/kaito.sh/v1beta1/namespaces/default/workspaces/churn",
                            patch.dump(), "application/merge-patch+json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
  }
  std::string body;
  auto res = client.Get(
      "/apis/kaito.sh/v1beta1/namespaces/default/workspaces?watch=1&timeoutSeconds=5&"
      "resourceVersion=" + first_version,
      [&](const char* data, size_t n) {
        body.append(data, n);
        return true;
      });
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  json event = json::parse(body.substr(0, body.find('\n')));
  EXPECT_EQ(event["type"], "ERROR");
  EXPECT_EQ(event["object"]["kind"], "Status");
  EXPECT_EQ(event["object"]["code"], 410);
  EXPECT_EQ(event["object"]["reason"], "Expired");
  // From now with bookmarks: the initial state then a BOOKMARK.
  body.clear();
  res = client.Get(
      "/apis/kaito.sh/v1beta1/namespaces/default/workspaces?watch=1&allowWatchBookmarks=true&"
      "timeoutSeconds=2",
      [&](const char* data, size_t n) {
        body.append(data, n);
        return true;
      });
  ASSERT_TRUE(res);
  EXPECT_THAT(body, HasSubstr("\"type\":\"BOOKMARK\""));
}

TEST_F(KubeShimTest, DiscoveryAndExplain) {
  RunResult resources = Run({"api-resources", "--api-group=kaito.sh"});
  ASSERT_EQ(resources.exit_code, 0) << resources.err;
  EXPECT_THAT(resources.out, HasSubstr("workspaces"));
  EXPECT_THAT(resources.out, HasSubstr("wk,wks"));
  EXPECT_THAT(resources.out, HasSubstr("kaito.sh/v1beta1"));
  RunResult explain = Run({"explain", "workspace.resource"});
  ASSERT_EQ(explain.exit_code, 0) << explain.err;
  EXPECT_THAT(explain.out, HasSubstr("instanceType"));
  EXPECT_THAT(explain.out, HasSubstr("labelSelector"));
}

TEST_F(KubeShimTest, SecretsStayWriteOnly) {
  RunResult created = Run({"create", "secret", "generic", "hf-token", "--from-literal=HF_TOKEN=s3cret"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  RunResult shown = Run({"get", "secret", "hf-token", "-o", "json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("HF_TOKEN"));
  EXPECT_THAT(shown.out, ::testing::Not(HasSubstr("s3cret")));
  EXPECT_THAT(shown.out, ::testing::Not(HasSubstr("czNjcmV0")));  // base64 of the value

  // kubectl apply keeps a last-applied copy: its values are blanked too.
  const std::string file = Write("secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n"
                                                "  name: applied\nstringData:\n  k: v4lue\n");
  ASSERT_EQ(Run({"apply", "-f", file}).exit_code, 0);
  RunResult applied = Run({"get", "secret", "applied", "-o", "yaml"});
  EXPECT_THAT(applied.out, ::testing::Not(HasSubstr("v4lue")));

  RunResult cm = Run({"create", "configmap", "cfg", "--from-literal=a=b"});
  ASSERT_EQ(cm.exit_code, 0) << cm.err;
  RunResult cms = Run({"get", "configmaps"});
  EXPECT_THAT(cms.out, HasSubstr("cfg"));
}

// Every Kaito example through kubectl: a server dry run, then for real; the outcome of
// each workspace is the one test/data/examples_apply.tsv gives for kaitoctl.
TEST_F(KubeShimTest, EveryKaitoExampleThroughKubectl) {
  fs::path root = Env("KAITO_EXAMPLES_DIR");
  if (!fs::is_directory(root)) GTEST_SKIP() << "Kaito's examples are not beside this checkout";
  // path#workspace -> the dry run's and the real apply's outcome, "accepted" or "rejected".
  std::map<std::string, std::pair<std::string, std::string>> expected;
  std::ifstream table(Env("KAITO_SOURCE_DIR") + "/test/data/examples_apply.tsv");
  std::string line;
  while (std::getline(table, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols = absl::StrSplit(line, '\t');
    ASSERT_GE(cols.size(), 5u);
    expected[cols[0] + "#" + cols[1]] = {cols[2].substr(0, cols[2].find(':')),
                                         cols[3].substr(0, cols[3].find(':'))};
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::string diff;
  int namespace_index = 0;
  for (const auto& file : files) {
    const std::string rel = fs::relative(file, root).string();
    // The namespace comes from the context, as a user's would: an object that names its
    // own namespace goes there (kubectl refuses -n that differs from it).
    const std::string ns = "kubectl-example-" + std::to_string(namespace_index++);
    const std::string kubeconfig = dir_->path() + "/kubeconfig-" + ns;
    WriteKubeconfig(kubeconfig, ns);
    // kubectl validates a kind the shim does not serve (a PersistentVolumeClaim beside the
    // workspace) against OpenAPI v2 in protobuf, which the shim does not serve
    // (docs/kubernetes.md): such a file needs --validate=false.
    const bool foreign_kinds = absl::StrContains(ReadFile(file.string()), "kind: PersistentVolumeClaim");
    for (const bool dry : {true, false}) {
      std::vector<std::string> args = {"apply", "-f", file.string()};
      if (dry) args.push_back("--dry-run=server");
      if (foreign_kinds) args.push_back("--validate=false");
      RunResult r = Run(args, "", kubeconfig);
      for (const auto& [key, outcomes] : expected) {
        if (!absl::StartsWith(key, rel + "#")) continue;
        const std::string name = key.substr(rel.size() + 1);
        const std::string& want = dry ? outcomes.first : outcomes.second;
        const bool accepted = absl::StrContains(r.out, "workspace.kaito.sh/" + name + " ");
        const bool rejected =
            absl::StrContains(r.err, "Workspace \"" + name + "\" is invalid") ||
            absl::StrContains(r.err, "Workspace.kaito.sh \"" + name + "\" is invalid");
        const std::string got = accepted ? "accepted" : rejected ? "rejected" : "neither";
        if (got != want) {
          diff += rel + " " + name + (dry ? " (dry run)" : "") + ": expected " + want +
                  ", got " + got + "\n  out: " + r.out + "\n  err: " + r.err + "\n";
        }
      }
    }
  }
  EXPECT_EQ(diff, "");
}

TEST_F(KubeShimTest, PythonKubernetesClient) {
  RunResult r = RunCommand({"/usr/bin/python3",
                            Env("KAITO_SOURCE_DIR") + "/test/integration/kube_python_client.py",
                            Kubeconfig()},
                           "", {}, absl::Seconds(120));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("ok: watch saw MODIFIED"));
}

}  // namespace
}  // namespace kaito::testing
