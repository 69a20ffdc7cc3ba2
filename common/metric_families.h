// Metric families built at scrape time, for collectors that read their figures when
// Prometheus asks (caches, /proc, a provider's state) instead of keeping counters.
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

#include "common/bucket_counts.h"

#include <string>
#include <utility>
#include <vector>

namespace kaito {

using MetricLabels = std::vector<prometheus::ClientMetric::Label>;

// A gauge family with one series per (labels, value); empty labels: an unlabelled series.
prometheus::MetricFamily GaugeFamily(const std::string& name, const std::string& help,
                                     const std::vector<std::pair<MetricLabels, double>>& values);
// A counter family with one series per (labels, value).
prometheus::MetricFamily CounterFamily(const std::string& name, const std::string& help,
                                       const std::vector<std::pair<MetricLabels, double>>& values);
// A counter family with one unlabelled series.
prometheus::MetricFamily CounterFamily(const std::string& name, const std::string& help,
                                       double value);

// A histogram family with one unlabelled series.
prometheus::MetricFamily HistogramFamily(const std::string& name, const std::string& help,
                                         const BucketCounts& buckets);

}  // namespace kaito
