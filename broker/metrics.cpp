#include "broker/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <atomic>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>

#include "broker/gateway.hpp"
#include "broker/security_metrics.hpp"
#include "common/metric_family.hpp"
#include "common/process_metrics.hpp"
#include "common/stage_timing.hpp"
#include "web/streams/durable_stream_stats.hpp"

namespace jobcast::broker {

namespace {

prometheus::Histogram::BucketBoundaries latency_buckets() {
    return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
            0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
}

// Job-level times: from a few milliseconds to hours.
prometheus::Histogram::BucketBoundaries job_time_buckets() {
    return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,    2.5,  5,
            10,    30,   60,    120,  300, 600,  1800, 3600, 7200, 21600};
}

// A histogram sample from per-bucket counts (`count_at(i)`, i = bounds.size():
// +Inf) and the observations' sum.
template <typename Bounds, typename CountAt>
prometheus::ClientMetric histogram_sample(
    const Bounds& bounds, CountAt count_at, double sum,
    std::vector<prometheus::ClientMetric::Label> labels = {}) {
    prometheus::ClientMetric h;
    h.label = std::move(labels);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        cumulative += count_at(i);
        h.histogram.bucket.push_back({cumulative, bounds[i]});
    }
    cumulative += count_at(bounds.size());
    h.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    h.histogram.sample_count = cumulative;
    h.histogram.sample_sum = sum;
    return h;
}

// A prometheus counter that mirrors a monotonically increasing number kept elsewhere.
void mirror(prometheus::Counter& counter, std::uint64_t total) {
    double now = static_cast<double>(total);
    if (now > counter.Value()) counter.Increment(now - counter.Value());
}

}  // namespace

