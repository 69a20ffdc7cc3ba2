// kaitoctl: the command-line client of kaito-server. Verbs, flags and output follow kubectl
// so that Kaito's documentation reads the same with `kaitoctl` in place of `kubectl`
// (docs/cli.md lists what differs). Every failure exits 1; --help exits 0.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "common/version.h"
#include "tools/kaitoctl/client.h"
#include "tools/kaitoctl/commands.h"
#include "tools/kaitoctl/completion.h"
#include "tools/kaitoctl/durations.h"
#include "tools/kaitoctl/explain.h"
#include "tools/kaitoctl/resource_types.h"

namespace kaito::ctl {
namespace {

// The global flags as given, before they are checked.
struct GlobalFlags {
  Globals globals;
  std::string request_timeout;
  std::string legacy_timeout;  // --timeout before the verb (or after one without its own).
};

std::string FromEnv(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : "";
}

// Options every verb takes before or after it. The last of a repeated flag wins, as with
// kubectl.
void AddGlobalFlags(CLI::App& app, GlobalFlags& f) {
  Globals& g = f.globals;
  const std::string env_server = FromEnv("KAITO_SERVER");
  g.server = env_server.empty() ? "127.0.0.1:50051" : env_server;
  g.token = FromEnv("KAITO_TOKEN");
  g.tls.ca_file = FromEnv("KAITO_CERTIFICATE_AUTHORITY");
  g.tls.cert_file = FromEnv("KAITO_CLIENT_CERTIFICATE");
  g.tls.key_file = FromEnv("KAITO_CLIENT_KEY");
  g.tls.insecure_skip_verify = FromEnv("KAITO_INSECURE_SKIP_TLS_VERIFY") == "true";
  const auto last_wins = [](CLI::Option* option) {
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  };
  last_wins(
      app.add_option("-s,--server", g.server, "kaito-server address HOST:PORT (env KAITO_SERVER)")
          ->capture_default_str());
  last_wins(app.add_option("-n,--namespace", g.ns, "Namespace")->capture_default_str());
  last_wins(app.add_option(
      "--request-timeout", f.request_timeout,
      "How long each call may take: 5s, 1m, or seconds; 0 = no limit (default 30s)"));
  last_wins(app.add_option("--timeout", f.legacy_timeout,
                           "The same as --request-timeout (before the verb, or after one that "
                           "has no --timeout of its own)"));
  last_wins(app.add_option("--token", g.token, "Bearer token for the server (env KAITO_TOKEN)"));
  last_wins(app.add_option("--certificate-authority", g.tls.ca_file,
                           "Verify the server's certificate against this CA; the connection uses "
                           "TLS (env KAITO_CERTIFICATE_AUTHORITY)"));
  last_wins(app.add_option("--client-certificate", g.tls.cert_file,
                           "Client certificate for TLS (env KAITO_CLIENT_CERTIFICATE)"));
  last_wins(app.add_option("--client-key", g.tls.key_file,
                           "Key of --client-certificate (env KAITO_CLIENT_KEY)"));
  app.add_flag("--insecure-skip-tls-verify", g.tls.insecure_skip_verify,
               "Use TLS without verifying the server's certificate (env "
               "KAITO_INSECURE_SKIP_TLS_VERIFY=true)");
}

// Fills `globals` from the flags; an error names the flag.
absl::Status SettleGlobals(CLI::App& app, GlobalFlags& f) {
  f.globals.ns_given = app.get_option("--namespace")->count() > 0;
  const std::string& text = !f.request_timeout.empty() ? f.request_timeout : f.legacy_timeout;
  if (!text.empty()) {
    absl::StatusOr<absl::Duration> d =
        ParseFlagDuration(f.request_timeout.empty() ? "--timeout" : "--request-timeout", text);
    if (!d.ok()) return d.status();
    f.globals.request_timeout = *d;
  }
  return kaito::CheckTlsClientFiles(f.globals.tls);
}

// Every verb's flags, filled by CLI11.
struct VerbFlags {
  GetOptions get;
  ApplyOptions apply;
  DeleteOptions del;
  WaitOptions wait;
  std::vector<std::string> describe_args;
  std::string explain_target;
  bool explain_recursive = false;
  std::string api_resources_output;
  std::string shell;
  bool client_only = false;
};

constexpr char kResourceHelp[] =
    "TYPE [NAME...] or TYPE/NAME...; TYPE: workspaces (ws, wk, wks), configmaps (cm), secrets, "
    "nodes (no), nodeclaims (nc), workloads (wl), presets, skus";

void AddGet(CLI::App& app, GetOptions& o) {
  auto* get = app.add_subcommand("get", "Display one or many objects");
  get->add_option("resource", o.args, kResourceHelp);
  get->add_option("-o,--output", o.output,
                  "Output format: wide, json, yaml, name, jsonpath=TEMPLATE, "
                  "custom-columns=HEADER:PATH,...");
  get->add_option("-l,--selector", o.selector, "Label selector, e.g. app=phi,tier!=dev");
  get->add_option("--sort-by", o.sort_by, "Sort by a JSONPath, e.g. .metadata.name");
  get->add_flag("-w,--watch", o.watch, "After listing, stream changes (workspaces)");
  get->add_flag("--watch-only", o.watch_only, "Stream changes, without listing first");
  get->add_flag("-A,--all-namespaces", o.all_namespaces, "Every namespace");
  get->add_flag("--show-labels", o.show_labels, "A LABELS column last");
  get->add_flag("--no-headers", o.no_headers, "No header row (tables and custom columns)");
  get->add_flag("--ignore-not-found", o.ignore_not_found, "A missing named object is no error");
  get->add_option("--cloud", o.cloud, "For skus: azure | aws | arc | all (default: the server's)");
}

void AddApply(CLI::App& app, ApplyOptions& o) {
  auto* apply = app.add_subcommand("apply", "Create or update the objects of manifests");
  apply->add_option("-f,--filename", o.filenames, "Manifest file, directory, or - for stdin")
      ->required()
      ->allow_extra_args(false);
  apply->add_flag("-R,--recursive", o.recursive, "Also the subdirectories of -f directories");
  apply->add_flag("--dry-run{server}", o.dry_run,
                  "none | server (validate on the server; bare --dry-run) | client (validate "
                  "here, store nothing)");
}

void AddDelete(CLI::App& app, DeleteOptions& o) {
  auto* del = app.add_subcommand("delete", "Delete workspaces, configmaps and secrets");
  del->add_option("resource", o.args, kResourceHelp);
  del->add_option("-f,--filename", o.filenames, "Delete what these manifests name")
      ->allow_extra_args(false);
  del->add_flag("-R,--recursive", o.recursive, "Also the subdirectories of -f directories");
  del->add_flag("--all", o.all, "Every object of the kind in the namespace");
  del->add_option("-l,--selector", o.selector, "Those matching a label selector");
  del->add_flag("--ignore-not-found", o.ignore_not_found, "A missing object is no error");
  del->add_flag("--wait", o.wait, "Wait until the objects are gone (finalizers done)");
  del->add_option("--timeout", o.timeout,
                  "With --wait: how long to wait for them to be gone (30s, 5m, 1h)")
      ->capture_default_str();
}

void AddWait(CLI::App& app, WaitOptions& o) {
  auto* wait = app.add_subcommand("wait", "Wait for workspaces to meet a condition");
  wait->add_option("resource", o.args, "TYPE/NAME... or TYPE NAME... (workspaces)");
  wait->add_option("--for", o.for_condition,
                   "delete, condition=TYPE[=STATUS] (STATUS defaults to True), or "
                   "jsonpath=PATH[=VALUE]")
      ->required();
  wait->add_option("--timeout", o.timeout, "How long to wait (0: check once; negative: a week)")
      ->capture_default_str();
  wait->add_option("-l,--selector", o.selector, "Those matching a label selector");
  wait->add_flag("--all", o.all, "Every workspace of the namespace");
}

void AddVerbs(CLI::App& app, VerbFlags& v) {
  AddGet(app, v.get);
  AddApply(app, v.apply);
  AddDelete(app, v.del);
  AddWait(app, v.wait);
  auto* describe =
      app.add_subcommand("describe", "Show workspaces, nodes or node claims in detail");
  describe->add_option("resource", v.describe_args, "TYPE [NAME...] or TYPE/NAME...");
  auto* explain = app.add_subcommand("explain", "Show the fields of a kind: TYPE[.field.path]");
  explain->add_option("resource", v.explain_target, "e.g. workspace, workspace.status.conditions")
      ->required();
  explain->add_flag("--recursive", v.explain_recursive, "Every field below, without descriptions");
  auto* resources = app.add_subcommand("api-resources", "List the kinds kaitoctl serves");
  resources->add_option("-o,--output", v.api_resources_output, "name: plural.group only");
  auto* completion = app.add_subcommand("completion", "Print a shell completion script");
  completion->add_option("shell", v.shell, "bash or zsh")->required();
  auto* version = app.add_subcommand("version", "Show client and server versions");
  version->add_flag("--client", v.client_only, "The client's version only");
}

std::vector<CompletionFlag> FlagsOf(const CLI::App& app) {
  std::vector<CompletionFlag> flags;
  for (const CLI::Option* opt : app.get_options()) {
    const bool takes_value = opt->get_type_size() > 0;
    for (const std::string& s : opt->get_snames()) flags.push_back({"-" + s, takes_value});
    for (const std::string& l : opt->get_lnames()) flags.push_back({"--" + l, takes_value});
  }
  return flags;
}

CompletionSpec CompletionSpecOf(const CLI::App& app) {
  CompletionSpec spec;
  spec.global_flags = FlagsOf(app);
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    spec.verbs.push_back({sub->get_name(), FlagsOf(*sub)});
  }
  for (const ResourceType& type : ResourceTypes()) {
    spec.resource_names.push_back(type.plural);
    spec.resource_names.push_back(type.singular);
    for (const std::string& s : type.short_names) spec.resource_names.push_back(s);
  }
  spec.output_formats = {"json", "yaml", "wide", "name", "jsonpath=", "custom-columns="};
  return spec;
}

// What CLI11 left over (extras are allowed so that they can be reported as kubectl does):
// an unknown verb, an unknown flag, or an argument a verb does not take.
int ReportExtras(const CLI::App& app, const std::vector<std::string>& extras) {
  const std::string& first = extras.front();
  if (absl::StartsWith(first, "-")) return FailLocal("unknown flag: " + first);
  if (app.get_subcommands().empty()) {
    return FailLocal("unknown command \"" + first + "\" for \"kaitoctl\"");
  }
  return FailLocal("unexpected argument \"" + first + "\" for \"kaitoctl " +
                   app.get_subcommands().front()->get_name() + "\"");
}

int Version(Client& c, bool client_only) {
  std::printf("Client Version: %s\n", kaito::Version());
  if (client_only) return 0;
  v1::VersionInfo info;
  CallStatus s = c.Unary([&](grpc::ClientContext* ctx) {
    return c.system().GetVersion(ctx, v1::GetVersionRequest(), &info);
  });
  if (!s.ok()) return Fail(s);
  std::printf("Server Version: %s (store %s, revision %s%s)\n", info.version().c_str(),
              info.store().c_str(), info.resource_version().c_str(),
              info.dev_mode() ? ", dev mode" : "");
  if (!info.replica().empty()) {
    std::printf("Server Replica: %s (leader: %s)\n", info.replica().c_str(),
                info.leader().empty() ? "none now" : info.leader().c_str());
  }
  return 0;
}

int ExplainCommand(const std::string& target, bool recursive) {
  const size_t dot = target.find('.');
  // `workspaces.kaito.sh` names a kind; `workspace.status` a field of one.
  const ResourceType* type = FindResourceType(target);
  std::string path;
  if (type == nullptr) {
    type = FindResourceType(target.substr(0, dot));
    path = dot == std::string::npos ? "" : target.substr(dot + 1);
  }
  if (type == nullptr) {
    return FailLocal("the server doesn't have a resource type \"" + target.substr(0, dot) + "\"");
  }
  absl::StatusOr<std::string> text = Explain(*type, DocumentedApiPool(), path, recursive);
  if (!text.ok()) return FailLocal(std::string(text.status().message()));
  std::printf("%s", text->c_str());
  return 0;
}

// The command CLI11 parsed, run.
int Run(CLI::App& app, GlobalFlags& flags, VerbFlags& v) {
  const auto parsed = [&app](const char* verb) { return app.get_subcommand(verb)->parsed(); };
  if (parsed("completion")) {
    absl::StatusOr<std::string> script = CompletionScript(CompletionSpecOf(app), v.shell);
    if (!script.ok()) return FailLocal(std::string(script.status().message()));
    std::printf("%s", script->c_str());
    return 0;
  }
  if (parsed("explain")) return ExplainCommand(v.explain_target, v.explain_recursive);
  if (parsed("api-resources")) {
    if (!v.api_resources_output.empty() && v.api_resources_output != "name" &&
        v.api_resources_output != "wide") {
      return FailLocal("--output: \"" + v.api_resources_output + "\" (name or wide)");
    }
    std::printf("%s", FormatApiResources(v.api_resources_output == "name").c_str());
    return 0;
  }
  if (absl::Status s = SettleGlobals(app, flags); !s.ok()) {
    return FailLocal(std::string(s.message()));
  }
  Client client(flags.globals);
  if (parsed("get")) return GetCommand(client, v.get);
  if (parsed("apply")) return ApplyCommand(client, v.apply);
  if (parsed("delete")) return DeleteCommand(client, v.del);
  if (parsed("wait")) return WaitCommand(client, v.wait);
  if (parsed("describe")) return DescribeCommand(client, v.describe_args);
  if (parsed("version")) return Version(client, v.client_only);
  std::printf("%s", app.help().c_str());
  return 0;
}

}  // namespace
}  // namespace kaito::ctl

int main(int argc, char** argv) {
  using namespace kaito::ctl;
  CLI::App app{"kaitoctl: the command-line client of the Kaito control plane"};
  app.require_subcommand(0, 1);
  // Global flags also after the verb, as kubectl takes them (`get ws -n team-a`).
  app.fallthrough();
  GlobalFlags flags;
  AddGlobalFlags(app, flags);
  VerbFlags verbs;
  AddVerbs(app, verbs);
  app.allow_extras();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    return FailLocal(e.what());
  }
  if (const std::vector<std::string> extras = app.remaining(true); !extras.empty()) {
    return ReportExtras(app, extras);
  }
  return Run(app, flags, verbs);
}
