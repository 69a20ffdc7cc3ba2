// The standard process metrics of a Prometheus exporter, for every daemon's /metrics:
// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds and process_start_time_seconds (read from /proc at
// scrape time, as the Go and Python clients read them), and kaito_build_info{version,revision}
// with the value 1.
#pragma once

#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace kaito {

class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace kaito
