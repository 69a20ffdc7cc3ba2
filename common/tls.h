// TLS for every daemon's gRPC ports and for the clients that dial them (kaitoctl, agents,
// kaito-server to kaito-provisioner), on gRPC's TLS credentials with file watchers: a
// certificate, key or CA file replaced on disk is picked up within a minute without a
// restart. Also: the identity in a peer's client certificate (CN = user, O = groups, as
// Kubernetes reads them).
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kaito {

// How often changed certificate files are looked for.
inline constexpr unsigned kCertificateRefreshSeconds = 60;

// A server's --tls-cert-file, --tls-key-file and --client-ca-file.
struct TlsServerFiles {
  std::string cert_file;
  std::string key_file;
  // Client certificates signed by this CA are verified (and trusted for identity);
  // `require_client_certificate` refuses connections without one.
  std::string client_ca_file;
  bool require_client_certificate = false;

  bool enabled() const { return !cert_file.empty(); }
};

// Checks that the files are given together and are readable PEM: a daemon refuses to
// start with a clear message instead of serving without TLS or failing on first use.
absl::Status CheckTlsServerFiles(const TlsServerFiles& files);

// TLS credentials when `files` are enabled; insecure (plaintext) otherwise.
std::shared_ptr<grpc::ServerCredentials> GrpcServerCredentials(const TlsServerFiles& files);

// A client's kubectl-style options: --certificate-authority, --client-certificate,
// --client-key, --insecure-skip-tls-verify.
struct TlsClientFiles {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool insecure_skip_verify = false;

  bool enabled() const { return !ca_file.empty() || !cert_file.empty() || insecure_skip_verify; }
};

absl::Status CheckTlsClientFiles(const TlsClientFiles& files);

// TLS channel credentials when `files` are enabled; insecure otherwise.
std::shared_ptr<grpc::ChannelCredentials> GrpcChannelCredentials(const TlsClientFiles& files);

struct CertificateIdentity {
  std::string common_name;
  std::vector<std::string> organizations;
};

// The subject of a PEM certificate; nullopt when it does not parse.
std::optional<CertificateIdentity> IdentityOfCertificate(const std::string& pem);

// The verified client certificate of a call's peer; nullopt without one.
std::optional<CertificateIdentity> PeerCertificateIdentity(const grpc::AuthContext& auth);

}  // namespace kaito
