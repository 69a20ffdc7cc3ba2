// A throwaway public-key infrastructure for tests, made at run time with OpenSSL (no key
// is ever committed): a CA, and certificates it (or another CA) signs for servers,
// users and nodes, written as PEM files into a directory.
#pragma once

#include <string>
#include <vector>

namespace kaito::testing {

struct CertificateFiles {
  std::string cert;  // PEM certificate path
  std::string key;   // PEM private key path
};

class TestPki {
 public:
  // A CA named `name` whose files go under `dir` (`<name>-ca.pem`, `<name>-ca-key.pem`).
  TestPki(std::string dir, std::string name = "test");
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  const std::string& ca_file() const { return ca_.cert; }

  // A server certificate for 127.0.0.1 and localhost.
  CertificateFiles Server(const std::string& file_name);
  // A client certificate: CN = `common_name`, one O per group. `expired`: valid from two
  // days ago until yesterday.
  CertificateFiles Client(const std::string& file_name, const std::string& common_name,
                          const std::vector<std::string>& groups, bool expired = false);

 private:
  CertificateFiles Issue(const std::string& file_name, const std::string& common_name,
                         const std::vector<std::string>& groups, bool server, bool expired);

  std::string dir_;
  CertificateFiles ca_;
  void* ca_key_ = nullptr;   // EVP_PKEY*
  void* ca_cert_ = nullptr;  // X509*
  long serial_ = 1;
};

}  // namespace kaito::testing
