#include "server/store/store.h"

#include <future>

namespace kaito::server::store {
namespace {

template <typename Start>
absl::StatusOr<int64_t> Wait(Start start) {
  std::promise<absl::StatusOr<int64_t>> promise;
  auto future = promise.get_future();
  start([&promise](absl::StatusOr<int64_t> result) { promise.set_value(std::move(result)); });
  return future.get();
}

thread_local const WriteFence* current_fence = nullptr;

}  // namespace

const WriteFence* CurrentWriteFence() { return current_fence; }

ScopedWriteFence::ScopedWriteFence(const WriteFence* fence) : previous_(current_fence) {
  current_fence = fence;
}

ScopedWriteFence::~ScopedWriteFence() { current_fence = previous_; }

absl::StatusOr<int64_t> PutSync(Store& store, std::string key, std::string value,
                                int64_t expected_revision) {
  return Wait([&](WriteCallback done) {
    store.Put(std::move(key), std::move(value), expected_revision, std::move(done));
  });
}

absl::StatusOr<int64_t> DeleteSync(Store& store, std::string key, int64_t expected_revision) {
  return Wait([&](WriteCallback done) {
    store.Delete(std::move(key), expected_revision, std::move(done));
  });
}

}  // namespace kaito::server::store

namespace kaito::server::store {

absl::Status CheckPrecondition(const std::string& key, int64_t current_mod_revision,
                               int64_t expected_revision, bool is_delete) {
  const bool exists = current_mod_revision > 0;
  if (is_delete && !exists) return absl::NotFoundError("key " + key + " not found");
  if (expected_revision == kAnyRevision) return absl::OkStatus();
  if (expected_revision == kMustNotExist) {
    if (exists) return absl::AlreadyExistsError("key " + key + " already exists");
    return absl::OkStatus();
  }
  if (!exists) return absl::NotFoundError("key " + key + " not found");
  if (current_mod_revision != expected_revision) {
    return absl::AbortedError("key " + key + " is at revision " +
                              std::to_string(current_mod_revision) + ", not " +
                              std::to_string(expected_revision));
  }
  return absl::OkStatus();
}

}  // namespace kaito::server::store
