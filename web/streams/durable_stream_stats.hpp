// Counters of the Durable Streams under /v1/streams/, read by the metrics
// module at scrape time (broker/metrics.cpp): relaxed atomics, bumped once
// per request, never per message.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "persistence/stream_log.hpp"  // domain::AppendVerdict

namespace jobcast::web::streams {

// jobcast_stream_appends_total{result}, indexed by domain::AppendVerdict.
inline constexpr std::array<std::string_view, 9> kAppendResults = {"ok",
                                                                   "close_again",
                                                                   "duplicate",
                                                                   "closed",
                                                                   "content_type_mismatch",
                                                                   "stale_epoch",
                                                                   "invalid_epoch_seq",
                                                                   "gap",
                                                                   "stream_seq_conflict"};
static_assert(static_cast<std::size_t>(domain::AppendVerdict::stream_seq_conflict) + 1 ==
              kAppendResults.size());

// The live read modes: jobcast_stream_live_readers{mode}.
enum class LiveMode : std::uint8_t { long_poll = 0, sse = 1 };
inline constexpr std::array<std::string_view, 2> kLiveModes = {"long-poll", "sse"};

// jobcast_streams_created_total{kind}: a new stream, or a fork.
inline constexpr std::array<std::string_view, 2> kCreatedKinds = {"new", "fork"};

struct DurableStreamStats {
    std::array<std::atomic<std::uint64_t>, kCreatedKinds.size()> created{};  // by kind
    std::atomic<std::uint64_t> deleted{0};                                   // DELETE
    std::atomic<std::uint64_t> expired{0};  // deleted by their TTL or Expires-At
    std::array<std::atomic<std::uint64_t>, kAppendResults.size()> appends{};
    std::atomic<std::uint64_t> appended_bytes{0};  // the data of the appends taken
    // Waiting long-polls and open SSE sessions, job streams' included.
    std::array<std::atomic<std::int64_t>, kLiveModes.size()> live_readers{};

    void count_append(domain::AppendVerdict verdict) {
        appends[static_cast<std::size_t>(verdict)].fetch_add(1, std::memory_order_relaxed);
    }
};

}  // namespace jobcast::web::streams
