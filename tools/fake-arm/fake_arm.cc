#include "tools/fake-arm/fake_arm.h"

#include <httplib.h>

#include <utility>

#include "common/http_listener.h"
#include "presets/catalog.h"
#include "tools/fake-arm/fake_arm_server.h"

namespace kaito::fakearm {

FakeArm::FakeArm(FakeArmOptions options) : options_(std::move(options)) {}

FakeArm::~FakeArm() {
  Stop();
  listener_.reset();  // Before the server its handlers call.
}

absl::Status FakeArm::Start(const std::string& listen) {
  if (listener_ != nullptr) return absl::FailedPreconditionError("kaito-fake-arm already started");
  absl::StatusOr<presets::Catalog> catalog = presets::Catalog::Embedded();
  if (!catalog.ok()) return catalog.status();
  Clock* clock = options_.clock;
  if (clock == nullptr) {
    own_clock_ = std::make_unique<RealClock>();
    clock = own_clock_.get();
  }
  server_ = std::make_unique<FakeArmServer>(options_, *catalog, clock);
  HttpListenerOptions http_options;
  http_options.workers = options_.workers;
  http_options.io_timeout_ms = 10000;
  // Longer than a poll interval of 1 s, so that a client polling every second keeps its
  // connection instead of racing the server's close.
  http_options.keep_alive_timeout_s = 2;
  http_options.keep_alive_max_requests = 1000;
  absl::StatusOr<std::unique_ptr<HttpListener>> listener =
      HttpListener::Bind("kaito-fake-arm", listen, options_.tls, http_options);
  if (!listener.ok()) return listener.status();
  server_->Register((*listener)->http());
  server_->set_port((*listener)->port());
  (*listener)->Start();
  listener_ = std::move(*listener);
  return absl::OkStatus();
}

int FakeArm::port() const { return listener_ != nullptr ? listener_->port() : 0; }

std::string FakeArm::base_url() const { return server_ != nullptr ? server_->base_url() : ""; }

void FakeArm::Stop() {
  if (listener_ != nullptr) listener_->Stop();
}

}  // namespace kaito::fakearm