class Metrics::Impl {
  public:
    Impl()
        : registry_(std::make_shared<prometheus::Registry>()),
          ingested_(prometheus::BuildCounter()
                        .Name("jobcast_events_ingested_total")
                        .Help("Events committed to the log, by kind")
                        .Register(*registry_)),
          commit_seconds_(prometheus::BuildHistogram()
                              .Name("jobcast_store_commit_seconds")
                              .Help("Time to apply and commit one group-commit transaction")
                              .Register(*registry_)
                              .Add({}, latency_buckets())),
          batch_events_(
              prometheus::BuildHistogram()
                  .Name("jobcast_store_batch_events")
                  .Help("Events per group-commit transaction")
                  .Register(*registry_)
                  .Add({}, prometheus::Histogram::BucketBoundaries{1, 4, 16, 64, 256, 1024, 4096,
                                                                   16384, 65536})),
          jobs_(prometheus::BuildGauge()
                    .Name("jobcast_jobs")
                    .Help("Jobs in the store, by state")
                    .Register(*registry_)),
          finished_(prometheus::BuildCounter()
                        .Name("jobcast_jobs_finished_total")
                        .Help("Jobs that reached a terminal state, by outcome")
                        .Register(*registry_)),
          queue_depth_(prometheus::BuildGauge()
                           .Name("jobcast_queue_depth")
                           .Help("Jobs waiting for a worker")
                           .Register(*registry_)
                           .Add({})),
          workers_(prometheus::BuildGauge()
                       .Name("jobcast_workers")
                       .Help("Connected workers")
                       .Register(*registry_)
                       .Add({})),
          leases_lost_(prometheus::BuildCounter()
                           .Name("jobcast_leases_lost_total")
                           .Help("Leases taken from a worker that stopped heart-beating or "
                                 "dropped the job; the job is requeued")
                           .Register(*registry_)
                           .Add({})),
          gateway_stalls_(prometheus::BuildCounter()
                              .Name("jobcast_gateway_stalls_total")
                              .Help("Rounds of the worker gateway longer than a heartbeat (the "
                                    "broker was paused, starved of CPU or blocked on the store)")
                              .Register(*registry_)
                              .Add({})),
          rejected_(prometheus::BuildCounter()
                        .Name("jobcast_rejected_messages_total")
                        .Help("Worker messages rejected, by reason")
                        .Register(*registry_)),
          http_(prometheus::BuildCounter()
                    .Name("jobcast_http_requests_total")
                    .Help("HTTP requests by route template and status code")
                    .Register(*registry_)),
          params_refused_(prometheus::BuildCounter()
                              .Name("jobcast_params_refused_total")
                              .Help("Job submissions refused (422) because their params break "
                                    "the type's JSON Schema, by type")
                              .Register(*registry_)),
          queue_wait_(prometheus::BuildHistogram()
                          .Name("jobcast_job_queue_wait_seconds")
                          .Help("Submission to first lease by a worker")
                          .Register(*registry_)
                          .Add({}, job_time_buckets())),
          duration_(prometheus::BuildHistogram()
                        .Name("jobcast_job_duration_seconds")
                        .Help("Submission to terminal state, by outcome")
                        .Register(*registry_)),
          build_info_(prometheus::BuildGauge()
                          .Name("jobcast_build_info")
                          .Help("Build information")
                          .Register(*registry_)),
          cluster_registry_(std::make_shared<prometheus::Registry>()),
          round_seconds_(prometheus::BuildHistogram()
                             .Name("jobcast_cluster_round_seconds")
                             .Help("Engine commit rounds: first command sent to WAIT reaching "
                                   "the replicas")
                             .Register(*cluster_registry_)
                             .Add({}, latency_buckets())) {
        for (auto kind : {EventKind::state, EventKind::progress, EventKind::token, EventKind::log,
                          EventKind::result, EventKind::error}) {
            ingested_by_kind_[static_cast<std::size_t>(kind)] =
                &ingested_.Add({{"kind", std::string(to_string(kind))}});
        }
        for (auto state : {JobState::succeeded, JobState::failed, JobState::cancelled}) {
            finished_by_outcome_[static_cast<std::size_t>(state)] =
                &finished_.Add({{"outcome", std::string(to_string(state))}});
            duration_by_outcome_[static_cast<std::size_t>(state)] =
                &duration_.Add({{"outcome", std::string(to_string(state))}}, job_time_buckets());
        }
        for (auto state : {JobState::queued, JobState::running, JobState::succeeded,
                           JobState::failed, JobState::cancelled}) {
            jobs_by_state_[static_cast<std::size_t>(state)] =
                &jobs_.Add({{"state", std::string(to_string(state))}});
        }
        rejected_malformed_ = &rejected_.Add({{"reason", "malformed"}});
        rejected_oversize_ = &rejected_.Add({{"reason", "oversize"}});
        rejected_lease_ = &rejected_.Add({{"reason", "lease"}});
        rejected_unknown_peer_ = &rejected_.Add({{"reason", "unknown_worker"}});
        rejected_identity_ = &rejected_.Add({{"reason", "identity"}});
        rejected_duplicate_ = &rejected_.Add({{"reason", "duplicate"}});
        build_info_.Add({{"version", JOBCAST_VERSION}}).Set(1);
    }

