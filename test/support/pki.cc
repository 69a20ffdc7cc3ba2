#include "support/pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <stdexcept>

namespace kaito::testing {
namespace {

EVP_PKEY* NewKey() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) throw std::runtime_error("EVP_EC_gen failed");
  return key;
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) throw std::runtime_error("bad extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

void WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  bool ok = cert ? PEM_write_X509(f, cert) == 1
                 : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(f);
  chmod(path.c_str(), 0600);
  if (!ok) throw std::runtime_error("cannot encode " + path);
}

X509* NewCertificate(long serial, const std::string& cn, const std::vector<std::string>& groups,
                     EVP_PKEY* key, bool expired) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  if (expired) {
    X509_gmtime_adj(X509_getm_notBefore(cert), -2 * 86400);
    X509_gmtime_adj(X509_getm_notAfter(cert), -1 * 86400);
  } else {
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  }
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  for (const std::string& g : groups) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(g.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

}  // namespace

TestPki::TestPki(std::string dir, std::string name) : dir_(std::move(dir)) {
  EVP_PKEY* key = NewKey();
  X509* cert = NewCertificate(serial_++, name + " test CA", {}, key, false);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  AddExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(cert, cert, NID_subject_key_identifier, "hash");
  if (X509_sign(cert, key, EVP_sha256()) == 0) throw std::runtime_error("cannot sign the CA");
  ca_ = {dir_ + "/" + name + "-ca.pem", dir_ + "/" + name + "-ca-key.pem"};
  WritePem(ca_.cert, cert, nullptr);
  WritePem(ca_.key, nullptr, key);
  ca_key_ = key;
  ca_cert_ = cert;
}

TestPki::~TestPki() {
  EVP_PKEY_free(static_cast<EVP_PKEY*>(ca_key_));
  X509_free(static_cast<X509*>(ca_cert_));
}

CertificateFiles TestPki::Server(const std::string& file_name) {
  return Issue(file_name, "kaito test server", {}, true, false);
}

CertificateFiles TestPki::Client(const std::string& file_name, const std::string& common_name,
                                 const std::vector<std::string>& groups, bool expired) {
  return Issue(file_name, common_name, groups, false, expired);
}

CertificateFiles TestPki::Issue(const std::string& file_name, const std::string& common_name,
                                const std::vector<std::string>& groups, bool server,
                                bool expired) {
  X509* ca = static_cast<X509*>(ca_cert_);
  EVP_PKEY* key = NewKey();
  X509* cert = NewCertificate(serial_++, common_name, groups, key, expired);
  X509_set_issuer_name(cert, X509_get_subject_name(ca));
  AddExtension(cert, ca, NID_basic_constraints, "critical,CA:FALSE");
  AddExtension(cert, ca, NID_key_usage, "critical,digitalSignature,keyEncipherment");
  // Servers also dial out with their certificate (kaito-server to kaito-provisioner).
  AddExtension(cert, ca, NID_ext_key_usage, server ? "serverAuth,clientAuth" : "clientAuth");
  if (server) AddExtension(cert, ca, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  if (X509_sign(cert, static_cast<EVP_PKEY*>(ca_key_), EVP_sha256()) == 0) {
    throw std::runtime_error("cannot sign " + file_name);
  }
  CertificateFiles files{dir_ + "/" + file_name + ".pem", dir_ + "/" + file_name + "-key.pem"};
  WritePem(files.cert, cert, nullptr);
  WritePem(files.key, nullptr, key);
  X509_free(cert);
  EVP_PKEY_free(key);
  return files;
}

}  // namespace kaito::testing
