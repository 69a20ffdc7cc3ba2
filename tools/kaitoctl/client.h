// kaitoctl's connection to kaito-server, the flags every verb shares, and how a failed call
// or a client-side problem is reported (see server_errors.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/tls.h"
#include "kaito/v1/agent.grpc.pb.h"
#include "kaito/v1/config.grpc.pb.h"
#include "kaito/v1/presets.grpc.pb.h"
#include "kaito/v1/system.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "tools/kaitoctl/server_errors.h"

namespace kaito::ctl {

// The global flags, taken before or after the verb.
struct Globals {
  std::string server;
  std::string ns = "default";
  // `-n` was given: a manifest that names another namespace is refused, as kubectl does.
  bool ns_given = false;
  // Each unary call's deadline (`--request-timeout`); zero: none.
  absl::Duration request_timeout = absl::Seconds(30);
  std::string token;  // kubectl's --token.
  TlsClientFiles tls;
};

// A finished call: its status and what this side knew as it ended.
struct CallStatus {
  grpc::Status status;
  CallFacts facts;

  bool ok() const { return status.ok(); }
  grpc::StatusCode code() const { return status.error_code(); }
  std::string message() const { return status.error_message(); }
};

// One channel to the server and its stubs. Used from the main thread only.
class Client {
 public:
  explicit Client(const Globals& globals);

  const Globals& globals() const { return globals_; }

  // A unary call's context: its deadline is --request-timeout from now, or `not_after`
  // when sooner; the bearer token attached.
  std::unique_ptr<grpc::ClientContext> Context(absl::Time not_after = absl::InfiniteFuture()) const;
  // A stream's context: no deadline but `not_after` (watches run until stopped).
  std::unique_ptr<grpc::ClientContext> StreamContext(
      absl::Time not_after = absl::InfiniteFuture()) const;

  // Runs `call(context)` with a `Context(not_after)` and returns how it ended.
  template <typename Call>
  CallStatus Unary(Call call, absl::Time not_after = absl::InfiniteFuture()) {
    auto ctx = Context(not_after);
    grpc::Status status = call(ctx.get());
    return Finished(status, *ctx);
  }
  // How a call made with `ctx` ended.
  CallStatus Finished(const grpc::Status& status, const grpc::ClientContext& ctx) const;

  v1::WorkspaceService::Stub& workspaces() { return *workspaces_; }
  v1::ConfigService::Stub& configs() { return *configs_; }
  v1::SecretService::Stub& secrets() { return *secrets_; }
  v1::SystemService::Stub& system() { return *system_; }
  v1::PresetService::Stub& presets() { return *presets_; }
  v1::NodeService::Stub& nodes() { return *nodes_; }

 private:
  Globals globals_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkspaceService::Stub> workspaces_;
  std::unique_ptr<v1::ConfigService::Stub> configs_;
  std::unique_ptr<v1::SecretService::Stub> secrets_;
  std::unique_ptr<v1::SystemService::Stub> system_;
  std::unique_ptr<v1::PresetService::Stub> presets_;
  std::unique_ptr<v1::NodeService::Stub> nodes_;
};

// Prints the line that reports `status` on stderr (`context`, e.g. "workspace/x", before
// the message) and returns 1, the exit code of every failure.
int Fail(const CallStatus& status, const std::string& context = "");

// Prints `error: <message>` on stderr and returns 1.
int FailLocal(const std::string& message);

// Writes `text` to stdout and flushes it, so that a pipe sees each watch event as it comes.
void PrintAndFlush(const std::string& text);

}  // namespace kaito::ctl
