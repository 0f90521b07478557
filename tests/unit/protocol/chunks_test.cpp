// The optional `chunks` message (several consecutive chunks of one attempt)
// and welcome.features: round trips, a batching worker's chunks framed into
// one, and every malformed batch refused with a clear error.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "frame_builder.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"

using namespace jobcast;
using namespace jobcast::proto;
using namespace jobcast::test;

namespace {

Fields chunks_fields(std::vector<Value> events, std::uint64_t wseq = 7) {
    return {
        {"v", uint64(1)},       {"t", str("chunks")},   {"job", str("J")},
        {"attempt", uint64(2)}, {"wseq", uint64(wseq)}, {"events", array(std::move(events))},
    };
}

Value token(const std::string& text) {
    return map({{"kind", str("token")}, {"data", map({{"text", str(text)}})}});
}

Chunks decoded_chunks(const std::string& frame) {
    auto result = decode_worker_message(frame);
    if (auto* error = std::get_if<DecodeError>(&result)) FAIL(error->detail);
    return std::get<Chunks>(std::get<WorkerMessage>(result));
}

DecodeError error_of(const std::string& frame) {
    auto result = decode_worker_message(frame);
    REQUIRE(std::holds_alternative<DecodeError>(result));
    return std::get<DecodeError>(result);
}

}  // namespace

TEST_CASE("chunks round trips, with ts optional per event", "[codec][chunks]") {
    Chunks chunks{"J",
                  3,
                  41,
                  {{EventKind::token, R"({"text":"a"})", 1700000000000000},
                   {EventKind::progress, R"({"fraction":0.5})", 0},
                   {EventKind::log, R"({"level":"info","message":"m"})", 5}}};
    CHECK(decoded_chunks(encode(WorkerMessage{chunks})) == chunks);
    CHECK(type_name(WorkerMessage{chunks}) == "chunks");

    const auto no_ts = decoded_chunks(frame(chunks_fields({token("x"), token("y")})));
    CHECK(no_ts.job == "J");
    CHECK(no_ts.attempt == 2);
    CHECK(no_ts.wseq == 7);
    REQUIRE(no_ts.events.size() == 2);
    CHECK(no_ts.events[1].data == R"({"text":"y"})");
    CHECK(no_ts.events[1].ts == 0);  // the broker stamps its clock
}

TEST_CASE("chunk frames batch into the same bytes as encode(Chunks)", "[codec][chunks]") {
    const Chunk a{"J", 2, 9, EventKind::token, R"({"text":"a"})", 11};
    const Chunk b{"J", 2, 10, EventKind::log, R"({"level":"warn","message":"b"})", 12};
    const std::string frame_a = encode(WorkerMessage{a});
    const std::string frame_b = encode(WorkerMessage{b});
    std::string out;
    begin_chunks("J", 2, 9, 2, out);
    append_chunks_event(chunk_event(frame_a), out);
    append_chunks_event(chunk_event(frame_b), out);
    CHECK(out == encode(WorkerMessage{
                     Chunks{"J", 2, 9, {{a.kind, a.data, a.ts}, {b.kind, b.data, b.ts}}}}));
    // Large wseqs and long job ids change the envelope's size, not the event.
    const Chunk far{std::string(60, 'j'), 7, UINT64_MAX, EventKind::token, "{}", 1};
    CHECK(chunk_event(encode(WorkerMessage{far})) ==
          chunk_event(encode(WorkerMessage{Chunk{"J", 1, 1, EventKind::token, "{}", 1}})));

    CHECK_THROWS_AS(chunk_event(encode(WorkerMessage{Checkpoint{"J", 1, 1, "x"}})),
                    std::invalid_argument);
    CHECK_THROWS_AS(chunk_event(""), std::invalid_argument);
    CHECK_THROWS_AS(begin_chunks("J", 2, 9, 0, out), std::invalid_argument);
    CHECK_THROWS_AS(begin_chunks("J", 2, 9, kMaxChunksEvents + 1, out), std::invalid_argument);
    CHECK_THROWS_AS(begin_chunks("J", 2, UINT64_MAX, 2, out), std::invalid_argument);
    CHECK_THROWS_AS(encode(WorkerMessage{Chunks{"J", 1, 1, {}}}), std::invalid_argument);
}

