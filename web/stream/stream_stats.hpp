// Counters of the streaming transports, read by the metrics module at scrape
// time (no mutex per event). Those written per write or per event are
// per-thread (each I/O thread adds to its own cache line, a scrape sums
// them); the rest are relaxed atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/stage_timing.hpp"

namespace jobcast::web {

// A counter written from many threads and read rarely, with the interface of
// the atomic it stands for: each thread adds to its own slot (one cache line
// each; threads beyond the slots share them), load() sums the slots.
template <typename T>
class PerThreadCounter {
  public:
    void fetch_add(T n, std::memory_order = std::memory_order_relaxed) {
        slots_[thread_slot()].value.fetch_add(n, std::memory_order_relaxed);
    }
    void fetch_sub(T n, std::memory_order = std::memory_order_relaxed) {
        slots_[thread_slot()].value.fetch_sub(n, std::memory_order_relaxed);
    }
    T load() const {
        T sum = 0;
        for (const auto& slot : slots_)
            sum += slot.value.load(std::memory_order_relaxed);
        return sum;
    }

  private:
    static constexpr std::size_t kSlots = 16;
    struct alignas(64) Slot {
        std::atomic<T> value{0};
    };
    static std::size_t thread_slot() {
        static std::atomic<std::size_t> next{0};
        thread_local const std::size_t slot = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
        return slot;
    }
    std::array<Slot, kSlots> slots_{};
};

enum class Transport : std::uint8_t { websocket = 0, sse = 1, longpoll = 2 };
inline constexpr std::size_t kTransports = 3;

// Fixed buckets (seconds) of jobcast_event_delivery_latency_seconds.
inline constexpr std::array<double, 14> kLatencyBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

struct LatencyHistogram {
    std::array<PerThreadCounter<std::uint64_t>, kLatencyBuckets.size() + 1> counts{};  // last: +Inf
    PerThreadCounter<std::uint64_t> sum_us;

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
    std::array<PerThreadCounter<std::uint64_t>, kTransports> delivered{};
    std::atomic<std::uint64_t> resumes{0};             // subscriptions with after > 0
    PerThreadCounter<std::uint64_t> replayed;          // events sent from the store
    std::atomic<std::uint64_t> catchups{0};            // slow consumers switched to the store
    std::atomic<std::int64_t> catching_up{0};          // subscriptions replaying now
    std::atomic<std::uint64_t> slow_closes{0};         // closed with 4001
    std::atomic<std::uint64_t> op_errors{0};           // error frames sent
    PerThreadCounter<std::uint64_t> coalesced_frames;  // live frames merged for a lagging client
    PerThreadCounter<std::int64_t> queued_bytes;       // in every connection's outbound queue
    LatencyHistogram latency;
    StageHistogram fanout, write;  // per write of live events (common/stage_timing.hpp)
};

}  // namespace jobcast::web
