// Who is calling, and may they: authentication by bearer token (kube-apiserver's static
// token file) or verified client certificate (CN = user, O = groups), and authorization
// by roles bound per namespace (the policy file), plus Kubernetes' node rule: an agent,
// whose certificate says `system:node:<name>`, acts only for its own node.
//
// Without a token file, a client CA and a policy file the server is open: every call is
// allowed, as "system:anonymous" (dev mode on loopback). With authentication but no
// policy file, every authenticated user may do everything. docs/security.md.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kaito::server {

struct Identity {
  std::string user;
  std::string uid;
  std::vector<std::string> groups;
  // From a client certificate whose CN is "system:node:<name>": the node it may act for.
  std::string node;
  bool anonymous = false;
};

enum class Verb { kGet, kList, kWatch, kCreate, kUpdate, kDelete };
const char* VerbName(Verb verb);

// A call to authorize: `resource` is the plural ("workspaces", "nodes", "presets"),
// `ns` its namespace ("" for cluster-scoped resources, or a list or watch of every
// namespace), `name` the object when there is one.
struct Access {
  Verb verb = Verb::kGet;
  std::string resource;
  std::string ns;
  std::string name;
};

enum class Role { kViewer, kEditor, kAdmin };

struct RoleBinding {
  Role role = Role::kViewer;
  // "*" binds every namespace and the cluster-scoped resources.
  std::vector<std::string> namespaces;
  std::vector<std::string> users;
  std::vector<std::string> groups;
};

// Parses the policy file (YAML: `bindings: [{role, namespaces, users, groups}]`); every
// problem names its binding and field.
absl::StatusOr<std::vector<RoleBinding>> ParseAuthorizationPolicy(const std::string& yaml);

struct StaticToken {
  std::string user;
  std::string uid;
  std::vector<std::string> groups;
};
// Parses kube-apiserver's static token file: `token,user,uid[,"group1,group2"]` per
// line; the map is keyed by SHA-256 of the token, so that a lookup's timing reveals
// nothing of the tokens.
absl::StatusOr<std::map<std::string, StaticToken>> ParseTokenFile(const std::string& csv);

struct AuthOptions {
  std::string token_file;
  std::string policy_file;
  // Client certificates are verified by gRPC against --client-ca-file; this says there is
  // one, so that a certificate's subject counts as an identity.
  bool client_certificates = false;
};

// Answers whether a node may read a Secret: true when a workload placed on it refers to
// it. Set by the composition root.
using NodeSecretCheck =
    std::function<bool(const std::string& node, const std::string& ns, const std::string& name)>;

class Authorizer {
 public:
  static absl::StatusOr<std::unique_ptr<Authorizer>> Create(const AuthOptions& options);

  bool open() const { return open_; }
  void set_node_secret_check(NodeSecretCheck check) { node_secret_check_ = std::move(check); }

  // The caller of `ctx`: UNAUTHENTICATED without valid credentials (when not open).
  absl::StatusOr<Identity> Authenticate(const grpc::ServerContextBase& ctx);
  // PERMISSION_DENIED naming what was refused.
  absl::Status Authorize(const Identity& who, const Access& access);
  // Both.
  absl::StatusOr<Identity> Check(const grpc::ServerContextBase& ctx, const Access& access);

 private:
  Authorizer() = default;
  absl::Status ReloadTokensIfChanged();
  bool Allows(const Identity& who, const Access& access) const;

  bool open_ = true;
  AuthOptions options_;
  std::vector<RoleBinding> bindings_;
  bool have_policy_ = false;
  NodeSecretCheck node_secret_check_;

  absl::Mutex mu_;
  std::map<std::string, StaticToken> tokens_ ABSL_GUARDED_BY(mu_);
  int64_t tokens_mtime_ns_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time tokens_checked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
