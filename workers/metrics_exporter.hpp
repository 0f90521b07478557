// Prometheus metrics of a worker process (events emitted, acks outstanding,
// reconnects, jobs, plus the process metrics) served over HTTP by
// prometheus-cpp's exposer, read from Worker::stats() at scrape time.
#pragma once

#include <memory>
#include <string>

#include "workers/worker.hpp"

namespace jobcast::worker {

class MetricsExporter {
  public:
    // `listen` is "PORT" (loopback) or "HOST:PORT"; port 0 picks a free one.
    // Throws std::runtime_error when it cannot bind.
    MetricsExporter(const Worker& worker, const std::string& listen);
    ~MetricsExporter();
    MetricsExporter(const MetricsExporter&) = delete;
    MetricsExporter& operator=(const MetricsExporter&) = delete;

    int port() const;

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace jobcast::worker
