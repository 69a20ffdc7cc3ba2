#include "common/metric_families.h"

#include <limits>

namespace kaito {

prometheus::MetricFamily GaugeFamily(const std::string& name, const std::string& help,
                                     const std::vector<std::pair<MetricLabels, double>>& values) {
  prometheus::MetricFamily family{name, help, prometheus::MetricType::Gauge, {}};
  for (const auto& [labels, value] : values) {
    prometheus::ClientMetric metric;
    metric.label = labels;
    metric.gauge.value = value;
    family.metric.push_back(std::move(metric));
  }
  return family;
}

prometheus::MetricFamily CounterFamily(const std::string& name, const std::string& help,
                                       const std::vector<std::pair<MetricLabels, double>>& values) {
  prometheus::MetricFamily family{name, help, prometheus::MetricType::Counter, {}};
  for (const auto& [labels, value] : values) {
    prometheus::ClientMetric metric;
    metric.label = labels;
    metric.counter.value = value;
    family.metric.push_back(std::move(metric));
  }
  return family;
}

prometheus::MetricFamily CounterFamily(const std::string& name, const std::string& help,
                                       double value) {
  return CounterFamily(name, help, {{MetricLabels{}, value}});
}

prometheus::MetricFamily HistogramFamily(const std::string& name, const std::string& help,
                                         const BucketCounts& buckets) {
  prometheus::MetricFamily family{name, help, prometheus::MetricType::Histogram, {}};
  prometheus::ClientMetric metric;
  for (size_t i = 0; i < buckets.bounds.size(); ++i) {
    metric.histogram.bucket.push_back({buckets.counts[i], buckets.bounds[i]});
  }
  metric.histogram.bucket.push_back({buckets.count, std::numeric_limits<double>::infinity()});
  metric.histogram.sample_count = buckets.count;
  metric.histogram.sample_sum = buckets.sum;
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace kaito
