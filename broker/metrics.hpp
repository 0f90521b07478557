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

#include "persistence/store.hpp"
#include "web/stream/stream_stats.hpp"

namespace jobcast::web {
struct SecurityStats;
}

namespace jobcast::broker {

struct GatewayStats;

class Metrics {
  public:
    Metrics();
    ~Metrics();

    // Writer thread, once per commit.
    void on_commit(const store::CommittedBatch& batch);
    // Sources read at scrape time.
    void watch_gateway(const GatewayStats* stats);
    void watch_streams(const web::StreamStats* stats, std::function<std::size_t()> subscriptions);
    void watch_job_counts(std::function<std::vector<std::pair<JobState, std::int64_t>>()> counts);
    // (route, code) -> total, read at scrape time.
    void watch_http(std::function<std::vector<std::tuple<std::string, int, std::uint64_t>>()> f);

    void watch_security(const web::SecurityStats* stats);
    // type -> submissions refused by the type's params schema, read at scrape time.
    void watch_params_refusals(std::function<std::map<std::string, std::uint64_t>()> f);

    // Prometheus text exposition format 0.0.4.
    std::string scrape();

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace jobcast::broker
