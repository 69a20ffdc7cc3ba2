// kaitoctl against a real kaito-server (port 0, its own data directory), as a kubectl user
// drives it: output formats, global flags anywhere, watches through a pipe, apply and
// delete forms, wait, explain, api-resources, completion and exit codes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::ctl {
namespace {

using ::kaito::testing::BinDir;
using ::kaito::testing::Daemon;
using ::kaito::testing::ReadFile;
using ::kaito::testing::RunCommand;
using ::kaito::testing::RunResult;
using ::kaito::testing::WaitFor;
using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

constexpr char kConfigMaps[] = R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: beta
  labels: {app: chat, tier: gold}
data: {order: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: alpha
data: {order: "2"}
)";

constexpr char kWorkspace[] = R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: phi
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels: {apps: phi}
inference:
  preset:
    name: phi-3-mini-128k-instruct
)";

class KaitoctlServerTest : public ::testing::Test {
 protected:
  // `dev`: controllers and the simulated cloud, so that workspaces become ready; without,
  // the API only.
  void StartServer(bool dev) {
    auto server = kaito::testing::StartServer(
        dir_.path(),
        dev ? std::vector<std::string>{} : std::vector<std::string>{"--no-controllers"}, dev);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // kaitoctl with `args`, the server flag after the verb as often as before it.
  RunResult Ctl(std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {BinDir() + "/kaitoctl", "--server", server_.address()});
    return RunCommand(args, in);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.File(name)) << text;
    return dir_.File(name);
  }

  void TearDown() override {
    if (HasFailure()) std::cerr << ReadFile(dir_.File("server.log")) << std::endl;
  }

  kaito::testing::TempDir dir_;
  kaito::testing::ServerProcess server_;
};