TEST_CASE("a malformed chunks is refused with a clear error", "[codec][chunks]") {
    const auto empty = error_of(frame(chunks_fields({})));
    CHECK(empty.code == DecodeErrorCode::wrong_type);
    CHECK(empty.message_type == "chunks");
    CHECK(empty.detail == "field 'events': empty");

    std::vector<Value> many(kMaxChunksEvents + 1, token("t"));
    CHECK(error_of(frame(chunks_fields(many))).detail.find("more than") != std::string::npos);
    many.pop_back();
    CHECK(decoded_chunks(frame(chunks_fields(many))).events.size() == kMaxChunksEvents);

    // The last event's wseq must exist.
    CHECK(decoded_chunks(frame(chunks_fields({token("a"), token("b")}, UINT64_MAX - 1)))
              .events.size() == 2);
    CHECK(error_of(frame(chunks_fields({token("a"), token("b")}, UINT64_MAX))).detail ==
          "field 'wseq': the last event's wseq would overflow");

    // One message is one attempt: an event may not name another.
    const auto mixed = error_of(frame(chunks_fields(
        {token("a"), map({{"job", str("K")}, {"kind", str("token")}, {"data", map({})}})})));
    CHECK(mixed.detail == "field 'events': an event names its own job, attempt or wseq");

    CHECK(error_of(frame(without(chunks_fields({token("a")}), "events"))).code ==
          DecodeErrorCode::missing_field);
    CHECK(error_of(frame(with(chunks_fields({}), "events", map({})))).code ==
          DecodeErrorCode::wrong_type);
    CHECK(error_of(frame(chunks_fields({str("token")}))).code == DecodeErrorCode::wrong_type);
    const auto bad_kind = error_of(
        frame(chunks_fields({token("a"), map({{"kind", str("state")}, {"data", map({})}})})));
    CHECK(bad_kind.detail.rfind("event 1: ", 0) == 0);
    CHECK(error_of(frame(chunks_fields({map({{"kind", str("token")}})}))).code ==
          DecodeErrorCode::missing_field);
    CHECK(error_of(frame(chunks_fields(
                       {map({{"kind", str("token")}, {"data", map({})}, {"ts", str("x")}})})))
              .code == DecodeErrorCode::wrong_type);
    CHECK(error_of(frame(with(chunks_fields({token("a")}), "attempt", int64(-1)))).code ==
          DecodeErrorCode::wrong_type);

    // Bytes: a batch over the frame limit is oversize, as any frame.
    DecodeLimits small;
    small.max_frame_bytes = 64;
    const std::string big = frame(chunks_fields({token(std::string(100, 'x'))}));
    CHECK(std::get<DecodeError>(decode_worker_message(big, small)).code ==
          DecodeErrorCode::oversize);
}

TEST_CASE("data inside a chunks event is held to the same depth as a chunk's", "[codec][chunks]") {
    DecodeLimits limits;
    limits.max_depth = 3;
    auto nested = [](int depth) {
        Value v = uint64(1);
        for (int i = 0; i < depth; ++i)
            v = array({v});
        return map({{"kind", str("token")}, {"data", map({{"x", v}})}});
    };
    CHECK(std::holds_alternative<WorkerMessage>(
        decode_worker_message(frame(chunks_fields({nested(2)})), limits)));
    CHECK(std::get<DecodeError>(decode_worker_message(frame(chunks_fields({nested(3)})), limits))
              .code == DecodeErrorCode::too_deep);
}

TEST_CASE("welcome.features round trips, absent when empty", "[codec][chunks]") {
    const Welcome welcome{500, "", {"chunks", "later"}};
    auto result = decode_broker_message(encode(BrokerMessage{welcome}));
    REQUIRE(std::holds_alternative<BrokerMessage>(result));
    CHECK(std::get<Welcome>(std::get<BrokerMessage>(result)) == welcome);
    CHECK(encode(BrokerMessage{Welcome{500}}).find("features") == std::string::npos);

    const auto with_features = [](Value features) {
        return frame({{"v", uint64(1)},
                      {"t", str("welcome")},
                      {"heartbeat_ms", uint64(100)},
                      {"features", std::move(features)}});
    };
    CHECK(std::holds_alternative<DecodeError>(
        decode_broker_message(with_features(array({uint64(1)})))));
    CHECK(std::holds_alternative<DecodeError>(decode_broker_message(
        with_features(array({str(std::string(kMaxFeatureBytes + 1, 'f'))})))));
    std::vector<Value> many(kMaxFeatures + 1, str("f"));
    CHECK(std::holds_alternative<DecodeError>(decode_broker_message(with_features(array(many)))));
}
