// The one-pass decoder of chunk and chunks frames (protocol/codec_impl.hpp):
// it takes the frames workers write, gives exactly what the full decoder
// gives, and declines everything else, which the full decoder then answers.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "frame_builder.hpp"
#include "protocol/codec.hpp"
#include "protocol/codec_impl.hpp"
#include "protocol/limits.hpp"

using namespace jobcast;
using namespace jobcast::proto;
using namespace jobcast::test;

namespace {

bool fast(const std::string& frame, const DecodeLimits& limits = {}) {
    Decoded<WorkerMessage> out;
    return detail::decode_chunk_frame(frame, limits, out);
}

// Whatever the fast path gives equals the full decoder's result, and
// decode_worker_message gives the full decoder's result in every case.
void same_as_full(const std::string& frame, const DecodeLimits& limits = {}) {
    const auto full = detail::decode_worker_message_in_full(frame, limits);
    const auto both = decode_worker_message(frame, limits);
    REQUIRE(both.index() == full.index());
    if (const auto* error = std::get_if<DecodeError>(&full)) {
        CHECK(std::get<DecodeError>(both).code == error->code);
        CHECK(std::get<DecodeError>(both).detail == error->detail);
    } else {
        CHECK(std::get<WorkerMessage>(both) == std::get<WorkerMessage>(full));
    }
    Decoded<WorkerMessage> out;
    if (detail::decode_chunk_frame(frame, limits, out)) {
        REQUIRE(std::holds_alternative<WorkerMessage>(full));
        CHECK(std::get<WorkerMessage>(out) == std::get<WorkerMessage>(full));
    }
}

Fields chunks_fields(std::vector<Value> events) {
    return {
        {"v", uint64(1)},       {"t", str("chunks")}, {"job", str("J")},
        {"attempt", uint64(2)}, {"wseq", uint64(7)},  {"events", array(std::move(events))},
    };
}

Value event(Value data) {
    return map({{"kind", str("token")}, {"data", std::move(data)}});
}

Value data_with(Value value) {
    return map({{"x", std::move(value)}});
}

}  // namespace

