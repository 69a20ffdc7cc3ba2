#include "support/etcd.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kaito::testing {
std::vector<std::string> LocalEtcd::Argv(const Member& m, bool existing) const {
  const std::string scheme = tls_ ? "https://" : "http://";
  std::vector<std::string> argv = {
      "/usr/bin/etcd",
      "--name",
      m.name,
      "--data-dir",
      m.data_dir,
      "--listen-client-urls",
      scheme + m.client,
      "--advertise-client-urls",
      scheme + m.client,
      "--listen-peer-urls",
      "http://" + m.peer,
      "--initial-advertise-peer-urls",
      "http://" + m.peer,
      "--initial-cluster",
      initial_cluster_,
      "--initial-cluster-state",
      existing ? "existing" : "new",
      "--initial-cluster-token",
      "kaito-test",
      "--logger",
      "zap",
      "--log-level",
      "info",
      // No metrics listener and no pprof: only the two ports asked for.
  };
  if (tls_) {
    argv.insert(argv.end(), {"--cert-file", tls_->cert_file, "--key-file", tls_->key_file});
    if (!tls_->ca_file.empty()) argv.insert(argv.end(), {"--trusted-ca-file", tls_->ca_file});
    if (tls_->client_cert_auth) argv.push_back("--client-cert-auth");
  }
  return argv;
}

absl::Status LocalEtcd::WaitServing(const std::vector<int>& which, size_t log_offset) {
  for (int i : which) {
    Member& m = members_[i];
    bool failed = false;
    const bool up = WaitFor(
        [&] {
          const std::string text = ReadFile(m.log);
          const std::string recent = text.size() > log_offset ? text.substr(log_offset) : "";
          if (absl::StrContains(recent, "address already in use") || !m.daemon.Running()) {
            failed = true;
            return true;
          }
          return absl::StrContains(recent, "serving client traffic");
        },
        absl::Seconds(30));
    if (failed || !up) {
      return absl::UnavailableError("etcd member " + m.name +
                                    " did not start: " + ReadFile(m.log).substr(0, 4000));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LocalEtcd>> LocalEtcd::Start(const std::string& dir, int members,
                                                            const EtcdTls* tls) {
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::unique_ptr<LocalEtcd> etcd(new LocalEtcd());
    etcd->dir_ = dir + "/etcd-" + std::to_string(attempt);
    if (tls) {
      etcd->tls_copy_ = *tls;
      etcd->tls_ = &etcd->tls_copy_;
    }
    std::vector<std::string> cluster;
    for (int i = 0; i < members; ++i) {
      Member m;
      m.name = "m" + std::to_string(i);
      m.client = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
      m.peer = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
      m.data_dir = etcd->dir_ + "/" + m.name;
      m.log = etcd->dir_ + "/" + m.name + ".log";
      cluster.push_back(m.name + "=http://" + m.peer);
      etcd->members_.push_back(std::move(m));
    }
    etcd->initial_cluster_ = absl::StrJoin(cluster, ",");
    std::filesystem::create_directories(etcd->dir_);
    std::vector<int> all;
    for (int i = 0; i < members; ++i) {
      auto daemon = Daemon::Start(etcd->Argv(etcd->members_[i], false), etcd->members_[i].log);
      if (!daemon.ok()) return daemon.status();
      etcd->members_[i].daemon = *std::move(daemon);
      all.push_back(i);
    }
    last = etcd->WaitServing(all);
    if (last.ok()) return etcd;
  }
  return last;
}

LocalEtcd::~LocalEtcd() {
  for (Member& m : members_) m.daemon.Stop(absl::Seconds(10));
}

std::string LocalEtcd::store_url() const {
  std::vector<std::string> endpoints;
  for (const Member& m : members_) endpoints.push_back(m.client);
  return "etcd://" + absl::StrJoin(endpoints, ",");
}

void LocalEtcd::Kill(int i) { members_[i].daemon.Kill(); }

absl::Status LocalEtcd::Restart(int i) {
  Member& m = members_[i];
  const size_t offset = ReadFile(m.log).size();
  auto daemon = Daemon::Start(Argv(m, true), m.log);
  if (!daemon.ok()) return daemon.status();
  m.daemon = *std::move(daemon);
  return WaitServing({i}, offset);
}

std::string LocalEtcd::Log(int i) const { return ReadFile(members_[i].log); }

}  // namespace kaito::testing
