// The startup pass of encryption at rest: every current value of a kind must open with
// the configured keys, and values sealed the old way (plaintext, or with a key that is no
// longer the first) are written again sealed with the current key, so that after a key
// rotation and one restart the old key can be removed.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "server/registry/value_transformer.h"
#include "server/store/store.h"

namespace kaito::server {

struct ResealResult {
  size_t values = 0;    // Current values under the prefix.
  size_t resealed = 0;  // Of those, written again.
};

// Opens every current value under `prefix`. FAILED_PRECONDITION when any does not open
// (wrong or missing key, tampered with), naming those store keys (the first few) and
// why, never a value: the server must not serve a kind with objects it cannot read.
// Otherwise writes each value that `transformer.NeedsReseal` again, sealed now, each
// conditional on its revision (a newer write is already sealed), and returns when every
// such write is durable; the store's error when one fails otherwise.
//
// Blocking: for startup, before the kind's cache starts and before the server serves;
// never from a reactor or the store's writer thread. History is not rewritten: older
// revisions keep the sealing they were written with until the store compacts them.
absl::StatusOr<ResealResult> ResealStoredValues(store::Store& store, const std::string& prefix,
                                                const ValueTransformer& transformer);

}  // namespace kaito::server