    void on_commit(const store::CommittedBatch& batch) {
        std::array<std::uint64_t, 6> by_kind{};
        for (const auto& job : batch.events) {
            for (const auto& e : job.events)
                ++by_kind[static_cast<std::size_t>(e.kind)];
        }
        for (std::size_t k = 0; k < by_kind.size(); ++k) {
            if (by_kind[k]) ingested_by_kind_[k]->Increment(static_cast<double>(by_kind[k]));
        }
        // One observation per job change (never per event).
        for (const auto& job : batch.job_changes) {
            if (is_terminal(job.state)) {
                const auto outcome = static_cast<std::size_t>(job.state);
                finished_by_outcome_[outcome]->Increment();
                if (job.finished_at >= job.created_at) {
                    duration_by_outcome_[outcome]->Observe(
                        static_cast<double>(job.finished_at - job.created_at) / 1e3);
                }
            } else if (job.state == JobState::running && job.attempt == 1 &&
                       !job.cancel_requested && job.started_at >= job.created_at) {
                // The first lease (later attempts wait after a requeue, not
                // after submission, and are not counted here).
                queue_wait_.Observe(static_cast<double>(job.started_at - job.created_at) / 1e3);
            }
        }
        // Stage timing, per op: its wait in the writer's queue, its transaction.
        if (batch.started != std::chrono::steady_clock::time_point{}) {
            for (const auto& [submitted, ops] : batch.submitted)
                queue_stage_.observe(batch.started - submitted, ops);
            commit_stage_.observe(batch.finished - batch.started, batch.ops);
        }
        commit_seconds_.Observe(batch.commit_seconds);
        if (cluster_mode_.load(std::memory_order_relaxed))
            round_seconds_.Observe(batch.commit_seconds);
        batch_events_.Observe(static_cast<double>(batch.event_count));
    }

    // Families built from the streaming counters at scrape time: the hot
    // path only bumps relaxed atomics (see web/stream/stream_stats.hpp).
    void add_stream_families(std::vector<prometheus::MetricFamily>& out) {
        using prometheus::MetricType;
        const char* transports[] = {"websocket", "sse", "longpoll"};
        using metrics::family;
        using metrics::sample;
        auto connections = family("jobcast_connections", "Open streaming connections, by transport",
                                  MetricType::Gauge);
        auto delivered =
            family("jobcast_events_delivered_total",
                   "Events written to client sockets, by transport", MetricType::Counter);
        for (std::size_t t = 0; t < web::kTransports; ++t) {
            connections.metric.push_back(
                sample(static_cast<double>(streams_->connections[t].load()), MetricType::Gauge,
                       {{"transport", transports[t]}}));
            delivered.metric.push_back(sample(static_cast<double>(streams_->delivered[t].load()),
                                              MetricType::Counter, {{"transport", transports[t]}}));
        }
        out.push_back(std::move(connections));
        out.push_back(std::move(delivered));
        auto scalar = [&](std::string name, std::string help, MetricType type, double value) {
            out.push_back(metrics::single(std::move(name), std::move(help), type, value));
        };
        scalar("jobcast_subscriptions", "Live job subscriptions", MetricType::Gauge,
               static_cast<double>(subscriptions_ ? subscriptions_() : 0));
        scalar("jobcast_resumes_total", "Subscriptions that resumed after a seq",
               MetricType::Counter, static_cast<double>(streams_->resumes.load()));
        scalar("jobcast_replayed_events_total", "Events sent from the store (replay, catch-up)",
               MetricType::Counter, static_cast<double>(streams_->replayed.load()));
        scalar("jobcast_slow_consumer_catchups_total",
               "Subscribers switched to catch-up from the store because they fell behind",
               MetricType::Counter, static_cast<double>(streams_->catchups.load()));
        scalar("jobcast_subscriptions_catching_up",
               "Subscriptions reading from the store (replaying or catching up) right now",
               MetricType::Gauge, static_cast<double>(streams_->catching_up.load()));
        scalar("jobcast_client_queued_bytes",
               "Bytes waiting in the outbound queues of all streaming connections",
               MetricType::Gauge, static_cast<double>(streams_->queued_bytes.load()));
        scalar("jobcast_slow_consumer_closes_total",
               "Connections closed because their client stopped reading", MetricType::Counter,
               static_cast<double>(streams_->slow_closes.load()));
        scalar("jobcast_ws_op_errors_total", "Error frames sent in answer to client ops",
               MetricType::Counter, static_cast<double>(streams_->op_errors.load()));
        scalar("jobcast_coalesced_frames_total",
               "Live frames merged into one write for a connection with a backlog",
               MetricType::Counter, static_cast<double>(streams_->coalesced_frames.load()));

        auto latency =
            family("jobcast_event_delivery_latency_seconds",
                   "Worker timestamp to written to the client socket", MetricType::Histogram);
        latency.metric.push_back(histogram_sample(
            web::kLatencyBuckets, [&](std::size_t i) { return streams_->latency.counts[i].load(); },
            static_cast<double>(streams_->latency.sum_us.load()) / 1e6));
        out.push_back(std::move(latency));
    }

