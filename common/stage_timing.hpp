// Where one event's time goes inside the broker: a histogram per stage of its
// path (jobcast_event_stage_seconds{stage=...}), from the worker's emit to
// the client's socket. Each module observes its own stages (the gateway on
// its thread, the commit listener per batch, the I/O threads per write) with
// relaxed atomics in per-thread slots; the metrics module reads them at
// scrape time. Observations take counts, so one per batch can stand for each
// op of it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace jobcast {

// The stages, in path order.
enum class Stage : std::uint8_t {
    transport,  // the worker's emit (the event's ts) -> received from ZeroMQ
    decode,     // received -> decoded and handed to the writer's queue
    queue,      // handed to the writer -> its commit transaction starts
    commit,     // the transaction: applied and committed
    fanout,     // committed -> serialized and handed to the I/O threads
    write,      // handed to the I/O thread -> written to the client's socket
};
inline constexpr std::size_t kStages = 6;
inline constexpr std::array<std::string_view, kStages> kStageNames = {
    "transport", "decode", "queue", "commit", "fanout", "write"};

// Upper bounds (seconds): from a few µs (a decode) to a second.
inline constexpr std::array<double, 18> kStageBuckets = {
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005,    0.01,    0.025,    0.05,    0.1,    0.25,    0.5,    1,     2.5};

class StageHistogram {
  public:
    struct Snapshot {
        std::array<std::uint64_t, kStageBuckets.size() + 1> counts{};  // per bucket; last: +Inf
        std::uint64_t count = 0;
        double sum_seconds = 0;
    };

    // `n` observations of `elapsed` (negative: 0, a clock that stepped back).
    void observe(std::chrono::nanoseconds elapsed, std::uint64_t n = 1) {
        if (n == 0) return;
        const std::int64_t ns = elapsed.count() < 0 ? 0 : elapsed.count();
        const double seconds = static_cast<double>(ns) / 1e9;
        std::size_t i = 0;
        while (i < kStageBuckets.size() && seconds > kStageBuckets[i])
            ++i;
        Slot& slot = slots_[slot_of_thread()];
        slot.counts[i].fetch_add(n, std::memory_order_relaxed);
        slot.sum_ns.fetch_add(static_cast<std::uint64_t>(ns) * n, std::memory_order_relaxed);
    }

    Snapshot snapshot() const {
        Snapshot s;
        std::uint64_t sum_ns = 0;
        for (const Slot& slot : slots_) {
            for (std::size_t i = 0; i < s.counts.size(); ++i)
                s.counts[i] += slot.counts[i].load(std::memory_order_relaxed);
            sum_ns += slot.sum_ns.load(std::memory_order_relaxed);
        }
        for (auto c : s.counts)
            s.count += c;
        s.sum_seconds = static_cast<double>(sum_ns) / 1e9;
        return s;
    }

  private:
    // A few threads observe each stage (the gateway, the writer, the I/O
    // threads): each its own cache lines; more threads share the slots.
    static constexpr std::size_t kSlots = 8;
    struct alignas(64) Slot {
        std::array<std::atomic<std::uint64_t>, kStageBuckets.size() + 1> counts{};
        std::atomic<std::uint64_t> sum_ns{0};
    };
    static std::size_t slot_of_thread() {
        static std::atomic<std::size_t> threads{0};
        thread_local const std::size_t mine = threads.fetch_add(1) % kSlots;
        return mine;
    }
    std::array<Slot, kSlots> slots_{};
};

}  // namespace jobcast
