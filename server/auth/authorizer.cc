#include "server/auth/authorizer.h"

#include <openssl/sha.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/field_errors.h"
#include "common/tls.h"

namespace kaito::server {
namespace {

constexpr char kNodePrefix[] = "system:node:";
constexpr char kAuthenticated[] = "system:authenticated";

std::string Sha256(const std::string& s) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  return std::string(reinterpret_cast<char*>(digest), sizeof(digest));
}

absl::StatusOr<std::string> ReadWhole(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(flag + " " + path + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int64_t MtimeNs(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// One CSV record: fields separated by commas, a field in double quotes may hold commas
// ("" is a quote inside one).
absl::StatusOr<std::vector<std::string>> CsvFields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  if (quoted) return absl::InvalidArgumentError("unterminated quoted field");
  return fields;
}

bool Contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool IsNamespaced(const std::string& resource) {
  return resource != "nodes" && resource != "nodeclaims";
}

bool IsRead(Verb verb) { return verb == Verb::kGet || verb == Verb::kList || verb == Verb::kWatch; }

// What a user may write as an editor: the kinds people author.
bool IsUserKind(const std::string& resource) {
  return resource == "workspaces" || resource == "configmaps" || resource == "secrets";
}

bool RoleAllows(Role role, const Access& a) {
  switch (role) {
    case Role::kAdmin:
      return true;
    case Role::kEditor:
      return IsRead(a.verb) || IsUserKind(a.resource);
    case Role::kViewer:
      return IsRead(a.verb);
  }
  return false;
}

}  // namespace

const char* VerbName(Verb verb) {
  switch (verb) {
    case Verb::kGet: return "get";
    case Verb::kList: return "list";
    case Verb::kWatch: return "watch";
    case Verb::kCreate: return "create";
    case Verb::kUpdate: return "update";
    case Verb::kDelete: return "delete";
  }
  return "?";
}

absl::StatusOr<std::vector<RoleBinding>> ParseAuthorizationPolicy(const std::string& text) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(std::string("not YAML: ") + e.what());
  }
  if (!root.IsMap()) return absl::InvalidArgumentError("expected a mapping with `bindings`");
  FieldErrors errors;
  for (const auto& kv : root) {
    if (kv.first.Scalar() != "bindings") errors.Add(kv.first.Scalar(), "unknown field");
  }
  std::vector<RoleBinding> out;
  const YAML::Node bindings = root["bindings"];
  if (!bindings || !bindings.IsSequence()) {
    errors.Add("bindings", "Required value: a list of bindings");
    return errors.ToStatus("authorization policy");
  }
  for (size_t i = 0; i < bindings.size(); ++i) {
    const std::string path = "bindings[" + std::to_string(i) + "]";
    const YAML::Node b = bindings[i];
    if (!b.IsMap()) {
      errors.Add(path, "expected a mapping");
      continue;
    }
    RoleBinding binding;
    auto strings = [&](const char* field, std::vector<std::string>* into) {
      const YAML::Node list = b[field];
      if (!list) return;
      if (!list.IsSequence()) {
        errors.Add(path + "." + field, "expected a list of strings");
        return;
      }
      for (size_t j = 0; j < list.size(); ++j) {
        if (!list[j].IsScalar() || list[j].Scalar().empty()) {
          errors.Add(path + "." + field + "[" + std::to_string(j) + "]", "expected a non-empty string");
        } else {
          into->push_back(list[j].Scalar());
        }
      }
    };
    for (const auto& kv : b) {
      const std::string key = kv.first.Scalar();
      if (key != "role" && key != "namespaces" && key != "users" && key != "groups") {
        errors.Add(path + "." + key, "unknown field");
      }
    }
    const std::string role = b["role"] && b["role"].IsScalar() ? b["role"].Scalar() : "";
    if (role == "viewer") {
      binding.role = Role::kViewer;
    } else if (role == "editor") {
      binding.role = Role::kEditor;
    } else if (role == "admin") {
      binding.role = Role::kAdmin;
    } else {
      errors.Add(path + ".role", "Unsupported value: \"" + Abbreviate(role) +
                                     "\": supported values: \"viewer\", \"editor\", \"admin\"");
    }
    strings("namespaces", &binding.namespaces);
    strings("users", &binding.users);
    strings("groups", &binding.groups);
    if (binding.namespaces.empty()) errors.Add(path + ".namespaces", "Required value");
    if (binding.users.empty() && binding.groups.empty()) {
      errors.Add(path, "Required value: users or groups");
    }
    out.push_back(std::move(binding));
  }
  if (!errors.empty()) return errors.ToStatus("authorization policy");
  return out;
}

