// A histogram's figures without a metrics library: cumulative counts per upper bound, sum
// and count, for code that keeps its own statistics (the store) and is read at scrape time
// (HistogramFamily in common/metric_families.h). Not thread-safe: the owner locks.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace kaito {

struct BucketCounts {
  explicit BucketCounts(std::vector<double> upper_bounds = {})
      : bounds(std::move(upper_bounds)), counts(bounds.size(), 0) {}

  void Observe(double value) {
    for (size_t i = 0; i < bounds.size(); ++i) {
      if (value <= bounds[i]) ++counts[i];
    }
    sum += value;
    ++count;
  }

  std::vector<double> bounds;
  // counts[i]: observations <= bounds[i] (cumulative, as Prometheus exposes them).
  std::vector<uint64_t> counts;
  double sum = 0;
  uint64_t count = 0;
};

}  // namespace kaito
