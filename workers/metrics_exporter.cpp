#include "workers/metrics_exporter.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <stdexcept>

#include "common/metric_family.hpp"
#include "common/process_metrics.hpp"

namespace jobcast::worker {

namespace {

class WorkerCollectable : public prometheus::Collectable {
  public:
    explicit WorkerCollectable(const Worker& worker) : worker_(worker) {}

    std::vector<prometheus::MetricFamily> Collect() const override {
        using prometheus::MetricType;
        const WorkerStats s = worker_.stats();
        std::vector<prometheus::MetricFamily> out;
        // Consecutive samples of one name go into one family.
        auto add = [&](std::string name, std::string help, MetricType type, double value,
                       std::vector<prometheus::ClientMetric::Label> labels = {}) {
            if (out.empty() || out.back().name != name) {
                out.push_back(metrics::family(std::move(name), std::move(help), type));
            }
            out.back().metric.push_back(metrics::sample(value, type, std::move(labels)));
        };
        auto d = [](std::uint64_t v) { return static_cast<double>(v); };
        add("jobcast_worker_events_emitted_total",
            "Chunk, checkpoint, done and fail messages created by handlers", MetricType::Counter,
            d(s.events_emitted));
        add("jobcast_worker_messages_sent_total", "Frames handed to the socket, re-sends included",
            MetricType::Counter, d(s.messages_sent));
        add("jobcast_worker_messages_resent_total", "Frames sent again after a reconnect or reject",
            MetricType::Counter, d(s.messages_resent));
        add("jobcast_worker_acks_received_total", "Acks received from the broker",
            MetricType::Counter, d(s.acks_received));
        add("jobcast_worker_unacked_messages", "Messages waiting for a broker ack",
            MetricType::Gauge, d(s.unacked_messages));
        add("jobcast_worker_unacked_bytes", "Bytes waiting for a broker ack", MetricType::Gauge,
            d(s.unacked_bytes));
        add("jobcast_worker_emit_waits_total", "Times a handler blocked on the unacked bound",
            MetricType::Counter, d(s.emit_waits));
        add("jobcast_worker_reconnects_total", "New broker connections after silence or shutdown",
            MetricType::Counter, d(s.reconnects));
        add("jobcast_worker_failovers_total",
            "Reconnects that moved to the next broker of the --broker list", MetricType::Counter,
            d(s.failovers));
        add("jobcast_worker_broker", "1 for the broker endpoint this worker uses now",
            MetricType::Gauge, 1, {{"endpoint", s.broker}});
        add("jobcast_worker_rejects_received_total", "Reject messages from the broker",
            MetricType::Counter, d(s.rejects_received));
        add("jobcast_worker_connected", "1 when the broker has welcomed this worker",
            MetricType::Gauge, s.connected ? 1 : 0);
        add("jobcast_worker_jobs_running", "Jobs running in this worker", MetricType::Gauge,
            d(s.jobs_running));
        add("jobcast_worker_jobs_assigned_total", "Jobs assigned by the broker",
            MetricType::Counter, d(s.jobs_assigned));
        add("jobcast_worker_jobs_finished_total", "Jobs ended in this worker, by outcome",
            MetricType::Counter, d(s.jobs_succeeded), {{"outcome", "succeeded"}});
        add("jobcast_worker_jobs_finished_total", "", MetricType::Counter, d(s.jobs_failed),
            {{"outcome", "failed"}});
        add("jobcast_worker_jobs_finished_total", "", MetricType::Counter, d(s.jobs_abandoned),
            {{"outcome", "abandoned"}});
        for (auto& family : process_metric_families())
            out.push_back(std::move(family));
        return out;
    }

  private:
    const Worker& worker_;
};

std::string bind_address(const std::string& listen) {
    if (listen.find(':') == std::string::npos) return "127.0.0.1:" + listen;
    return listen;
}

}  // namespace

class MetricsExporter::Impl {
  public:
    Impl(const Worker& worker, const std::string& listen)
        : collectable_(std::make_shared<WorkerCollectable>(worker)) {
        try {
            exposer_ = std::make_unique<prometheus::Exposer>(bind_address(listen), 2);
        } catch (const std::exception& e) {
            throw std::runtime_error("cannot serve metrics on " + listen + ": " + e.what());
        }
        exposer_->RegisterCollectable(collectable_);
    }
    std::shared_ptr<WorkerCollectable> collectable_;
    std::unique_ptr<prometheus::Exposer> exposer_;
};

MetricsExporter::MetricsExporter(const Worker& worker, const std::string& listen)
    : impl_(std::make_unique<Impl>(worker, listen)) {}
MetricsExporter::~MetricsExporter() = default;

int MetricsExporter::port() const {
    const auto ports = impl_->exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

}  // namespace jobcast::worker