absl::StatusOr<std::map<std::string, StaticToken>> ParseTokenFile(const std::string& csv) {
  std::map<std::string, StaticToken> tokens;
  int line_number = 0;
  for (absl::string_view raw : absl::StrSplit(csv, '\n')) {
    ++line_number;
    std::string line(absl::StripAsciiWhitespace(raw));
    if (line.empty() || line[0] == '#') continue;
    const std::string where = "line " + std::to_string(line_number);
    auto fields = CsvFields(line);
    if (!fields.ok()) return absl::InvalidArgumentError(where + ": " + std::string(fields.status().message()));
    if (fields->size() < 3) {
      return absl::InvalidArgumentError(where + ": expected token,user,uid[,\"group1,group2\"]");
    }
    const std::string& token = (*fields)[0];
    StaticToken t;
    t.user = (*fields)[1];
    t.uid = (*fields)[2];
    if (token.empty() || t.user.empty()) {
      return absl::InvalidArgumentError(where + ": the token and the user must not be empty");
    }
    if (fields->size() > 3) {
      for (absl::string_view g : absl::StrSplit((*fields)[3], ',', absl::SkipWhitespace())) {
        t.groups.emplace_back(absl::StripAsciiWhitespace(g));
      }
    }
    if (!tokens.emplace(Sha256(token), std::move(t)).second) {
      return absl::InvalidArgumentError(where + ": the token repeats an earlier line's");
    }
  }
  return tokens;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(const AuthOptions& options) {
  std::unique_ptr<Authorizer> a(new Authorizer());
  a->options_ = options;
  a->open_ = options.token_file.empty() && options.policy_file.empty() &&
             !options.client_certificates;
  if (!options.policy_file.empty()) {
    if (options.token_file.empty() && !options.client_certificates) {
      return absl::InvalidArgumentError(
          "--authorization-policy-file needs a way to authenticate: --token-auth-file or "
          "--client-ca-file");
    }
    auto text = ReadWhole("--authorization-policy-file", options.policy_file);
    if (!text.ok()) return text.status();
    auto bindings = ParseAuthorizationPolicy(*text);
    if (!bindings.ok()) {
      return absl::InvalidArgumentError("--authorization-policy-file " + options.policy_file +
                                        ": " + std::string(bindings.status().message()));
    }
    a->bindings_ = std::move(*bindings);
    a->have_policy_ = true;
  }
  if (!options.token_file.empty()) {
    absl::MutexLock lock(&a->mu_);
    auto text = ReadWhole("--token-auth-file", options.token_file);
    if (!text.ok()) return text.status();
    auto tokens = ParseTokenFile(*text);
    if (!tokens.ok()) {
      return absl::InvalidArgumentError("--token-auth-file " + options.token_file + ": " +
                                        std::string(tokens.status().message()));
    }
    a->tokens_ = std::move(*tokens);
    a->tokens_mtime_ns_ = MtimeNs(options.token_file);
    a->tokens_checked_ = absl::Now();
  }
  return a;
}

absl::Status Authorizer::ReloadTokensIfChanged() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (now - tokens_checked_ < absl::Seconds(1)) return absl::OkStatus();
  tokens_checked_ = now;
  const int64_t mtime = MtimeNs(options_.token_file);
  if (mtime == tokens_mtime_ns_) return absl::OkStatus();
  auto text = ReadWhole("--token-auth-file", options_.token_file);
  auto tokens = text.ok() ? ParseTokenFile(*text) : text.status();
  if (!tokens.ok()) {
    // Keep serving with the tokens we have; the operator sees why in the log.
    return absl::InternalError("--token-auth-file " + options_.token_file + " not reloaded: " +
                               std::string(tokens.status().message()));
  }
  tokens_ = std::move(*tokens);
  tokens_mtime_ns_ = mtime;
  return absl::OkStatus();
}

