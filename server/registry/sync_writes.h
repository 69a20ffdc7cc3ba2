// Blocking forms of the registry's writes, for controller workers: a worker may wait for
// the store to make its write durable (as a controller waits on the API server), but it
// never waits for a cloud operation, a node or a container. Never call these from a
// gRPC reactor, a cache sink or the store's writer thread: that would deadlock.
#pragma once

#include "absl/synchronization/notification.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

namespace internal {
template <typename T, typename Start>
absl::StatusOr<WriteResult<T>> Wait(Start start) {
  absl::Notification done;
  absl::StatusOr<WriteResult<T>> result = absl::UnknownError("no reply");
  start([&](absl::StatusOr<WriteResult<T>> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}
}  // namespace internal

template <typename T>
absl::StatusOr<WriteResult<T>> CreateSync(ObjectRegistry<T>& registry, T object) {
  return internal::Wait<T>(
      [&](WriteDone<T> done) { registry.Create(std::move(object), false, std::move(done)); });
}

template <typename T>
absl::StatusOr<WriteResult<T>> UpdateSync(ObjectRegistry<T>& registry, T object) {
  return internal::Wait<T>(
      [&](WriteDone<T> done) { registry.Update(std::move(object), false, std::move(done)); });
}

template <typename T>
absl::StatusOr<WriteResult<T>> UpdateStatusSync(ObjectRegistry<T>& registry, T object) {
  return internal::Wait<T>(
      [&](WriteDone<T> done) { registry.UpdateStatus(std::move(object), std::move(done)); });
}

template <typename T>
absl::StatusOr<WriteResult<T>> DeleteSync(ObjectRegistry<T>& registry, const std::string& ns,
                                          const std::string& name) {
  return internal::Wait<T>(
      [&](WriteDone<T> done) { registry.Delete(ns, name, "", std::move(done)); });
}

}  // namespace kaito::server
