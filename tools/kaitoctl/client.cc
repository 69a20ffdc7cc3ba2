#include "tools/kaitoctl/client.h"

#include <chrono>
#include <cstdio>

namespace kaito::ctl {

Client::Client(const Globals& globals)
    : globals_(globals),
      channel_(grpc::CreateChannel(globals.server, GrpcChannelCredentials(globals.tls))),
      workspaces_(v1::WorkspaceService::NewStub(channel_)),
      configs_(v1::ConfigService::NewStub(channel_)),
      secrets_(v1::SecretService::NewStub(channel_)),
      system_(v1::SystemService::NewStub(channel_)),
      presets_(v1::PresetService::NewStub(channel_)),
      nodes_(v1::NodeService::NewStub(channel_)) {}

std::unique_ptr<grpc::ClientContext> Client::Context(absl::Time not_after) const {
  if (globals_.request_timeout > absl::ZeroDuration()) {
    not_after = std::min(not_after, absl::Now() + globals_.request_timeout);
  }
  return StreamContext(not_after);
}

std::unique_ptr<grpc::ClientContext> Client::StreamContext(absl::Time not_after) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (not_after != absl::InfiniteFuture()) ctx->set_deadline(absl::ToChronoTime(not_after));
  ctx->set_wait_for_ready(false);
  if (!globals_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + globals_.token);
  return ctx;
}

CallStatus Client::Finished(const grpc::Status& status, const grpc::ClientContext& ctx) const {
  CallStatus out;
  out.status = status;
  out.facts.server = globals_.server;
  out.facts.timeout = globals_.request_timeout;
  out.facts.deadline_passed = ctx.deadline() <= std::chrono::system_clock::now();
  out.facts.connected = channel_->GetState(false) == GRPC_CHANNEL_READY;
  return out;
}

int Fail(const CallStatus& status, const std::string& context) {
  std::fprintf(stderr, "%s\n", FailureLine(status.status, status.facts, context).c_str());
  return 1;
}

int FailLocal(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

void PrintAndFlush(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace kaito::ctl