TEST_CASE("fast path: a worker's chunk and chunks decode in one pass, as in full",
          "[codec][fast]") {
    const std::string chunk = frame(chunk_fields());
    CHECK(fast(chunk));
    same_as_full(chunk);

    Chunk c{"01HZY3J5KX8Q2V7R4M6N0P1S9T",
            3,
            42,
            EventKind::progress,
            R"({"fraction":0.5,"stage":"a\"b\\c\n","n":[1,-2,null,true,false,{"k":"é€😀"}]})",
            1'700'000'000'000'000};
    const std::string encoded = encode(WorkerMessage{c});
    CHECK(fast(encoded));
    same_as_full(encoded);
    CHECK(std::get<Chunk>(std::get<WorkerMessage>(decode_worker_message(encoded))) == c);

    Chunks batch{"J",
                 1,
                 9,
                 {{EventKind::token, R"({"text":"a"})", 0},
                  {EventKind::log, R"({"level":"info","message":"m"})", 1'700'000'000'000'001}}};
    const std::string batched = encode(WorkerMessage{batch});
    CHECK(fast(batched));
    same_as_full(batched);
    CHECK(std::get<Chunks>(std::get<WorkerMessage>(decode_worker_message(batched))) == batch);
}

TEST_CASE("fast path: fields in any order, ints in any encoding, floats of both widths",
          "[codec][fast]") {
    Fields shuffled = chunk_fields();
    std::swap(shuffled.front(), shuffled.back());
    std::swap(shuffled[1], shuffled[6]);
    CHECK(fast(frame(shuffled)));
    same_as_full(frame(shuffled));

    // int8 1 for v, int32 attempt, int64 wseq: signed encodings of values >= 0.
    const std::string signed_ints =
        frame(with(with(with(chunk_fields(), "v", raw("\xd0\x01")), "attempt",
                        raw(std::string("\xd2\0\0\0\x05", 5))),
                   "wseq", int64(-1)));
    same_as_full(signed_ints);  // wseq -1: an error, in full
    CHECK_FALSE(fast(signed_ints));
    same_as_full(frame(with(with(chunk_fields(), "v", raw("\xd0\x01")), "attempt",
                            raw(std::string("\xd2\0\0\0\x05", 5)))));
    CHECK(fast(frame(with(chunk_fields(), "v", raw("\xd0\x01")))));

    for (const Value& v : {float32(0.1f),
                           float32(-0.0f),
                           float64(-0.0),
                           float64(1e300),
                           float64(2.5),
                           uint64(UINT64_MAX),
                           int64(INT64_MIN),
                           int64(-1),
                           int64(-200),
                           raw("\xd1\xff\x00"),
                           raw("\xcc\x80"),
                           str(""),
                           str(std::string(300, 'y')),
                           str("\x01\x1f\x7f\"\\"),
                           array({}),
                           map({}),
                           nil(),
                           boolean(true),
                           float64(NAN),
                           float32(std::numeric_limits<float>::infinity()),
                           bin("b"),
                           raw("\xd4\x01\x02"),
                           raw("\xc1"),
                           str("\xc3\x28"),
                           str("\xed\xa0\x80")}) {
        same_as_full(frame(with(chunk_fields(), "data", data_with(v))));
    }
}

TEST_CASE("fast path: timestamps as the full decoder reads them", "[codec][fast]") {
    for (const Value& ts :
         {uint64(0), int64(-5), uint64(1), uint64(253402300800000000ULL), uint64(UINT64_MAX),
          uint64(static_cast<std::uint64_t>(INT64_MAX)), str("1"), nil()}) {
        same_as_full(frame(with(chunk_fields(), "ts", ts)));
        same_as_full(
            frame(chunks_fields({map({{"kind", str("log")}, {"data", map({})}, {"ts", ts}})})));
    }
    same_as_full(frame(without(chunk_fields(), "ts")));
}

TEST_CASE("fast path declines what it does not take, and the full decoder answers",
          "[codec][fast]") {
    // An unknown key, a repeated key, a missing field, another message.
    const std::vector<std::string> declined = {
        frame(with(chunk_fields(), "extra", uint64(1))),
        frame(with(chunk_fields(), "events", array({}))),
        frame([] {
            Fields f = chunk_fields();
            f.emplace_back("wseq", uint64(8));
            return f;
        }()),
        frame(without(chunk_fields(), "kind")),
        frame(with(chunk_fields(), "t", str("done"))),
        frame(with(chunk_fields(), "kind", str("state"))),
        frame(with(chunk_fields(), "job", str("\xff"))),
        frame(with(chunk_fields(), "attempt", int64(-1))),
        frame(with(chunk_fields(), "attempt", uint64(1ULL << 31))),
        frame(with(chunk_fields(), "v", uint64(2))),
        frame(chunks_fields({})),
        frame(chunks_fields({map({{"kind", str("token")}, {"data", map({})}, {"job", str("J")}})})),
        frame(chunks_fields({map({{"data", map({})}})})),
        frame(with(chunks_fields({event(map({})), event(map({}))}), "wseq", uint64(UINT64_MAX))),
        frame(with(chunk_fields(), "data", map({{"a", uint64(1)}, {"a", uint64(2)}}))),
        frame(chunk_fields()) + "x",
        std::string("\x80"),  // an empty map: no 't', not a chunk (found by fuzz_worker_decode)
        frame({{"v", uint64(1)}}),
    };
    for (const std::string& f : declined) {
        CHECK_FALSE(fast(f));
        same_as_full(f);
    }
    // Up to kFastPathMapKeys keys per map here; more go to the full decoder.
    Fields keys;
    for (unsigned i = 0; i <= detail::kFastPathMapKeys; ++i)
        keys.emplace_back("k" + std::to_string(i), uint64(i));
    const std::string wide = frame(with(chunk_fields(), "data", map(keys)));
    CHECK_FALSE(fast(wide));
    same_as_full(wide);
    keys.pop_back();
    CHECK(fast(frame(with(chunk_fields(), "data", map(keys)))));
}

TEST_CASE("fast path: every truncation and the depth and size limits", "[codec][fast]") {
    const std::string chunk = frame(chunk_fields());
    for (std::size_t n = 0; n < chunk.size(); ++n)
        CHECK_FALSE(fast(chunk.substr(0, n)));

    Value nested = map({});
    for (int depth = 1; depth < kMaxDataDepth; ++depth)
        nested = map({{"a", nested}});
    const std::string deepest = frame(with(chunk_fields(), "data", nested));
    CHECK(fast(deepest));
    same_as_full(deepest);
    const std::string too_deep = frame(with(chunk_fields(), "data", map({{"a", nested}})));
    CHECK_FALSE(fast(too_deep));
    same_as_full(too_deep);
    DecodeLimits shallow;
    shallow.max_depth = 2;
    same_as_full(frame(with(chunk_fields(), "data", data_with(array({array({})})))), shallow);

    DecodeLimits small;
    small.max_frame_bytes = chunk.size() - 1;
    CHECK_FALSE(fast(chunk, small));
    same_as_full(chunk, small);
}
