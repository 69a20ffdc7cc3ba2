// One real Podman service and Docker registry per test process, started on first use and
// stopped at exit, with a busybox image pushed to the registry (so a pull really downloads).
// Shared by the runtime contract suite and the Docker runtime's own tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "support/container_engine.h"
#include "support/temp_dir.h"

namespace kaito::agent {

// One Podman service and registry for the whole suite (each takes a fraction of a second to
// start, the image a push); each test gets its own runtime on them.
struct PodmanWorld {
  testing::TempDir dir;
  std::unique_ptr<testing::LocalRegistry> registry;
  std::unique_ptr<testing::PodmanService> podman;
  std::string image;
  std::string error;

  static PodmanWorld*& Instance() {
    static PodmanWorld* world = nullptr;
    return world;
  }
  static PodmanWorld& Get() {
    PodmanWorld*& world = Instance();
    if (world == nullptr)
      world = [] {
        auto* w = new PodmanWorld();
        // Stopped when the test process exits (ctest runs each test in a process of its own).
        std::atexit([] {
          delete Instance();
          Instance() = nullptr;
        });
        auto registry = testing::LocalRegistry::Start(w->dir.File("registry"));
        if (!registry.ok()) {
          w->error = registry.status().ToString();
          return w;
        }
        w->registry = *std::move(registry);
        auto podman = testing::PodmanService::Start(w->dir.File("podman"), {w->registry->host()});
        if (!podman.ok()) {
          w->error = podman.status().ToString();
          return w;
        }
        w->podman = *std::move(podman);
        w->image = w->registry->host() + "/kaito-test/busybox:1";
        absl::Status s = w->podman->BuildBusyboxImage("localhost/kaito-test/busybox:1");
        if (s.ok()) s = w->podman->PushAndForget("localhost/kaito-test/busybox:1", w->image);
        if (!s.ok()) w->error = s.ToString();
        return w;
      }();
    return *world;
  }
};

}  // namespace kaito::agent