    // jobcast_event_stage_seconds: each stage from the module that times it
    // (common/stage_timing.hpp); a stage nobody times here is left out.
    void add_stage_family(std::vector<prometheus::MetricFamily>& out) {
        std::array<const StageHistogram*, kStages> stages{};
        auto at = [&](Stage stage) -> const StageHistogram*& {
            return stages[static_cast<std::size_t>(stage)];
        };
        if (gateway_) {
            at(Stage::transport) = &gateway_->transport;
            at(Stage::decode) = &gateway_->decode;
        }
        at(Stage::queue) = &queue_stage_;
        at(Stage::commit) = &commit_stage_;
        if (streams_) {
            at(Stage::fanout) = &streams_->fanout;
            at(Stage::write) = &streams_->write;
        }
        auto f = metrics::family("jobcast_event_stage_seconds",
                                 "Where an event's time goes in the broker, by stage of its path: "
                                 "transport (worker emit to received from ZeroMQ), decode (to the "
                                 "writer's queue), queue (to its transaction), commit, fanout "
                                 "(committed to handed to the I/O threads), write (to written to "
                                 "the client socket)",
                                 prometheus::MetricType::Histogram);
        for (std::size_t i = 0; i < kStages; ++i) {
            if (!stages[i]) continue;
            const auto snap = stages[i]->snapshot();
            f.metric.push_back(
                histogram_sample(kStageBuckets, [&](std::size_t b) { return snap.counts[b]; },
                                 snap.sum_seconds, {{"stage", std::string(kStageNames[i])}}));
        }
        out.push_back(std::move(f));
    }

    // The Durable Streams under /v1/streams/ (web/streams/durable_stream_stats.hpp).
    void add_durable_stream_families(std::vector<prometheus::MetricFamily>& out,
                                     const web::streams::DurableStreamStats& s) {
        using metrics::family;
        using metrics::sample;
        using prometheus::MetricType;
        auto value = [](const auto& atomic) {
            return static_cast<double>(atomic.load(std::memory_order_relaxed));
        };
        auto created = family("jobcast_streams_created_total",
                              "Streams created under /v1/streams/, by kind (new or fork)",
                              MetricType::Counter);
        for (std::size_t i = 0; i < web::streams::kCreatedKinds.size(); ++i) {
            created.metric.push_back(
                sample(value(s.created[i]), MetricType::Counter,
                       {{"kind", std::string(web::streams::kCreatedKinds[i])}}));
        }
        out.push_back(std::move(created));
        auto deleted = family("jobcast_streams_deleted_total",
                              "Streams deleted, by cause (a DELETE, or their TTL or Expires-At)",
                              MetricType::Counter);
        deleted.metric.push_back(
            sample(value(s.deleted), MetricType::Counter, {{"cause", "delete"}}));
        deleted.metric.push_back(
            sample(value(s.expired), MetricType::Counter, {{"cause", "expired"}}));
        out.push_back(std::move(deleted));
        auto appends = family("jobcast_stream_appends_total",
                              "Appends (POST) to streams, by result", MetricType::Counter);
        for (std::size_t i = 0; i < web::streams::kAppendResults.size(); ++i) {
            appends.metric.push_back(
                sample(value(s.appends[i]), MetricType::Counter,
                       {{"result", std::string(web::streams::kAppendResults[i])}}));
        }
        out.push_back(std::move(appends));
        out.push_back(metrics::single("jobcast_stream_appended_bytes_total",
                                      "Bytes of the appends taken", MetricType::Counter,
                                      value(s.appended_bytes)));
        auto readers = family("jobcast_stream_live_readers",
                              "Live reads of /v1/streams/ open now, by mode", MetricType::Gauge);
        for (std::size_t i = 0; i < web::streams::kLiveModes.size(); ++i) {
            readers.metric.push_back(sample(value(s.live_readers[i]), MetricType::Gauge,
                                            {{"mode", std::string(web::streams::kLiveModes[i])}}));
        }
        out.push_back(std::move(readers));
    }

