// `kaito-bench store`: durable creates and gets through kaito-server on etcd, beside etcd's
// own put rate at the same concurrency and beside the SQLite backend, in one run.
//
// Phases, each `seconds` long with `clients` closed loops (one call outstanding each):
//   etcd put (raw)      KV.Put of new keys straight to etcd over `channels` connections, the
//                       value as large as a stored workspace: etcd's own rate, the ceiling
//   create/get (etcd)   CreateWorkspace / GetWorkspace through an in-process kaito-server on
//                       the same etcd (--store etcd://...)
//   create/get (sqlite) the same through an in-process kaito-server on SQLite
// and, with `check_perf`, `etcdctl check perf --load s` against the same etcd (60 s).
//
// With no `etcd` endpoints the benchmark starts one etcd member of its own (/usr/bin/etcd,
// loopback ports from the kernel, data under the bench directory) and stops it after.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace kaito::bench {

struct StoreBenchOptions {
  int clients = 64;
  int channels = 2;
  double seconds = 5;
  std::string etcd;      // "H:P,H:P" of a running etcd; empty: start one here.
  std::string data_dir;  // Empty: a new directory under /tmp, removed after.
  bool check_perf = false;
};

// Runs every phase; the document has "results", "ratios" and "config", or "error".
nlohmann::json RunStoreBench(const StoreBenchOptions& options);

}  // namespace kaito::bench
