// kaito-bench shim: what the Kubernetes shim (tools/kube-shim) costs over kaito-server's
// gRPC API, both in this process: kaito-server as `kaito-bench api` runs it, and a
// `KubeShim` on 127.0.0.1:0 over its own gRPC channel to it. Phases, each `seconds` long
// with `clients` closed loops of one call outstanding:
//   create   gRPC CreateWorkspace, then the shim's POST of the same workspace as JSON;
//   get      gRPC GetWorkspace, then the shim's GET of the same objects, at `clients` and
//            again at one client (at 64 clients a latency is mostly queueing);
//   floors   the two halves of the shim's GET alone: an `HttpListener` set up as the
//            shim's returning the same JSON with no gRPC call, and the shim's own
//            `KindBackend` (blocking gRPC calls) driven from as many threads;
//   codec    the shim's own steps on one workspace, one thread, no network: protobuf to
//            JSON and back the way the shim does it (and the way it did before), next to
//            protobuf's binary codec;
//   watch    `watches` kubectl-style watch streams of one workspace (raw sockets, one
//            epoll thread), `updates` gRPC updates of it, delivery latency per event, the
//            process's RSS and threads before and after, and the drain after closing.
// HTTP clients are cpp-httplib clients, one per thread, with keep-alive and TCP_NODELAY
// (as kubectl's); gRPC clients are the `api` benchmark's callback loops. Each phase also
// reports its CPU time per op, split by thread name. The text output is the `api` benchmark's, and
// `json` prints one document in its layout (machine, config, results, max_rss_kib).
#pragma once

#include <string>

namespace kaito::bench {

struct ShimBenchOptions {
  int clients = 64;
  int channels = 4;  // gRPC channels of the baseline clients (the shim has its own).
  double seconds = 5;
  int watches = 1000;
  int updates = 20;
  // Wait until every watcher has an update before the next; off: one after another, as
  // the `api` benchmark's fan-out phase.
  bool paced = false;
  // Watch connections being opened at once (connect to response headers); 0: all at once.
  int watch_connects = 0;
  // What the HTTP clients accept: kubectl (Go's transport) sends "gzip".
  std::string accept_encoding = "gzip";
  int max_connections = 1200;  // The shim's `ShimOptions.max_connections`.
  // The shim's GETs of workspaces from its read cache (off: every GET asks the server).
  bool read_cache = true;
  std::string data_dir;        // Empty: a temporary directory, removed at the end.
  bool json = false;
};

// Runs every phase, printing as it goes (or one JSON document at the end); the process's
// exit code: 0, or 1 when the server or the shim cannot start.
int RunShimBench(const ShimBenchOptions& options);

}  // namespace kaito::bench
