// The broker's Prometheus metrics (names from DESIGN.md). Hot paths never
// touch a prometheus-cpp mutex per event: the commit listener observes once
// per batch, and counters kept as relaxed atomics elsewhere (gateway, web)
// are folded in when /metrics is scraped.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "persistence/store.hpp"
#include "web/stream/stream_stats.hpp"

namespace jobcast::web {
struct SecurityStats;
namespace streams {
struct DurableStreamStats;
}
}  // namespace jobcast::web

namespace jobcast::broker {

struct GatewayStats;

// Cluster mode: the engine and the fan-out between brokers, read at scrape time.
struct ClusterFigures {
    bool engine_up = false;  // a node answered the last health check
    std::uint64_t wait_timeouts = 0;
    struct Shard {
        std::string slots;
        std::string primary;
        bool degraded = false;  // primary down, or its replicas do not acknowledge
    };
    std::vector<Shard> shards;
    // Requests and rounds re-sent, by cause (moved, ask, tryagain,
    // clusterdown, connection, refused).
    std::vector<std::pair<std::string, std::uint64_t>> retries;
    std::uint64_t remote_events = 0;  // events from other brokers' commits, live
    // Gaps in the live feed filled from the store: after a (re)subscription
    // (the feed's catch-ups that found events) and when a batch skipped ahead (the hub).
    std::uint64_t feed_gap_fills = 0;
    std::uint64_t hub_gap_fills = 0;
    std::uint64_t publishes = 0;  // live batches published to other brokers
    std::uint64_t publish_failures = 0;
    // Hints on the partitions' hint channels, by kind (ready, cancel).
    struct Hints {
        std::string kind;
        std::uint64_t published = 0;
        std::uint64_t received = 0;
    };
    std::vector<Hints> hints;
    std::uint64_t brokers = 0;     // brokers with a fresh heartbeat
    std::uint64_t queued_ops = 0;  // ops waiting for the engine
};

class Metrics {
  public:
    Metrics();
    ~Metrics();

    // Writer thread, once per commit.
    void on_commit(const store::CommittedBatch& batch);
    // Cluster mode: the jobcast_cluster_* families, and each commit's time
    // observed as an engine round. Before the store commits anything.
    void watch_cluster(std::function<ClusterFigures()> figures);
    // Sources read at scrape time.
    void watch_gateway(const GatewayStats* stats);
    void watch_streams(const web::StreamStats* stats, std::function<std::size_t()> subscriptions);
    void watch_job_counts(std::function<std::vector<std::pair<JobState, std::int64_t>>()> counts);
    // (route, code) -> total, read at scrape time.
    void watch_http(std::function<std::vector<std::tuple<std::string, int, std::uint64_t>>()> f);

    void watch_security(const web::SecurityStats* stats);
    // /v1/streams/: created, deleted, appends by result, live readers.
    void watch_durable_streams(const web::streams::DurableStreamStats* stats);
    // type -> submissions refused by the type's params schema, read at scrape time.
    void watch_params_refusals(std::function<std::map<std::string, std::uint64_t>()> f);

    // Prometheus text exposition format 0.0.4.
    std::string scrape();

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace jobcast::broker
