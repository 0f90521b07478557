// Audit C3: a chunk's ts comes from the worker. One outside (0, year 9999]
// decodes as 0, "none", which the broker replaces with its own clock, so no
// later arithmetic (latency, storage deltas) sees an extreme value.
#include <catch2/catch.hpp>
#include <climits>
#include <cstdint>

#include "common/time_bounds.hpp"
#include "frame_builder.hpp"
#include "protocol/codec.hpp"

using namespace jobcast;
using namespace jobcast::proto;
using namespace jobcast::test;

namespace {

// The ts a chunk frame carrying `ts` decodes to.
std::int64_t decoded_ts(Value ts) {
    auto decoded = decode_worker_message(frame(with(chunk_fields(), "ts", std::move(ts))));
    REQUIRE(std::holds_alternative<WorkerMessage>(decoded));
    const auto* chunk = std::get_if<Chunk>(&std::get<WorkerMessage>(decoded));
    REQUIRE(chunk);
    return chunk->ts;
}

}  // namespace

TEST_CASE("a chunk ts not after 1970 or after year 9999 decodes as none", "[codec][ts]") {
    CHECK(decoded_ts(int64(INT64_MIN)) == 0);
    CHECK(decoded_ts(int64(INT64_MAX)) == 0);
    CHECK(decoded_ts(uint64(INT64_MAX)) == 0);
    CHECK(decoded_ts(int64(-1)) == 0);
    CHECK(decoded_ts(int64(0)) == 0);
    CHECK(decoded_ts(uint64(time_bounds::kMaxUnixMicros + 1)) == 0);
}

TEST_CASE("a plausible chunk ts is kept as sent", "[codec][ts]") {
    CHECK(decoded_ts(uint64(1)) == 1);
    CHECK(decoded_ts(uint64(1'700'000'000'123'456)) == 1'700'000'000'123'456);
    CHECK(decoded_ts(uint64(time_bounds::kMaxUnixMicros)) == time_bounds::kMaxUnixMicros);
}

TEST_CASE("a replaced ts round-trips as none", "[codec][ts]") {
    auto decoded = decode_worker_message(frame(with(chunk_fields(), "ts", int64(INT64_MIN))));
    REQUIRE(std::holds_alternative<WorkerMessage>(decoded));
    const auto& message = std::get<WorkerMessage>(decoded);
    auto again = decode_worker_message(encode(message));
    REQUIRE(std::holds_alternative<WorkerMessage>(again));
    CHECK(std::get<WorkerMessage>(again) == message);
}
