// The ConfigMap kind: Kubernetes' key and size rules, `immutable`.
#pragma once

#include "kaito/v1/config.pb.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

KindPolicy<v1::ConfigMap> ConfigMapPolicy();

}  // namespace kaito::server
