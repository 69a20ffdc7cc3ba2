// Real etcd for tests (Debian's etcd-server): one member or a cluster of several, started
// by the test on 127.0.0.1 with its data in a directory of its own, and stopped after.
// Ports come from the kernel (bound to port 0, then handed to etcd); a start that loses
// the port to someone else is retried on new ports.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "support/process.h"

namespace kaito::testing {

struct EtcdTls {
  std::string cert_file;  // The members' serving certificate and key.
  std::string key_file;
  std::string ca_file;  // With client_cert_auth: clients must present one it signed.
  bool client_cert_auth = false;
};

class LocalEtcd {
 public:
  // Starts `members` members (1 or an odd number for a cluster) under `dir` and waits until
  // each serves clients.
  static absl::StatusOr<std::unique_ptr<LocalEtcd>> Start(const std::string& dir, int members = 1,
                                                          const EtcdTls* tls = nullptr);
  ~LocalEtcd();

  // "127.0.0.1:PORT" of member `i`.
  std::string endpoint(int i = 0) const { return members_[i].client; }
  // "etcd://H:P,H:P,..." of every member, for --store.
  std::string store_url() const;
  int size() const { return static_cast<int>(members_.size()); }
  // SIGKILL member `i` (a crash); Restart starts it again on its data and ports.
  void Kill(int i);
  absl::Status Restart(int i);
  // The log of member `i`.
  std::string Log(int i) const;

 private:
  struct Member {
    std::string name, client, peer, data_dir, log;
    Daemon daemon;
  };
  LocalEtcd() = default;
  std::vector<std::string> Argv(const Member& m, bool existing) const;
  absl::Status WaitServing(const std::vector<int>& which, size_t log_offset_of_restart = 0);

  std::string dir_;
  std::string initial_cluster_;
  const EtcdTls* tls_ = nullptr;
  EtcdTls tls_copy_;
  std::vector<Member> members_;
};

}  // namespace kaito::testing