TEST_F(KaitoctlServerTest, CollectionsAreOneListAndANamedObjectPrintsAlone) {
  StartServer(false);
  ASSERT_EQ(Ctl({"apply", "-f", "-"}, kConfigMaps).exit_code, 0);
  for (const char* flag : {"-o", "-o=json", "-ojson", "--output=json"}) {
    std::vector<std::string> args = {"get", "cm", flag};
    if (std::string(flag) == "-o") args.push_back("json");
    RunResult r = Ctl(args);
    ASSERT_EQ(r.exit_code, 0) << flag << ": " << r.err;
    const Json list = Json::parse(r.out);
    EXPECT_EQ(list["kind"], "List") << flag;
    EXPECT_EQ(list["apiVersion"], "v1");
    EXPECT_EQ(list["items"].size(), 2u);
  }
  // One item, and none, are a List too.
  RunResult r = Ctl({"get", "cm", "-l", "app=chat", "-o", "json"});
  EXPECT_EQ(Json::parse(r.out)["items"].size(), 1u);
  r = Ctl({"get", "cm", "-l", "app=none", "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["items"], Json::array());
  r = Ctl({"get", "cm", "-l", "app=none", "-o", "yaml"});
  EXPECT_EQ(r.out, "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n");
  r = Ctl({"get", "cm", "-o", "yaml"});
  EXPECT_THAT(r.out, ::testing::StartsWith("apiVersion: v1\nitems:\n- apiVersion: v1\n"));
  // A named object alone, as kubectl.
  r = Ctl({"get", "cm", "alpha", "-o", "json"});
  EXPECT_EQ(Json::parse(r.out)["kind"], "ConfigMap");
  r = Ctl({"get", "configmap/alpha", "-o", "yaml"});
  EXPECT_THAT(r.out, ::testing::StartsWith("apiVersion: v1\nkind: ConfigMap\n"));
  r = Ctl({"get", "cm", "alpha", "beta", "-o", "json"});
  EXPECT_EQ(Json::parse(r.out)["kind"], "List") << "two names are a collection";
}

TEST_F(KaitoctlServerTest, NameJsonPathCustomColumnsSortLabelsHeaders) {
  StartServer(true);
  ASSERT_EQ(Ctl({"apply", "-f", "-"}, kConfigMaps).exit_code, 0);
  ASSERT_EQ(Ctl({"apply", "-f", "-"}, kWorkspace).exit_code, 0);
  EXPECT_EQ(Ctl({"get", "cm", "-o", "name", "--sort-by", ".metadata.name"}).out,
            "configmap/alpha\nconfigmap/beta\n");
  EXPECT_EQ(Ctl({"get", "ws", "-o", "name"}).out, "workspace.kaito.sh/phi\n");
  EXPECT_EQ(Ctl({"get", "ws/phi", "-o", "name"}).out, "workspace.kaito.sh/phi\n");
  EXPECT_EQ(Ctl({"get", "cm", "-o",
                 "jsonpath={range .items[*]}{.metadata.name}={.data.order}"
                 "{\"\\n\"}{end}",
                 "--sort-by={.data.order}"})
                .out,
            "beta=1\nalpha=2\n");
  EXPECT_EQ(Ctl({"get", "cm", "alpha", "-o", "jsonpath={.data.order}"}).out, "2");
  EXPECT_EQ(Ctl({"get", "cm", "-o", "custom-columns=NAME:.metadata.name,ORDER:.data.order",
                 "--sort-by=.metadata.name"})
                .out,
            "NAME    ORDER\nalpha   2\nbeta    1\n");
  RunResult r = Ctl({"get", "cm", "--show-labels", "--no-headers", "--sort-by=.metadata.name"});
  EXPECT_THAT(r.out, ::testing::ContainsRegex("^alpha +1 +[0-9]+s +<none>\nbeta +1 +[0-9]+s +"
                                              "app=chat,tier=gold\n$"));
  r = Ctl({"get", "ws", "-o", "jsonpath={.items[0].status.conditions[?(@.type==\"X\")].status}"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  r = Ctl({"get", "ws", "-o", "jsonpath={.items["});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::StartsWith("error: jsonpath template \"{.items[\": unclosed"));
}

TEST_F(KaitoctlServerTest, GlobalFlagsAnywhereOnTheLine) {
  StartServer(false);
  const std::string kaitoctl = BinDir() + "/kaitoctl";
  // --server after the verb, the last one winning (the first points nowhere).
  RunResult r = RunCommand({kaitoctl, "--server", "127.0.0.1:1", "apply", "-f", "-", "-n", "team-a",
                            "--server", server_.address()},
                           kConfigMaps);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"get", "cm", "-n", "team-a", "-o", "name"},
                                             {"-n", "team-a", "get", "cm", "-o", "name"},
                                             {"get", "--namespace=team-a", "cm", "-o", "name"}}) {
    std::vector<std::string> argv = {kaitoctl};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--server", server_.address()});
    r = RunCommand(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("configmap/alpha")) << args[1];
  }
  r = RunCommand({kaitoctl, "describe", "ws", "nope", "--server", server_.address(),
                  "--request-timeout", "5s"});
  EXPECT_EQ(r.err, "Error from server (NotFound): workspaces \"nope\" not found\n");
  // A manifest's namespace against -n, as kubectl.
  const std::string other = std::string(kConfigMaps)
                                .replace(std::string(kConfigMaps).find("  name: alpha"), 13,
                                         "  name: alpha\n  namespace: a");
  r = Ctl({"apply", "-n", "b", "-f", "-"}, other);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("error: the namespace from the provided object \"a\" does not "
                               "match the namespace \"b\". You must pass '--namespace=a' to "
                               "perform this operation.\n"));
  r = Ctl({"apply", "-f", "-"}, other);
  EXPECT_EQ(r.exit_code, 0) << "without -n the manifest's namespace is used: " << r.err;
  EXPECT_EQ(Ctl({"get", "cm", "-n", "a", "-o", "name"}).out, "configmap/alpha\n");
}

