// jobcast_event_stage_seconds: each stage of an event's path observed where
// it happens, once per op or event, and exposed under its stage label.
#include <catch2/catch.hpp>

#include <chrono>
#include <sstream>
#include <string>

#include "broker/gateway_config.hpp"
#include "broker/metrics.hpp"
#include "common/stage_timing.hpp"

using namespace jobcast;
using namespace std::chrono_literals;

namespace {

// The value of one series ("name{labels}") in a scrape; -1 when absent.
double sample(const std::string& scrape, const std::string& series) {
    std::istringstream lines(scrape);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    }
    return -1;
}

std::string stage(const std::string& name, const std::string& suffix, const std::string& le = "") {
    std::string labels = "stage=\"" + name + "\"";
    if (!le.empty()) labels += ",le=\"" + le + "\"";
    return "jobcast_event_stage_seconds_" + suffix + "{" + labels + "}";
}

}  // namespace

TEST_CASE("a stage histogram counts each observation in its bucket, n at a time", "[stages]") {
    StageHistogram h;
    h.observe(3us);      // <= 5 µs
    h.observe(40us, 4);  // <= 50 µs, four ops of one batch
    h.observe(-2ms);     // a clock that stepped back: 0
    h.observe(10s);      // beyond the last bound: +Inf
    h.observe(1ms, 0);   // nothing
    const auto s = h.snapshot();
    CHECK(s.count == 7);
    CHECK(s.counts[0] == 2);  // 3 µs and the clamped 0
    CHECK(s.counts[3] == 4);  // (25, 50] µs
    CHECK(s.counts.back() == 1);
    CHECK(s.sum_seconds == Approx(3e-6 + 4 * 40e-6 + 10));
}

TEST_CASE("each commit's ops are observed once in the queue and commit stages", "[stages]") {
    broker::Metrics metrics;
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    store::CommittedBatch batch;
    batch.ops = 3;
    batch.submitted = {{t0, 2}, {t0 + 2100us, 1}};  // two runs: 3 ms and 0.9 ms in the queue
    batch.started = t0 + 3ms;
    batch.finished = batch.started + 4ms;
    batch.commit_seconds = 0.004;
    metrics.on_commit(batch);

    // A commit the store did not time (the cluster's engine rounds): no stage.
    store::CommittedBatch untimed;
    untimed.ops = 5;
    untimed.commit_seconds = 0.002;
    metrics.on_commit(untimed);

    const std::string text = metrics.scrape();
    CHECK(sample(text, stage("queue", "count")) == 3);
    CHECK(sample(text, stage("queue", "sum")) == Approx(2 * 0.003 + 0.0009));
    CHECK(sample(text, stage("queue", "bucket", "0.001")) == 1);
    CHECK(sample(text, stage("queue", "bucket", "0.0025")) == 1);
    CHECK(sample(text, stage("queue", "bucket", "0.005")) == 3);
    CHECK(sample(text, stage("commit", "count")) == 3);
    CHECK(sample(text, stage("commit", "sum")) == Approx(3 * 0.004));
    CHECK(sample(text, stage("commit", "bucket", "0.0025")) == 0);
    CHECK(sample(text, stage("commit", "bucket", "0.005")) == 3);
    // Both commits are still in the commit-time histogram.
    CHECK(sample(text, "jobcast_store_commit_seconds_count") == 2);
    // Stages timed by modules not watched here are left out.
    CHECK(sample(text, stage("decode", "count")) == -1);
    CHECK(sample(text, stage("write", "count")) == -1);
}

TEST_CASE("the gateway's and the streams' stages appear under their labels", "[stages]") {
    broker::Metrics metrics;
    broker::GatewayStats gateway;
    web::StreamStats streams;
    metrics.watch_gateway(&gateway);
    metrics.watch_streams(&streams, [] { return std::size_t{0}; });
    gateway.transport.observe(300us, 5);
    gateway.decode.observe(7us, 5);
    streams.fanout.observe(60us, 200);
    streams.write.observe(2ms, 200);

    const std::string text = metrics.scrape();
    CHECK(sample(text, stage("transport", "count")) == 5);
    CHECK(sample(text, stage("transport", "bucket", "0.00025")) == 0);
    CHECK(sample(text, stage("transport", "bucket", "0.0005")) == 5);
    CHECK(sample(text, stage("decode", "bucket", "1e-05")) == 5);
    CHECK(sample(text, stage("fanout", "count")) == 200);
    CHECK(sample(text, stage("fanout", "sum")) == Approx(200 * 60e-6));
    CHECK(sample(text, stage("write", "bucket", "0.001")) == 0);
    CHECK(sample(text, stage("write", "bucket", "0.0025")) == 200);
    CHECK(sample(text, stage("queue", "count")) == 0);
}
