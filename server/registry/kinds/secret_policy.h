// The Secret kind: values are write-only (redacted on every read), `stringData` merged
// into `data`, type immutable.
#pragma once

#include "kaito/v1/config.pb.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

KindPolicy<v1::Secret> SecretPolicy();

}  // namespace kaito::server