// A watch through a file (not a terminal) sees each event as it happens, in every format.
TEST_F(KaitoctlServerTest, WatchFlushesEveryEventInEveryFormat) {
  StartServer(true);
  ASSERT_EQ(Ctl({"apply", "-f", "-"}, kWorkspace).exit_code, 0);
  // Ready first, so that the watches below see no more changes of it.
  RunResult ready = Ctl({"wait", "--for=condition=WorkspaceReady", "ws/phi", "--timeout=2m"});
  ASSERT_EQ(ready.exit_code, 0) << ready.err;
  struct Watch {
    std::vector<std::string> flags;
    std::string first;  // Seen for the existing workspace (-w), or the new one.
  };
  const std::vector<Watch> watches = {
      {{"-w", "-o", "name"}, "workspace.kaito.sh/phi\n"},
      {{"-w", "-o", "json"}, "\"name\": \"phi\""},
      {{"-w", "-o", "yaml"}, "name: phi\n"},
      {{"-w", "-o", "jsonpath={.metadata.name};"}, "phi;"},
      {{"-w", "-o", "custom-columns=N:.metadata.name"}, "N\nphi\n"},
      {{"-w", "--no-headers"}, "phi "},
      {{"--watch-only", "-o", "name"}, "workspace.kaito.sh/second\n"},
  };
  std::vector<Daemon> daemons;
  for (size_t i = 0; i < watches.size(); ++i) {
    std::vector<std::string> argv = {BinDir() + "/kaitoctl", "get", "ws", "--server",
                                     server_.address()};
    argv.insert(argv.end(), watches[i].flags.begin(), watches[i].flags.end());
    auto d = Daemon::Start(argv, dir_.File("watch" + std::to_string(i)));
    ASSERT_TRUE(d.ok()) << d.status();
    daemons.push_back(std::move(*d));
  }
  // The -w watches list first.
  for (size_t i = 0; i + 1 < watches.size(); ++i) {
    EXPECT_TRUE(WaitFor(
        [&] {
          return ReadFile(dir_.File("watch" + std::to_string(i))).find(watches[i].first) !=
                 std::string::npos;
        },
        absl::Seconds(20)))
        << absl::StrJoin(watches[i].flags, " ") << ": "
        << ReadFile(dir_.File("watch" + std::to_string(i)));
  }
  std::string second = kWorkspace;
  second.replace(second.find("name: phi\n"), 10, "name: second\n");
  ASSERT_EQ(Ctl({"apply", "-f", "-"}, second).exit_code, 0);
  const std::string only = dir_.File("watch" + std::to_string(watches.size() - 1));
  EXPECT_TRUE(WaitFor([&] { return ReadFile(only).find("second") != std::string::npos; },
                      absl::Seconds(20)))
      << ReadFile(only);
  for (absl::string_view line : absl::StrSplit(ReadFile(only), '\n', absl::SkipEmpty())) {
    EXPECT_EQ(line, "workspace.kaito.sh/second") << "--watch-only lists nothing first";
  }
  EXPECT_TRUE(
      WaitFor([&] { return ReadFile(dir_.File("watch2")).find("---\n") != std::string::npos; },
              absl::Seconds(20)))
      << "yaml documents apart: " << ReadFile(dir_.File("watch2"));
  for (Daemon& d : daemons) d.Stop();
}