    void add_cluster_families(std::vector<prometheus::MetricFamily>& out, const ClusterFigures& c) {
        using metrics::family;
        using metrics::sample;
        using prometheus::MetricType;
        for (auto& f : cluster_registry_->Collect())
            out.push_back(std::move(f));
        auto scalar = [&](std::string name, std::string help, MetricType type, double value) {
            out.push_back(metrics::single(std::move(name), std::move(help), type, value));
        };
        scalar("jobcast_cluster_engine_up",
               "1 while a node of the Redis cluster answers the broker's health check",
               MetricType::Gauge, c.engine_up ? 1 : 0);
        scalar("jobcast_cluster_wait_timeouts_total",
               "WAIT answers with fewer replicas than needed (the round waits, unacknowledged)",
               MetricType::Counter, static_cast<double>(c.wait_timeouts));
        auto degraded = family("jobcast_cluster_shard_degraded",
                               "1 while a shard's primary is down or its replicas do not "
                               "acknowledge: its writes pause",
                               MetricType::Gauge);
        for (const auto& shard : c.shards)
            degraded.metric.push_back(sample(shard.degraded ? 1 : 0, MetricType::Gauge,
                                             {{"shard", shard.slots}, {"primary", shard.primary}}));
        out.push_back(std::move(degraded));
        auto retries =
            family("jobcast_cluster_retries_total",
                   "Engine requests and commit rounds sent again, by cause", MetricType::Counter);
        for (const auto& [cause, total] : c.retries)
            retries.metric.push_back(
                sample(static_cast<double>(total), MetricType::Counter, {{"cause", cause}}));
        out.push_back(std::move(retries));
        scalar("jobcast_cluster_remote_events_total",
               "Events committed by other brokers and delivered here over the live feed",
               MetricType::Counter, static_cast<double>(c.remote_events));
        auto gaps = family("jobcast_cluster_gap_fills_total",
                           "Live events pub/sub had not brought, read from the store: after a "
                           "(re)subscription (feed) or when a batch skipped ahead (hub)",
                           MetricType::Counter);
        gaps.metric.push_back(sample(static_cast<double>(c.feed_gap_fills), MetricType::Counter,
                                     {{"source", "feed"}}));
        gaps.metric.push_back(
            sample(static_cast<double>(c.hub_gap_fills), MetricType::Counter, {{"source", "hub"}}));
        out.push_back(std::move(gaps));
        auto publishes =
            family("jobcast_cluster_publishes_total",
                   "Live batches published to other brokers, by result", MetricType::Counter);
        publishes.metric.push_back(
            sample(static_cast<double>(c.publishes), MetricType::Counter, {{"result", "ok"}}));
        publishes.metric.push_back(sample(static_cast<double>(c.publish_failures),
                                          MetricType::Counter, {{"result", "failed"}}));
        out.push_back(std::move(publishes));
        auto hints = family("jobcast_cluster_hints_total",
                            "Hints on the partitions' hint channels (a job queued, a cancel "
                            "asked for), by kind, published by this broker or received here",
                            MetricType::Counter);
        for (const auto& h : c.hints) {
            hints.metric.push_back(sample(static_cast<double>(h.published), MetricType::Counter,
                                          {{"kind", h.kind}, {"direction", "published"}}));
            hints.metric.push_back(sample(static_cast<double>(h.received), MetricType::Counter,
                                          {{"kind", h.kind}, {"direction", "received"}}));
        }
        out.push_back(std::move(hints));
        scalar("jobcast_cluster_brokers", "Brokers sharing the cluster with a fresh heartbeat",
               MetricType::Gauge, static_cast<double>(c.brokers));
        scalar("jobcast_cluster_queued_ops", "Store ops waiting for the engine", MetricType::Gauge,
               static_cast<double>(c.queued_ops));
    }

