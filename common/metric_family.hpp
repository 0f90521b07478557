// Building Prometheus metric families by hand, for values read at scrape time
// (relaxed atomics, /proc, worker stats) rather than kept in prometheus-cpp
// metric objects. Shared by the broker's /metrics and the worker's exporter.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <utility>
#include <vector>

namespace jobcast::metrics {

inline prometheus::MetricFamily family(std::string name, std::string help,
                                       prometheus::MetricType type) {
    prometheus::MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
}

// A counter or gauge sample.
inline prometheus::ClientMetric sample(double value, prometheus::MetricType type,
                                       std::vector<prometheus::ClientMetric::Label> labels = {}) {
    prometheus::ClientMetric m;
    m.label = std::move(labels);
    if (type == prometheus::MetricType::Counter)
        m.counter.value = value;
    else
        m.gauge.value = value;
    return m;
}

// A family of one unlabelled counter or gauge.
inline prometheus::MetricFamily single(std::string name, std::string help,
                                       prometheus::MetricType type, double value) {
    auto f = family(std::move(name), std::move(help), type);
    f.metric.push_back(sample(value, type));
    return f;
}

}  // namespace jobcast::metrics