// kubectl's events: `get events` lists them oldest first with kubectl's columns, and `-w`
// prints the stored ones, then each new one as the controllers record it.
TEST_F(KaitoctlServerTest, GetEventsListsAndWatches) {
  StartServer(true);
  auto watch =
      Daemon::Start({BinDir() + "/kaitoctl", "get", "events", "-w", "--server", server_.address()},
                    dir_.File("events-watch"));
  ASSERT_TRUE(watch.ok()) << watch.status();
  auto only = Daemon::Start({BinDir() + "/kaitoctl", "get", "ev", "--watch-only", "-o", "name",
                             "--server", server_.address()},
                            dir_.File("events-only"));
  ASSERT_TRUE(only.ok()) << only.status();
  ASSERT_TRUE(
      WaitFor([&] { return !ReadFile(dir_.File("events-watch")).empty(); }, absl::Seconds(20)))
      << "the empty list says so first";
  EXPECT_EQ(ReadFile(dir_.File("events-watch")), "No resources found in default namespace.\n");
  ASSERT_EQ(Ctl({"apply", "-f", "-"}, kWorkspace).exit_code, 0);
  RunResult ready = Ctl({"wait", "--for=condition=WorkspaceReady", "ws/phi", "--timeout=2m"});
  ASSERT_EQ(ready.exit_code, 0) << ready.err;
  EXPECT_TRUE(WaitFor(
      [&] {
        return ReadFile(dir_.File("events-watch")).find("WorkspaceReady") != std::string::npos;
      },
      absl::Seconds(20)))
      << ReadFile(dir_.File("events-watch"));
  const std::string watched = ReadFile(dir_.File("events-watch"));
  EXPECT_THAT(watched, ::testing::ContainsRegex("LAST SEEN +TYPE +REASON +OBJECT +MESSAGE"));
  EXPECT_THAT(watched, ::testing::ContainsRegex("Normal +NodeClaimCreated +workspace/phi "));
  EXPECT_THAT(ReadFile(dir_.File("events-only")), HasSubstr("event/"));

  RunResult listed = Ctl({"get", "events"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, ::testing::StartsWith("LAST SEEN"));
  const size_t created = listed.out.find("NodeClaimCreated"),
               ready_at = listed.out.find("WorkspaceReady");
  ASSERT_NE(created, std::string::npos) << listed.out;
  ASSERT_NE(ready_at, std::string::npos) << listed.out;
  EXPECT_LT(created, ready_at) << "oldest first";
  RunResult wide = Ctl({"get", "events", "-o", "wide", "-A"});
  EXPECT_THAT(wide.out,
              ::testing::ContainsRegex("NAMESPACE +LAST SEEN .* SOURCE +FIRST SEEN +COUNT"));
  RunResult other = Ctl({"get", "events", "-n", "elsewhere"});
  EXPECT_EQ(other.err, "No resources found in elsewhere namespace.\n") << other.out;
  watch->Stop();
  only->Stop();
}

TEST_F(KaitoctlServerTest, ApplyDirectoriesSeveralFilesAndDryRuns) {
  StartServer(true);
  std::filesystem::create_directories(dir_.File("m/sub"));
  Write("m/one.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: {k: v}\n");
  Write("m/two.json", R"({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}})");
  Write("m/notes.txt", "not a manifest");
  Write("m/sub/three.yml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: three}\n");
  const std::string ws = Write("ws.yaml", kWorkspace);

  RunResult r = Ctl({"apply", "--dry-run=client", "-f", dir_.File("m"), "-f", ws});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "configmap/one created (dry run)\nconfigmap/two created (dry run)\n"
            "workspace/phi created (dry run)\n");
  EXPECT_EQ(Ctl({"get", "cm", "-o", "name"}).err, "") << "nothing stored";
  EXPECT_EQ(Ctl({"get", "cm", "-o", "name"}).out, "");
  r = Ctl({"apply", "--dry-run=server", "-f", ws});
  EXPECT_THAT(r.out, ::testing::StartsWith("workspace/phi created (server dry run)\n"));
  EXPECT_THAT(r.out, HasSubstr("quota:            unknown (the simulated provider keeps no quota)"))
      << "dev mode's provisioner is asked, and says it cannot tell";
  r = Ctl({"apply", "--dry-run", "-f", ws});
  EXPECT_THAT(r.out, ::testing::StartsWith("workspace/phi created (server dry run)\n"))
      << "a bare --dry-run is the server's";
  EXPECT_EQ(Ctl({"get", "ws", "-o", "name"}).out, "");

  r = Ctl({"apply", "-R", "-f", dir_.File("m")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "configmap/one created\nconfigmap/two created\nconfigmap/three created\n");
  r = Ctl({"apply", "--dry-run=client", "-f", dir_.File("m/one.yaml")});
  EXPECT_EQ(r.out, "configmap/one configured (dry run)\n");
  r = Ctl({"apply", "-f", dir_.File("nope")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: the path \"" + dir_.File("nope") + "\" does not exist\n");
  r = Ctl({"apply", "--dry-run=maybe", "-f", ws});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("Invalid dry-run value (\"maybe\")"));
}

TEST_F(KaitoctlServerTest, DeleteForms) {
  StartServer(true);
  const std::string m = Write("m.yaml", kConfigMaps);
  ASSERT_EQ(Ctl({"apply", "-f", m}).exit_code, 0);
  RunResult r = Ctl({"delete", "-f", m});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "configmap \"beta\" deleted\nconfigmap \"alpha\" deleted\n");
  r = Ctl({"delete", "-f", m});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("Error from server (NotFound)"));
  EXPECT_EQ(Ctl({"delete", "-f", m, "--ignore-not-found"}).exit_code, 0);

  ASSERT_EQ(Ctl({"apply", "-f", m}).exit_code, 0);
  r = Ctl({"delete", "cm", "-l", "app=chat"});
  EXPECT_EQ(r.out, "configmap \"beta\" deleted\n") << r.err;
  ASSERT_EQ(Ctl({"apply", "-f", m}).exit_code, 0);
  r = Ctl({"delete", "cm", "--all"});
  EXPECT_THAT(r.out, HasSubstr("configmap \"alpha\" deleted\n"));
  EXPECT_THAT(r.out, HasSubstr("configmap \"beta\" deleted\n"));
  ASSERT_EQ(Ctl({"apply", "-f", m}).exit_code, 0);
  r = Ctl({"delete", "cm", "alpha", "beta", "gamma", "--ignore-not-found"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "configmap \"alpha\" deleted\nconfigmap \"beta\" deleted\n");
  r = Ctl({"delete", "cm"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: resource(s) were provided, but no name was specified\n");

  ASSERT_EQ(Ctl({"apply", "-f", "-"}, kWorkspace).exit_code, 0);
  r = Ctl({"delete", "wks/phi"});
  EXPECT_EQ(r.out, "workspace.kaito.sh \"phi\" deleted\n") << r.err;
}

TEST_F(KaitoctlServerTest, WaitForConditionsAndDeletionWithTheWatch) {
  StartServer(true);
  ASSERT_EQ(Ctl({"apply", "-f", "-"}, kWorkspace).exit_code, 0);
  RunResult r = Ctl({"wait", "--for=condition=WorkspaceReady", "ws/phi", "--timeout=2m"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "workspace.kaito.sh/phi condition met\n");
  r = Ctl({"wait", "--for", "jsonpath={.status.state}=Ready", "workspace", "phi"});
  EXPECT_EQ(r.out, "workspace.kaito.sh/phi condition met\n") << r.err;
  const absl::Time start = absl::Now();
  r = Ctl({"wait", "--for=condition=WorkspaceReady=False", "ws/phi", "--timeout=1s"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: timed out waiting for the condition on workspaces/phi\n");
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  r = Ctl({"wait", "--for=condition=WorkspaceReady", "ws/nope", "--timeout=5s"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "Error from server (NotFound): workspaces \"nope\" not found\n");

  // --for=delete ends when the finalizers are done.
  auto waiting = std::async(std::launch::async, [&] {
    return Ctl({"wait", "--for=delete", "ws/phi", "--timeout=2m"});
  });
  ASSERT_EQ(Ctl({"delete", "ws", "phi"}).exit_code, 0);
  r = waiting.get();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "workspace.kaito.sh/phi condition met\n");
  EXPECT_EQ(Ctl({"wait", "--for=delete", "ws/phi"}).exit_code, 0) << "already gone";
}

TEST_F(KaitoctlServerTest, ExplainApiResourcesAndCompletion) {
  RunResult r = RunCommand({BinDir() + "/kaitoctl", "explain", "workspace.status.conditions"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("KIND:       Workspace\n"));
  EXPECT_THAT(r.out, HasSubstr("FIELD: conditions <[]Condition>\n"));
  r = RunCommand({BinDir() + "/kaitoctl", "explain", "workspaces.kaito.sh"});
  EXPECT_THAT(r.out, HasSubstr("FIELDS:\n  apiVersion\t<string>\n"));
  r = RunCommand({BinDir() + "/kaitoctl", "explain", "workspace.nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: field \"nope\" does not exist\n");
  r = RunCommand({BinDir() + "/kaitoctl", "api-resources"});
  EXPECT_THAT(r.out, ::testing::StartsWith("NAME "));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\nworkspaces +ws,wk,wks +kaito.sh/v1beta1 +true "
                                              "+Workspace\n"));

  // The real script completes kaitoctl's own verbs, flags and types.
  r = RunCommand({BinDir() + "/kaitoctl", "completion", "bash"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string script = Write("completion.bash", r.out);
  auto complete = [&](const std::string& words, int cword) {
    return RunCommand({"/bin/bash", "-c",
                       "source '" + script + "' && COMP_WORDS=(kaitoctl " + words +
                           ") && COMP_CWORD=" + std::to_string(cword) +
                           " && _kaitoctl && echo \"${COMPREPLY[*]}\""})
        .out;
  };
  EXPECT_EQ(complete("wa", 1), "wait\n");
  EXPECT_EQ(complete("get --watch-o", 2), "--watch-only\n");
  EXPECT_EQ(complete("wait --fo", 2), "--for\n");
  EXPECT_EQ(complete("get nodec", 2), "nodeclaims nodeclaim\n");
  EXPECT_EQ(complete("-n x delete --ignore", 4), "--ignore-not-found\n");
  r = RunCommand({BinDir() + "/kaitoctl", "completion", "zsh"});
  EXPECT_THAT(r.out, ::testing::StartsWith("#compdef kaitoctl\n"));
  r = RunCommand({BinDir() + "/kaitoctl", "completion", "fish"});
  EXPECT_EQ(r.exit_code, 1);
}

TEST_F(KaitoctlServerTest, EveryFailureExitsOneAndHelpExitsZero) {
  const std::string kaitoctl = BinDir() + "/kaitoctl";
  RunResult r = RunCommand({kaitoctl, "frobnicate"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: unknown command \"frobnicate\" for \"kaitoctl\"\n");
  r = RunCommand({kaitoctl, "get", "ws", "--bogus"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: unknown flag: --bogus\n");
  r = RunCommand({kaitoctl, "get", "ws", "-o"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::StartsWith("error: "));
  r = RunCommand({kaitoctl, "wait", "ws/x"});
  EXPECT_EQ(r.exit_code, 1) << "--for is required";
  EXPECT_THAT(r.err, ::testing::StartsWith("error: "));
  r = RunCommand({kaitoctl, "get", "ws", "--request-timeout", "soon"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("error: --request-timeout: invalid duration \"soon\""));
  r = RunCommand({kaitoctl, "--server", "127.0.0.1:1", "get", "ws"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::StartsWith("error: cannot connect to the server at 127.0.0.1:1"))
      << "no connection is this side's failure";
  for (const std::vector<std::string>& help : std::vector<std::vector<std::string>>{
           {kaitoctl, "--help"}, {kaitoctl, "get", "--help"}, {kaitoctl, "wait", "-h"}}) {
    r = RunCommand(help);
    EXPECT_EQ(r.exit_code, 0) << help.back();
    EXPECT_THAT(r.out, HasSubstr("Usage:"));
  }
  EXPECT_THAT(RunCommand({kaitoctl, "wait", "--help"}).out, HasSubstr("--for"));
}

}  // namespace
}  // namespace kaito::ctl
