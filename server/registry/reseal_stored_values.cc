#include "server/registry/reseal_stored_values.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace kaito::server {
namespace {

// Store keys named in one refusal; the count says how many more.
constexpr size_t kMaxNamedKeys = 5;

}  // namespace

absl::StatusOr<ResealResult> ResealStoredValues(store::Store& store, const std::string& prefix,
                                                const ValueTransformer& transformer) {
  auto list = store.List(prefix);
  if (!list.ok()) return list.status();
  ResealResult result;
  result.values = list->items.size();
  std::vector<std::string> unreadable;
  size_t unreadable_count = 0;
  struct Reseal {
    std::string key;
    std::string value;
    int64_t revision;
  };
  std::vector<Reseal> reseals;
  for (store::KeyValue& kv : list->items) {
    auto plain = transformer.Open(kv.key, kv.value);
    if (!plain.ok()) {
      if (++unreadable_count <= kMaxNamedKeys) {
        unreadable.push_back(absl::StrCat(kv.key, " (", plain.status().message(), ")"));
      }
      continue;
    }
    if (!transformer.NeedsReseal(kv.value)) continue;
    auto sealed = transformer.Seal(kv.key, *plain);
    if (!sealed.ok()) return sealed.status();
    reseals.push_back(Reseal{std::move(kv.key), std::move(*sealed), kv.mod_revision});
  }
  if (unreadable_count > 0) {
    std::string message =
        absl::StrCat(unreadable_count, " stored value(s) under ", prefix, " cannot be opened: ");
    for (size_t i = 0; i < unreadable.size(); ++i) {
      absl::StrAppend(&message, i ? "; " : "", unreadable[i]);
    }
    if (unreadable_count > unreadable.size()) {
      absl::StrAppend(&message, "; and ", unreadable_count - unreadable.size(), " more");
    }
    absl::StrAppend(&message,
                    ". Give --encryption-key-file with every key these were sealed with "
                    "(see docs/security.md, \"Encryption at rest\")");
    return absl::FailedPreconditionError(message);
  }

  // Every write is queued before any is waited for, so they share the store's commits.
  // The completions share the tally, which lives until the last of them is done with it.
  struct Tally {
    absl::Mutex mu;
    size_t pending ABSL_GUARDED_BY(mu) = 0;
    size_t resealed ABSL_GUARDED_BY(mu) = 0;
    absl::Status failure ABSL_GUARDED_BY(mu);
  };
  auto tally = std::make_shared<Tally>();
  {
    absl::MutexLock lock(&tally->mu);
    tally->pending = reseals.size();
  }
  for (Reseal& r : reseals) {
    store.Put(std::move(r.key), std::move(r.value), r.revision,
              [tally](absl::StatusOr<int64_t> rev) {
                absl::MutexLock lock(&tally->mu);
                // ABORTED or NOT_FOUND: the key was written or deleted since the list; what
                // is there now was sealed by that write.
                if (rev.ok()) {
                  ++tally->resealed;
                } else if (!absl::IsAborted(rev.status()) && !absl::IsNotFound(rev.status()) &&
                           tally->failure.ok()) {
                  tally->failure = rev.status();
                }
                --tally->pending;
              });
  }
  absl::MutexLock lock(&tally->mu);
  tally->mu.Await(absl::Condition(
      +[](Tally* t) { return t->pending == 0; }, tally.get()));
  if (!tally->failure.ok()) return tally->failure;
  result.resealed = tally->resealed;
  return result;
}

}  // namespace kaito::server