    std::string scrape() {
        std::lock_guard lock(scrape_mutex_);
        if (gateway_) {
            queue_depth_.Set(static_cast<double>(gateway_->queue_depth.load()));
            workers_.Set(static_cast<double>(gateway_->workers.load()));
            mirror(leases_lost_, gateway_->leases_lost.load());
            mirror(gateway_stalls_, gateway_->stalls.load());
            mirror(*rejected_malformed_, gateway_->rejected_malformed.load());
            mirror(*rejected_oversize_, gateway_->rejected_oversize.load());
            mirror(*rejected_lease_, gateway_->rejected_lease.load());
            mirror(*rejected_unknown_peer_, gateway_->rejected_unknown_peer.load());
            mirror(*rejected_identity_, gateway_->rejected_identity.load());
            mirror(*rejected_duplicate_, gateway_->duplicates.load());
        }
        if (job_counts_) {
            // A store that cannot answer now (cluster mode: the engine is
            // away) leaves the last counts shown.
            std::vector<std::pair<JobState, std::int64_t>> counts;
            try {
                counts = job_counts_();
                for (auto* g : jobs_by_state_)
                    g->Set(0);
            } catch (const store::StoreError&) {
            }
            for (const auto& [state, n] : counts) {
                jobs_by_state_[static_cast<std::size_t>(state)]->Set(static_cast<double>(n));
            }
        }
        if (http_counts_) {
            for (const auto& [route, code, total] : http_counts_()) {
                auto key = std::make_pair(route, code);
                auto it = http_by_route_.find(key);
                if (it == http_by_route_.end()) {
                    it =
                        http_by_route_
                            .emplace(key,
                                     &http_.Add({{"route", route}, {"code", std::to_string(code)}}))
                            .first;
                }
                mirror(*it->second, total);
            }
        }
        if (params_refusals_) {
            for (const auto& [type, total] : params_refusals_()) {
                auto it = params_refused_by_type_.find(type);
                if (it == params_refused_by_type_.end()) {
                    it = params_refused_by_type_
                             .emplace(type, &params_refused_.Add({{"type", type}}))
                             .first;
                }
                mirror(*it->second, total);
            }
        }
        auto families = registry_->Collect();
        if (streams_) add_stream_families(families);
        add_stage_family(families);
        for (auto& family : process_metric_families())
            families.push_back(std::move(family));
        if (security_) add_security_families(families, *security_);
        if (durable_streams_) add_durable_stream_families(families, *durable_streams_);
        if (cluster_figures_) add_cluster_families(families, cluster_figures_());
        return prometheus::TextSerializer().Serialize(families);
    }

    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>& ingested_;
    prometheus::Histogram& commit_seconds_;
    prometheus::Histogram& batch_events_;
    prometheus::Family<prometheus::Gauge>& jobs_;
    prometheus::Family<prometheus::Counter>& finished_;
    prometheus::Gauge& queue_depth_;
    prometheus::Gauge& workers_;
    prometheus::Counter& leases_lost_;
    prometheus::Counter& gateway_stalls_;
    prometheus::Family<prometheus::Counter>& rejected_;
    prometheus::Family<prometheus::Counter>& http_;
    prometheus::Family<prometheus::Counter>& params_refused_;
    prometheus::Histogram& queue_wait_;
    prometheus::Family<prometheus::Histogram>& duration_;
    prometheus::Family<prometheus::Gauge>& build_info_;