absl::StatusOr<Identity> Authorizer::Authenticate(const grpc::ServerContextBase& ctx) {
  if (open_) {
    Identity anonymous;
    anonymous.user = "system:anonymous";
    anonymous.anonymous = true;
    return anonymous;
  }
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  if (it != metadata.end()) {
    const std::string value(it->second.data(), it->second.size());
    if (options_.token_file.empty() || !absl::StartsWithIgnoreCase(value, "bearer ")) {
      return absl::UnauthenticatedError("Unauthorized: unsupported authorization header");
    }
    (void)ReloadTokensIfChanged();
    const std::string digest = Sha256(std::string(absl::StripAsciiWhitespace(value.substr(7))));
    absl::MutexLock lock(&mu_);
    auto token = tokens_.find(digest);
    if (token == tokens_.end()) {
      return absl::UnauthenticatedError("Unauthorized: the bearer token is not valid");
    }
    Identity who;
    who.user = token->second.user;
    who.uid = token->second.uid;
    who.groups = token->second.groups;
    who.groups.push_back(kAuthenticated);
    return who;
  }
  if (options_.client_certificates) {
    auto auth = ctx.auth_context();
    if (auth) {
      if (auto cert = PeerCertificateIdentity(*auth); cert && !cert->common_name.empty()) {
        Identity who;
        who.user = cert->common_name;
        who.groups = cert->organizations;
        who.groups.push_back(kAuthenticated);
        if (absl::StartsWith(who.user, kNodePrefix)) who.node = who.user.substr(strlen(kNodePrefix));
        return who;
      }
    }
  }
  return absl::UnauthenticatedError(
      "Unauthorized: credentials are required (a bearer token or a client certificate)");
}

bool Authorizer::Allows(const Identity& who, const Access& a) const {
  if (open_) return true;
  // Every authenticated identity may read the catalogs and the version.
  if ((a.resource == "presets" || a.resource == "version") && IsRead(a.verb)) return true;
  if (!who.node.empty()) {
    // Kubernetes' node rule: a node registers and reports for itself, and reads only
    // the Secrets its workloads refer to.
    if (a.resource == "nodes") return a.name == who.node && a.verb == Verb::kUpdate;
    if (a.resource == "secrets" && a.verb == Verb::kGet) {
      return node_secret_check_ && node_secret_check_(who.node, a.ns, a.name);
    }
    return false;
  }
  if (!have_policy_) return true;
  for (const RoleBinding& b : bindings_) {
    bool subject = Contains(b.users, who.user);
    for (const std::string& g : who.groups) subject = subject || Contains(b.groups, g);
    if (!subject) continue;
    const bool everywhere = Contains(b.namespaces, "*");
    const bool in_scope = everywhere || (IsNamespaced(a.resource) && !a.ns.empty() &&
                                         Contains(b.namespaces, a.ns));
    if (in_scope && RoleAllows(b.role, a)) return true;
  }
  return false;
}

absl::Status Authorizer::Authorize(const Identity& who, const Access& a) {
  if (Allows(who, a)) return absl::OkStatus();
  std::string where;
  if (!IsNamespaced(a.resource)) {
    where = " at the cluster scope";
  } else if (a.ns.empty()) {
    where = " in every namespace";
  } else {
    where = " in the namespace \"" + Abbreviate(a.ns) + "\"";
  }
  return absl::PermissionDeniedError(
      a.resource + (a.name.empty() ? "" : " \"" + Abbreviate(a.name) + "\"") +
      " is forbidden: User \"" + Abbreviate(who.user) + "\" cannot " + VerbName(a.verb) +
      " resource \"" + a.resource + "\"" + where);
}

absl::StatusOr<Identity> Authorizer::Check(const grpc::ServerContextBase& ctx, const Access& a) {
  auto who = Authenticate(ctx);
  if (!who.ok()) return who.status();
  if (absl::Status s = Authorize(*who, a); !s.ok()) return s;
  return who;
}

}  // namespace kaito::server
