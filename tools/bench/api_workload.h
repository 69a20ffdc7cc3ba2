// What the `api` and `shim` benchmarks of kaito-bench share: the workload (its workspace
// and the in-process server's options), the closed loops that drive it, and the figures a
// phase yields, printed one line per phase or as JSON.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "kaito/v1/workspace.pb.h"
#include "server/server_app.h"

namespace kaito::bench {

using Clock = std::chrono::steady_clock;

inline double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// One phase's outcome: every call's latency, successes and failures, and how long it ran.
struct Figures {
  std::string name;
  int64_t ops = 0;
  int64_t errors = 0;
  double seconds = 0;
  std::vector<double> latencies_us;
  // CPU time of the load generator's own threads (ThreadedClosedLoop only; 0 otherwise).
  double client_cpu_seconds = 0;

  // name, ops, errors, seconds, ops_per_second, p50_ms, p99_ms, max_ms. Sorts the latencies.
  nlohmann::json ToJson();
};

// One line: name, throughput, p50, p99, ops and errors of a `Figures::ToJson()` document.
void Print(const nlohmann::json& j);

// The workspace every benchmark creates: an inference preset on an instance type that
// dev mode's catalog knows, so that the server's full validation runs.
v1::Workspace MakeWorkspace(const std::string& name);

// kaito-server as the API benchmarks run it in process: 127.0.0.1:0, no metrics
// listener, the SQLite store under `data_dir`, dev mode and no controllers (the API
// alone, its floor).
server::ServerOptions ApiServerOptions(const std::string& data_dir);

// Called with true just before a loop's clock starts and with false once its last call
// has completed, on the thread that runs the loop: where a caller samples what the phase
// cost (CPU time, memory).
using PhaseMark = std::function<void(bool begin)>;

// Runs `clients` closed loops, each with one RPC outstanding, for `duration`.
// `start(client, seq, done)` issues one RPC and calls done(ok) when it completes; nothing
// blocks, so that the loops cost the client threads of gRPC's callback API only.
Figures ClosedLoop(const std::string& name, int clients, absl::Duration duration,
                   const std::function<void(int, int64_t, std::function<void(bool)>)>& start,
                   const PhaseMark& mark = nullptr);

// Runs `clients` threads, each a closed loop of blocking calls, one outstanding, for
// `duration`. `prepare(client)` runs on the client's thread before the clock starts
// (connect, warm up); then `call(client, seq)` makes one call and says whether it
// succeeded. The threads' CPU time during the timed part is `client_cpu_seconds`.
Figures ThreadedClosedLoop(const std::string& name, int clients, absl::Duration duration,
                           const std::function<void(int)>& prepare,
                           const std::function<bool(int, int64_t)>& call,
                           const PhaseMark& mark = nullptr);

// The store's own write figures after a phase, added to its JSON: store_writes for every
// backend that counts them (SQLite, etcd), and for SQLite store_commits and
// writes_per_commit (how many writes each group commit carried).
void AddStoreFigures(server::store::Store* store, nlohmann::json* j);

using WorkspaceStubs = std::vector<std::unique_ptr<v1::WorkspaceService::Stub>>;

// `stubs` over `channels` gRPC channels to `target`, each its own TCP connection.
WorkspaceStubs DialWorkspaces(const std::string& target, int channels);

// Closed loops of durable CreateWorkspace of new names "ws-<seq>" (MakeWorkspace), and of
// GetWorkspace of the names "ws-0" .. "ws-<existing - 1>", the clients spread over `stubs`.
// `created` counts the creates that succeeded.
Figures CreateLoop(const std::string& name, const WorkspaceStubs& stubs, int clients,
                   absl::Duration duration, std::atomic<int64_t>* created,
                   const PhaseMark& mark = nullptr);
Figures GetLoop(const std::string& name, const WorkspaceStubs& stubs, int clients,
                absl::Duration duration, int64_t existing, const PhaseMark& mark = nullptr);

}  // namespace kaito::bench