    StageHistogram queue_stage_, commit_stage_;  // written by the commit listener

    std::shared_ptr<prometheus::Registry> cluster_registry_;
    prometheus::Histogram& round_seconds_;
    std::atomic<bool> cluster_mode_{false};
    std::function<ClusterFigures()> cluster_figures_;

    std::array<prometheus::Counter*, 6> ingested_by_kind_{};
    std::array<prometheus::Counter*, 5> finished_by_outcome_{};
    std::array<prometheus::Histogram*, 5> duration_by_outcome_{};
    std::array<prometheus::Gauge*, 5> jobs_by_state_{};
    prometheus::Counter* rejected_malformed_ = nullptr;
    prometheus::Counter* rejected_oversize_ = nullptr;
    prometheus::Counter* rejected_lease_ = nullptr;
    prometheus::Counter* rejected_unknown_peer_ = nullptr;
    prometheus::Counter* rejected_identity_ = nullptr;
    prometheus::Counter* rejected_duplicate_ = nullptr;
    std::map<std::pair<std::string, int>, prometheus::Counter*> http_by_route_;
    std::map<std::string, prometheus::Counter*> params_refused_by_type_;

    std::mutex scrape_mutex_;
    const GatewayStats* gateway_ = nullptr;
    const web::StreamStats* streams_ = nullptr;
    const web::SecurityStats* security_ = nullptr;
    const web::streams::DurableStreamStats* durable_streams_ = nullptr;
    std::function<std::size_t()> subscriptions_;
    std::function<std::vector<std::pair<JobState, std::int64_t>>()> job_counts_;
    std::function<std::vector<std::tuple<std::string, int, std::uint64_t>>()> http_counts_;
    std::function<std::map<std::string, std::uint64_t>()> params_refusals_;
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;
void Metrics::on_commit(const store::CommittedBatch& batch) {
    impl_->on_commit(batch);
}
// The sources may be set while /metrics is already served (cluster mode
// serves it while the engine is awaited): under the scrape's lock.
void Metrics::watch_gateway(const GatewayStats* stats) {
    std::lock_guard lock(impl_->scrape_mutex_);
    impl_->gateway_ = stats;
}
void Metrics::watch_streams(const web::StreamStats* stats,
                            std::function<std::size_t()> subscriptions) {
    std::lock_guard lock(impl_->scrape_mutex_);
    impl_->streams_ = stats;
    impl_->subscriptions_ = std::move(subscriptions);
}
void Metrics::watch_job_counts(
    std::function<std::vector<std::pair<JobState, std::int64_t>>()> counts) {
    std::lock_guard lock(impl_->scrape_mutex_);
    impl_->job_counts_ = std::move(counts);
}
void Metrics::watch_http(
    std::function<std::vector<std::tuple<std::string, int, std::uint64_t>>()> f) {
    std::lock_guard lock(impl_->scrape_mutex_);
    impl_->http_counts_ = std::move(f);
}
void Metrics::watch_security(const web::SecurityStats* stats) {
    std::lock_guard lock(impl_->scrape_mutex_);
    impl_->security_ = stats;
}
void Metrics::watch_durable_streams(const web::streams::DurableStreamStats* stats) {
    std::lock_guard lock(impl_->scrape_mutex_);
    impl_->durable_streams_ = stats;
}
void Metrics::watch_params_refusals(std::function<std::map<std::string, std::uint64_t>()> f) {
    std::lock_guard lock(impl_->scrape_mutex_);
    impl_->params_refusals_ = std::move(f);
}
void Metrics::watch_cluster(std::function<ClusterFigures()> figures) {
    std::lock_guard lock(impl_->scrape_mutex_);
    impl_->cluster_figures_ = std::move(figures);
    impl_->cluster_mode_.store(true, std::memory_order_relaxed);
}
std::string Metrics::scrape() {
    return impl_->scrape();
}

}  // namespace jobcast::broker
