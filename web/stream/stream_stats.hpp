// Counters of the streaming transports, kept as relaxed atomics on the hot
// path and read by the metrics module at scrape time (no mutex per event).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace jobcast::web {

enum class Transport : std::uint8_t { websocket = 0, sse = 1, longpoll = 2 };
inline constexpr std::size_t kTransports = 3;

// Fixed buckets (seconds) of jobcast_event_delivery_latency_seconds.
inline constexpr std::array<double, 14> kLatencyBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

struct LatencyHistogram {
    std::array<std::atomic<std::uint64_t>, kLatencyBuckets.size() + 1> counts{};  // last: +Inf
    std::atomic<std::uint64_t> sum_us{0};

    void observe_us(std::int64_t us) {
        if (us < 0) us = 0;
        double seconds = static_cast<double>(us) / 1e6;
        std::size_t i = 0;
        while (i < kLatencyBuckets.size() && seconds > kLatencyBuckets[i])
            ++i;
        counts[i].fetch_add(1, std::memory_order_relaxed);
        sum_us.fetch_add(static_cast<std::uint64_t>(us), std::memory_order_relaxed);
    }
};

struct StreamStats {
    std::array<std::atomic<std::int64_t>, kTransports> connections{};
    std::array<std::atomic<std::uint64_t>, kTransports> delivered{};
    std::atomic<std::uint64_t> resumes{0};           // subscriptions with after > 0
    std::atomic<std::uint64_t> replayed{0};          // events sent from the store
    std::atomic<std::uint64_t> catchups{0};          // slow consumers switched to the store
    std::atomic<std::int64_t> catching_up{0};        // subscriptions replaying now
    std::atomic<std::uint64_t> slow_closes{0};       // closed with 4001
    std::atomic<std::uint64_t> op_errors{0};         // error frames sent
    std::atomic<std::uint64_t> coalesced_frames{0};  // live frames merged for a lagging client
    std::atomic<std::int64_t> queued_bytes{0};       // in every connection's outbound queue
    LatencyHistogram latency;
};

}  // namespace jobcast::web
