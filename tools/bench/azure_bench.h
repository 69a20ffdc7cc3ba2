// kaito-bench azure: the Azure provider under load, against an in-process kaito-fake-arm
// that answers every request after `latency` and ends each create `operation` after its PUT
// (Retry-After 1 s on the PUT and on every poll, as AKS sends). Phases:
//   single      one claim alone, create to Running, next to the fake's own time for that
//               claim: the sum of its requests' server-side time plus the Retry-After
//               waits the fake asked for (from the fake's journal);
//   concurrent  `claims` creates at once: each claim's create-to-Running against the same
//               fake's own time, the process's threads and RSS before and during.
// The provider's added time is (measured - fake's own) / fake's own.
#pragma once

#include <nlohmann/json.hpp>

#include "absl/time/time.h"

namespace kaito::bench {

struct AzureBenchOptions {
  int claims = 100;
  absl::Duration latency = absl::Milliseconds(50);
  absl::Duration operation = absl::Seconds(2);
  // The provider's client-side limits (the defaults of kaito-provisioner are 20/s, burst 100).
  double requests_per_second = 1000;
  int burst = 1000;
};

nlohmann::json RunAzureBench(const AzureBenchOptions& options);

}  // namespace kaito::bench
