#include "common/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

namespace kaito {
namespace {

absl::Status CheckPemFile(const std::string& flag, const std::string& path, const char* marker) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(flag + " " + path + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find(marker) == std::string::npos) {
    return absl::InvalidArgumentError(flag + " " + path + ": not a PEM file (no \"" +
                                      std::string(marker) + "\")");
  }
  return absl::OkStatus();
}

std::string Text(X509_NAME* name, int nid, int* index) {
  *index = X509_NAME_get_index_by_NID(name, nid, *index);
  if (*index < 0) return "";
  X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, *index);
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(entry);
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

absl::Status CheckTlsServerFiles(const TlsServerFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert-file and --tls-key-file go together");
  }
  if (!files.enabled()) {
    if (!files.client_ca_file.empty()) {
      return absl::InvalidArgumentError("--client-ca-file needs --tls-cert-file and --tls-key-file");
    }
    return absl::OkStatus();
  }
  if (absl::Status s = CheckPemFile("--tls-cert-file", files.cert_file, "-----BEGIN CERTIFICATE");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckPemFile("--tls-key-file", files.key_file, "PRIVATE KEY"); !s.ok()) {
    return s;
  }
  if (!files.client_ca_file.empty()) {
    return CheckPemFile("--client-ca-file", files.client_ca_file, "-----BEGIN CERTIFICATE");
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> GrpcServerCredentials(const TlsServerFiles& files) {
  if (!files.enabled()) return grpc::InsecureServerCredentials();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key_file, files.cert_file, files.client_ca_file, kCertificateRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!files.client_ca_file.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(files.require_client_certificate
                                      ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                      : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

absl::Status CheckTlsClientFiles(const TlsClientFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError("--client-certificate and --client-key go together");
  }
  if (!files.ca_file.empty()) {
    if (absl::Status s =
            CheckPemFile("--certificate-authority", files.ca_file, "-----BEGIN CERTIFICATE");
        !s.ok()) {
      return s;
    }
  }
  if (!files.cert_file.empty()) {
    if (absl::Status s =
            CheckPemFile("--client-certificate", files.cert_file, "-----BEGIN CERTIFICATE");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckPemFile("--client-key", files.key_file, "PRIVATE KEY"); !s.ok()) {
      return s;
    }
  }
  if (files.enabled() && files.ca_file.empty() && !files.insecure_skip_verify) {
    return absl::InvalidArgumentError(
        "TLS needs --certificate-authority to verify the server (or --insecure-skip-tls-verify)");
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ChannelCredentials> GrpcChannelCredentials(const TlsClientFiles& files) {
  if (!files.enabled()) return grpc::InsecureChannelCredentials();
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (!files.cert_file.empty() || !files.ca_file.empty()) {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        files.key_file, files.cert_file, files.ca_file, kCertificateRefreshSeconds);
  }
  grpc::experimental::TlsChannelCredentialsOptions options;
  if (provider) options.set_certificate_provider(provider);
  if (!files.ca_file.empty()) options.watch_root_certs();
  if (!files.cert_file.empty()) options.watch_identity_key_cert_pairs();
  if (files.insecure_skip_verify) {
    options.set_verify_server_certs(false);
    options.set_check_call_host(false);
    options.set_certificate_verifier(
        std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  }
  return grpc::experimental::TlsCredentials(options);
}

std::optional<CertificateIdentity> IdentityOfCertificate(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return std::nullopt;
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return std::nullopt;
  CertificateIdentity id;
  X509_NAME* subject = X509_get_subject_name(cert);
  int index = -1;
  id.common_name = Text(subject, NID_commonName, &index);
  index = -1;
  while (true) {
    std::string org = Text(subject, NID_organizationName, &index);
    if (index < 0) break;
    if (!org.empty()) id.organizations.push_back(org);
  }
  X509_free(cert);
  return id;
}

std::optional<CertificateIdentity> PeerCertificateIdentity(const grpc::AuthContext& auth) {
  // gRPC sets this property only for a certificate it verified against the client CA.
  std::vector<grpc::string_ref> pem = auth.FindPropertyValues("x509_pem_cert");
  if (pem.empty()) return std::nullopt;
  return IdentityOfCertificate(std::string(pem[0].data(), pem[0].size()));
}

}  // namespace kaito
