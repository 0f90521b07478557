// Untrusted frames: each failure comes back as the right DecodeErrorCode, never
// as a crash, an exception or a silent success.
#include <catch2/catch.hpp>
#include <climits>
#include <string>
#include <vector>

#include "frame_builder.hpp"
#include "protocol/codec.hpp"

using namespace jobcast;
using namespace jobcast::proto;
using namespace jobcast::test;

namespace {

template <class Message>
DecodeErrorCode error_code_of(const Decoded<Message>& result) {
    if (!std::holds_alternative<DecodeError>(result)) {
        FAIL("decoded although it should not have: " << type_name(std::get<Message>(result)));
    }
    return std::get<DecodeError>(result).code;
}

DecodeErrorCode worker_error(std::string_view frame, const DecodeLimits& limits = {}) {
    return error_code_of(decode_worker_message(frame, limits));
}
DecodeErrorCode broker_error(std::string_view frame, const DecodeLimits& limits = {}) {
    return error_code_of(decode_broker_message(frame, limits));
}

bool worker_ok(std::string_view frame, const DecodeLimits& limits = {}) {
    return std::holds_alternative<WorkerMessage>(decode_worker_message(frame, limits));
}

// `depth` arrays nested inside each other around an integer.
std::string nested_arrays(std::size_t depth) {
    return std::string(depth, '\x91') + '\x01';
}

}  // namespace

TEST_CASE("the valid chunk used below decodes", "[codec][errors]") {
    CHECK(worker_ok(frame(chunk_fields())));
}

TEST_CASE("oversize frames are refused before parsing", "[codec][errors]") {
    const std::string valid = frame(chunk_fields());
    DecodeLimits limits;
    limits.max_frame_bytes = valid.size() - 1;
    CHECK(worker_error(valid, limits) == DecodeErrorCode::oversize);
    limits.max_frame_bytes = valid.size();
    CHECK(worker_ok(valid, limits));
    // Garbage that is too big is oversize, not malformed: the size check is first.
    CHECK(worker_error(std::string(2 << 20, '\xc1')) == DecodeErrorCode::oversize);
}

TEST_CASE("malformed: not msgpack, empty, truncated, trailing bytes", "[codec][errors]") {
    CHECK(worker_error("") == DecodeErrorCode::malformed);
    CHECK(worker_error("\xc1") == DecodeErrorCode::malformed);           // never used in msgpack
    CHECK(worker_error("\x82\xa1v\x01") == DecodeErrorCode::malformed);  // map of 2 with 1 pair
    const std::string valid = frame(chunk_fields());
    CHECK(worker_error(valid + '\x00') == DecodeErrorCode::malformed);
    CHECK(worker_error(valid + valid) == DecodeErrorCode::malformed);
    CHECK(broker_error("\xde\xff") == DecodeErrorCode::malformed);  // map16 header cut short
}

TEST_CASE("every truncation of a valid chunk is an error, never a crash", "[codec][errors]") {
    const std::string valid = frame(chunk_fields());
    for (std::size_t length = 0; length < valid.size(); ++length) {
        INFO("length " << length);
        const auto result = decode_worker_message(std::string_view(valid).substr(0, length));
        REQUIRE(std::holds_alternative<DecodeError>(result));
        CHECK(std::get<DecodeError>(result).code == DecodeErrorCode::malformed);
    }
}

TEST_CASE("headers that claim more elements than the frame holds are malformed",
          "[codec][errors]") {
    // msgpack-c would allocate 4 G slots for this before noticing the truncation.
    CHECK(worker_error("\xdd\xff\xff\xff\xff") == DecodeErrorCode::malformed);
    CHECK(worker_error("\xdf\xff\xff\xff\xff\x01") == DecodeErrorCode::malformed);
    CHECK(worker_error("\xc6\xff\xff\xff\xff") == DecodeErrorCode::malformed);
    // Nested: each level claims 65535 items.
    std::string nested;
    for (int i = 0; i < 20; ++i)
        nested += "\xdc\xff\xff";
    CHECK(worker_error(nested) == DecodeErrorCode::malformed);
    auto fields = with(chunk_fields(), "data", map({{"x", raw("\xdd\x00\x01\x00\x00")}}));
    CHECK(worker_error(frame(fields)) == DecodeErrorCode::malformed);
}

TEST_CASE("not_a_map: the top level must be a map", "[codec][errors]") {
    CHECK(worker_error(pack(array({uint64(1), str("chunk")}))) == DecodeErrorCode::not_a_map);
    CHECK(worker_error(pack(uint64(1))) == DecodeErrorCode::not_a_map);
    CHECK(broker_error(pack(str("welcome"))) == DecodeErrorCode::not_a_map);
    CHECK(worker_error(pack(nil())) == DecodeErrorCode::not_a_map);
}

TEST_CASE("bad_version: v missing or not 1", "[codec][errors]") {
    CHECK(worker_error(frame(without(chunk_fields(), "v"))) == DecodeErrorCode::bad_version);
    CHECK(worker_error(frame(with(chunk_fields(), "v", uint64(2)))) ==
          DecodeErrorCode::bad_version);
    CHECK(worker_error(frame(with(chunk_fields(), "v", uint64(0)))) ==
          DecodeErrorCode::bad_version);
    CHECK(worker_error(frame(with(chunk_fields(), "v", str("1")))) == DecodeErrorCode::bad_version);
    CHECK(worker_error(frame(with(chunk_fields(), "v", float64(1.0)))) ==
          DecodeErrorCode::bad_version);
    CHECK(broker_error(frame({{"t", str("heartbeat")}})) == DecodeErrorCode::bad_version);
}

TEST_CASE("unknown_type: t missing, unknown, or of the other direction", "[codec][errors]") {
    CHECK(worker_error(frame(without(chunk_fields(), "t"))) == DecodeErrorCode::unknown_type);
    CHECK(worker_error(frame(with(chunk_fields(), "t", str("chunky")))) ==
          DecodeErrorCode::unknown_type);
    CHECK(worker_error(frame(with(chunk_fields(), "t", uint64(3)))) ==
          DecodeErrorCode::unknown_type);
    // A chunk is a worker message; a broker-side decoder must not accept it.
    CHECK(broker_error(frame(chunk_fields())) == DecodeErrorCode::unknown_type);
    CHECK(worker_error(
              frame({{"v", uint64(1)}, {"t", str("welcome")}, {"heartbeat_ms", uint64(1)}})) ==
          DecodeErrorCode::unknown_type);
    CHECK(worker_error(frame({{"v", uint64(1)}, {"t", str("cancel")}, {"job", str("j")}})) ==
          DecodeErrorCode::unknown_type);
}

TEST_CASE("missing_field: each required chunk field", "[codec][errors]") {
    for (const char* field : {"job", "attempt", "wseq", "kind", "data", "ts"}) {
        INFO(field);
        const auto result = decode_worker_message(frame(without(chunk_fields(), field)));
        REQUIRE(std::holds_alternative<DecodeError>(result));
        CHECK(std::get<DecodeError>(result).code == DecodeErrorCode::missing_field);
        CHECK(std::get<DecodeError>(result).detail.find(field) != std::string::npos);
    }
}

TEST_CASE("missing_field in other messages", "[codec][errors]") {
    CHECK(worker_error(frame({{"v", uint64(1)},
                              {"t", str("hello")},
                              {"worker", str("w")},
                              {"capacity", uint64(1)}})) ==
          DecodeErrorCode::missing_field);  // types
    CHECK(worker_error(frame({{"v", uint64(1)},
                              {"t", str("checkpoint")},
                              {"job", str("j")},
                              {"attempt", uint64(1)},
                              {"wseq", uint64(1)}})) == DecodeErrorCode::missing_field);  // bytes
    CHECK(worker_error(frame({{"v", uint64(1)},
                              {"t", str("fail")},
                              {"job", str("j")},
                              {"attempt", uint64(1)},
                              {"wseq", uint64(1)},
                              {"error", str("boom")}})) == DecodeErrorCode::missing_field);
    CHECK(broker_error(frame({{"v", uint64(1)}, {"t", str("welcome")}})) ==
          DecodeErrorCode::missing_field);
    CHECK(broker_error(frame({{"v", uint64(1)}, {"t", str("reject")}, {"job", str("j")}})) ==
          DecodeErrorCode::missing_field);
    CHECK(broker_error(frame({{"v", uint64(1)},
                              {"t", str("assign")},
                              {"job", str("j")},
                              {"attempt", uint64(1)},
                              {"type", str("exec")}})) == DecodeErrorCode::missing_field);
    // An inflight entry without next_wseq.
    CHECK(worker_error(
              frame({{"v", uint64(1)},
                     {"t", str("hello")},
                     {"worker", str("w")},
                     {"types", array({})},
                     {"capacity", uint64(1)},
                     {"inflight", array({map({{"job", str("j")}, {"attempt", uint64(1)}})})}})) ==
          DecodeErrorCode::missing_field);
}

TEST_CASE("wrong_type: wrong msgpack types and out-of-range numbers", "[codec][errors]") {
    auto chunk_with = [](const char* key, Value value) {
        return worker_error(frame(with(chunk_fields(), key, std::move(value))));
    };
    CHECK(chunk_with("job", uint64(5)) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("job", bin("j")) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("attempt", int64(-1)) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("attempt", uint64(uint64_t(INT_MAX) + 1)) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("attempt", float64(1.0)) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("attempt", str("1")) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("wseq", int64(-7)) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("wseq", nil()) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("kind", str("state")) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("kind", str("result")) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("kind", str("error")) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("kind", str("bogus")) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("kind", uint64(2)) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("data", str("{\"text\":\"hi\"}")) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("data", array({})) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("ts", float64(1.5)) == DecodeErrorCode::wrong_type);
    CHECK(chunk_with("ts", uint64(uint64_t(INT64_MAX) + 1)) == DecodeErrorCode::wrong_type);
    CHECK(worker_ok(frame(with(chunk_fields(), "ts", int64(-5)))));
    CHECK(worker_ok(frame(with(chunk_fields(), "attempt", uint64(INT_MAX)))));
}

TEST_CASE("wrong_type inside data", "[codec][errors]") {
    auto data_with = [](Value data) {
        return worker_error(frame(with(chunk_fields(), "data", std::move(data))));
    };
    CHECK(data_with(map({{"x", float64(std::nan(""))}})) == DecodeErrorCode::wrong_type);
    CHECK(data_with(map({{"x", float64(INFINITY)}})) == DecodeErrorCode::wrong_type);
    CHECK(data_with(map({{"x", float64(-INFINITY)}})) == DecodeErrorCode::wrong_type);
    CHECK(data_with(map({{"x", float32(NAN)}})) == DecodeErrorCode::wrong_type);
    CHECK(data_with(map({{"x", bin("bytes")}})) == DecodeErrorCode::wrong_type);
    CHECK(data_with(map({{"x", raw("\xd4\x01\x02")}})) == DecodeErrorCode::wrong_type);  // ext
    // Integer key: {1: "a"}
    CHECK(data_with(raw("\x81\x01\xa1\x61")) == DecodeErrorCode::wrong_type);
    CHECK(data_with(map({{"x", raw("\x81\xc0\x01")}})) == DecodeErrorCode::wrong_type);  // nil key
    CHECK(data_with(map({{"a", uint64(1)}, {"a", uint64(2)}})) == DecodeErrorCode::wrong_type);
    // Duplicate keys among many (the sorted check).
    Fields many;
    for (int i = 0; i < 40; ++i)
        many.emplace_back("k" + std::to_string(i), uint64(i));
    CHECK(worker_ok(frame(with(chunk_fields(), "data", map(many)))));
    many.emplace_back("k17", uint64(0));
    CHECK(data_with(map(many)) == DecodeErrorCode::wrong_type);
}

TEST_CASE("wrong_type in other messages", "[codec][errors]") {
    Fields hello = {{"v", uint64(1)},
                    {"t", str("hello")},
                    {"worker", str("w")},
                    {"types", array({str("exec")})},
                    {"capacity", uint64(1)}};
    CHECK(worker_ok(frame(hello)));
    CHECK(worker_error(frame(with(hello, "capacity", uint64(0)))) == DecodeErrorCode::wrong_type);
    CHECK(worker_error(frame(with(hello, "capacity", int64(-3)))) == DecodeErrorCode::wrong_type);
    CHECK(worker_error(frame(with(hello, "types", array({uint64(1)})))) ==
          DecodeErrorCode::wrong_type);
    CHECK(worker_error(frame(with(hello, "types", str("exec")))) == DecodeErrorCode::wrong_type);
    CHECK(worker_error(frame(with(hello, "inflight", map({})))) == DecodeErrorCode::wrong_type);
    CHECK(worker_error(frame(with(hello, "inflight", array({uint64(1)})))) ==
          DecodeErrorCode::wrong_type);
    CHECK(worker_error(frame(with(
              hello, "inflight",
              array({map(
                  {{"job", str("j")}, {"attempt", int64(-1)}, {"next_wseq", uint64(1)}})})))) ==
          DecodeErrorCode::wrong_type);

    Fields checkpoint = {{"v", uint64(1)},       {"t", str("checkpoint")}, {"job", str("j")},
                         {"attempt", uint64(1)}, {"wseq", uint64(2)},      {"bytes", bin("x")}};
    CHECK(worker_ok(frame(checkpoint)));
    CHECK(worker_error(frame(with(checkpoint, "bytes", str("x")))) == DecodeErrorCode::wrong_type);

    Fields fail = {{"v", uint64(1)},
                   {"t", str("fail")},
                   {"job", str("j")},
                   {"attempt", uint64(1)},
                   {"wseq", uint64(2)},
                   {"error", str("e")},
                   {"retryable", boolean(true)}};
    CHECK(worker_ok(frame(fail)));
    CHECK(worker_error(frame(with(fail, "retryable", uint64(1)))) == DecodeErrorCode::wrong_type);

    Fields welcome = {{"v", uint64(1)}, {"t", str("welcome")}, {"heartbeat_ms", uint64(1000)}};
    CHECK(std::holds_alternative<BrokerMessage>(decode_broker_message(frame(welcome))));
    CHECK(broker_error(frame(with(welcome, "heartbeat_ms", uint64(0)))) ==
          DecodeErrorCode::wrong_type);

    Fields done = {{"v", uint64(1)},       {"t", str("done")},  {"job", str("j")},
                   {"attempt", uint64(1)}, {"wseq", uint64(2)}, {"result", str("{}")}};
    CHECK(worker_error(frame(done)) == DecodeErrorCode::wrong_type);

    // A top-level key that is not a string.
    CHECK(worker_error(frame(chunk_fields()).replace(0, 1, "\x89") + std::string("\x01\x02")) ==
          DecodeErrorCode::wrong_type);
}

TEST_CASE("too_deep: a nesting bomb in data is refused without recursion", "[codec][errors]") {
    // 100k nested arrays: a recursive parser or converter would overflow the stack.
    const auto bomb = with(chunk_fields(), "data", map({{"x", raw(nested_arrays(100000))}}));
    CHECK(worker_error(frame(bomb)) == DecodeErrorCode::too_deep);
    // The same bomb in a field nobody reads.
    auto hidden = chunk_fields();
    hidden.emplace_back("extra", raw(nested_arrays(100000)));
    CHECK(worker_error(frame(hidden)) == DecodeErrorCode::too_deep);
    // And as the whole frame.
    CHECK(worker_error(nested_arrays(100000)) == DecodeErrorCode::too_deep);
    std::string maps;
    for (int i = 0; i < 50000; ++i)
        maps += "\x81\xa1k";
    maps += '\x01';
    CHECK(broker_error(maps) == DecodeErrorCode::too_deep);
}

TEST_CASE("too_deep: the limit is exact", "[codec][errors]") {
    DecodeLimits limits;
    limits.max_depth = 4;
    // data itself is depth 1; {"x": [[[1]]]} is depth 4.
    CHECK(worker_ok(frame(with(chunk_fields(), "data", map({{"x", raw(nested_arrays(3))}}))),
                    limits));
    CHECK(worker_error(frame(with(chunk_fields(), "data", map({{"x", raw(nested_arrays(4))}}))),
                       limits) == DecodeErrorCode::too_deep);
    // Default limit: 32.
    CHECK(worker_ok(frame(with(chunk_fields(), "data", map({{"x", raw(nested_arrays(31))}})))));
    CHECK(worker_error(frame(with(chunk_fields(), "data", map({{"x", raw(nested_arrays(32))}})))) ==
          DecodeErrorCode::too_deep);
    // A tiny data limit still lets hello's inflight entries through.
    limits.max_depth = 1;
    CHECK(worker_ok(frame({{"v", uint64(1)},
                           {"t", str("hello")},
                           {"worker", str("w")},
                           {"types", array({})},
                           {"capacity", uint64(1)},
                           {"inflight", array({map({{"job", str("j")},
                                                    {"attempt", uint64(1)},
                                                    {"next_wseq", uint64(1)}})})}}),
                    limits));
}

TEST_CASE("invalid_utf8 in any string", "[codec][errors]") {
    const std::string bad[] = {
        "\xff",              // never valid
        "abc\x80",           // stray continuation byte
        "\xc0\xaf",          // overlong '/'
        "\xe0\x80\xaf",      // overlong
        "\xed\xa0\x80",      // UTF-16 surrogate
        "\xf4\x90\x80\x80",  // above U+10FFFF
        "\xe6\x9d",          // truncated sequence
    };
    for (const std::string& text : bad) {
        INFO("bytes of length " << text.size());
        CHECK(worker_error(frame(with(chunk_fields(), "job", str(text)))) ==
              DecodeErrorCode::invalid_utf8);
        CHECK(worker_error(frame(with(chunk_fields(), "data", map({{"x", str(text)}})))) ==
              DecodeErrorCode::invalid_utf8);
        CHECK(worker_error(frame(with(chunk_fields(), "data", map({{text, str("x")}})))) ==
              DecodeErrorCode::invalid_utf8);
        CHECK(worker_error(frame(with(chunk_fields(), "unknown", str(text)))) ==
              DecodeErrorCode::invalid_utf8);
        CHECK(broker_error(frame({{"v", uint64(1)},
                                  {"t", str("reject")},
                                  {"job", str("j")},
                                  {"reason", str(text)}})) == DecodeErrorCode::invalid_utf8);
    }
    // Valid multi-byte text passes, bytes in bin are not text.
    CHECK(worker_ok(frame(with(chunk_fields(), "job", str("\xe6\x9d\xb1\xf0\x9f\x9a\x80")))));
}

TEST_CASE("error codes have names for logs and metrics", "[codec][errors]") {
    CHECK(to_string(DecodeErrorCode::oversize) == "oversize");
    CHECK(to_string(DecodeErrorCode::malformed) == "malformed");
    CHECK(to_string(DecodeErrorCode::not_a_map) == "not_a_map");
    CHECK(to_string(DecodeErrorCode::bad_version) == "bad_version");
    CHECK(to_string(DecodeErrorCode::unknown_type) == "unknown_type");
    CHECK(to_string(DecodeErrorCode::missing_field) == "missing_field");
    CHECK(to_string(DecodeErrorCode::wrong_type) == "wrong_type");
    CHECK(to_string(DecodeErrorCode::too_deep) == "too_deep");
    CHECK(to_string(DecodeErrorCode::invalid_utf8) == "invalid_utf8");
}

TEST_CASE("encode refuses what it cannot represent", "[codec][encode]") {
    Chunk chunk;
    chunk.job = "j";
    chunk.data = "not json";
    CHECK_THROWS_AS(encode(WorkerMessage{chunk}), std::invalid_argument);
    chunk.data = "[1,2]";
    CHECK_THROWS_AS(encode(WorkerMessage{chunk}), std::invalid_argument);
    chunk.data = "";
    CHECK_THROWS_AS(encode(WorkerMessage{chunk}), std::invalid_argument);
    chunk.data = R"({"x":1e400})";
    CHECK_THROWS_AS(encode(WorkerMessage{chunk}), std::invalid_argument);
    chunk.data = R"({"x":1} trailing)";
    CHECK_THROWS_AS(encode(WorkerMessage{chunk}), std::invalid_argument);
    chunk.data = "{}";
    chunk.kind = EventKind::state;
    CHECK_THROWS_AS(encode(WorkerMessage{chunk}), std::invalid_argument);

    Done done{"j", 1, 1, "{\"x\":\"\xff\"}"};
    CHECK_THROWS_AS(encode(WorkerMessage{done}), std::invalid_argument);
    Assign assign{"j", 1, "exec", "null", ""};
    CHECK_THROWS_AS(encode(BrokerMessage{assign}), std::invalid_argument);
    Fail fail{"j", 1, 1, "bad \xc3", false};
    CHECK_THROWS_AS(encode(WorkerMessage{fail}), std::invalid_argument);
    Hello hello;
    hello.capacity = 0;
    CHECK_THROWS_AS(encode(WorkerMessage{hello}), std::invalid_argument);
    Ack ack{"j", -1, 1};
    CHECK_THROWS_AS(encode(BrokerMessage{ack}), std::invalid_argument);
}

namespace {

DecodeError worker_decode_error(std::string_view frame) {
    auto result = decode_worker_message(frame);
    REQUIRE(std::holds_alternative<DecodeError>(result));
    return std::get<DecodeError>(result);
}

Fields hello_fields() {
    return {{"v", uint64(1)},
            {"t", str("hello")},
            {"worker", str("w")},
            {"types", array({str("exec")})},
            {"capacity", uint64(1)}};
}

}  // namespace

TEST_CASE("hello: types and capacity are capped (audit I4)", "[codec][errors]") {
    std::vector<Value> types;
    for (std::size_t i = 0; i < kMaxHelloTypes; ++i)
        types.push_back(str("type" + std::to_string(i)));
    CHECK(worker_ok(frame(with(hello_fields(), "types", array(types)))));
    types.push_back(str("one-too-many"));
    DecodeError error = worker_decode_error(frame(with(hello_fields(), "types", array(types))));
    CHECK(error.code == DecodeErrorCode::wrong_type);
    CHECK(error.detail == "field 'types': more than 64 job types");
    CHECK(error.message_type == "hello");
    // 200k types (the audit's CPU amplification) fail before any is copied.
    std::vector<Value> many(200000, str("t"));
    CHECK(worker_error(frame(with(hello_fields(), "types", array(many)))) ==
          DecodeErrorCode::wrong_type);

    CHECK(worker_ok(frame(with(hello_fields(), "types", array({str(std::string(128, 't'))})))));
    error = worker_decode_error(
        frame(with(hello_fields(), "types", array({str(std::string(129, 't'))}))));
    CHECK(error.code == DecodeErrorCode::wrong_type);
    CHECK(error.detail.find("each must be 1 to 128 bytes") != std::string::npos);
    CHECK(worker_error(frame(with(hello_fields(), "types", array({str("")})))) ==
          DecodeErrorCode::wrong_type);
    CHECK(worker_error(frame(with(hello_fields(), "types", array({str("a\nb")})))) ==
          DecodeErrorCode::wrong_type);

    CHECK(worker_ok(frame(with(hello_fields(), "capacity", uint64(kMaxCapacity)))));
    error = worker_decode_error(frame(with(hello_fields(), "capacity", uint64(kMaxCapacity + 1))));
    CHECK(error.code == DecodeErrorCode::wrong_type);
    CHECK(error.detail == "field 'capacity': expected integer in [1, 1024]");
}

TEST_CASE("hello: the worker name is 1..128 printable bytes (audit M2)", "[codec][errors]") {
    CHECK(worker_ok(frame(with(hello_fields(), "worker", str(std::string(128, 'w'))))));
    CHECK(worker_ok(frame(with(hello_fields(), "worker", str("wörker 東京")))));
    for (const std::string& bad :
         {std::string(), std::string(129, 'w'),
          std::string("w\n2030-01-01T00:00:00.000 info audit event=FORGED2"), std::string("w\r"),
          std::string("w\x1b[2J"), std::string("w\x7f"), std::string("w\xc2\x85"),
          std::string("w\xe2\x80\xa8")}) {
        INFO("name " << bad);
        const DecodeError error =
            worker_decode_error(frame(with(hello_fields(), "worker", str(bad))));
        CHECK(error.code == DecodeErrorCode::wrong_type);
        CHECK(error.detail == "field 'worker': expected 1 to 128 bytes without control characters");
        CHECK(error.message_type == "hello");
    }
    // The session is optional, a string of at most 128 bytes.
    CHECK(worker_ok(frame(with(hello_fields(), "session", str(std::string(128, 's'))))));
    CHECK(worker_error(frame(with(hello_fields(), "session", str(std::string(129, 's'))))) ==
          DecodeErrorCode::wrong_type);
    CHECK(worker_error(frame(with(hello_fields(), "session", uint64(1)))) ==
          DecodeErrorCode::wrong_type);
}

TEST_CASE("an unknown type is echoed short in the detail, message_type only for known types",
          "[codec][errors]") {
    const std::string forged =
        "x\n2030-01-01T00:00:00.000 info audit event=cancel transport=http owner=\"bob\" "
        "ip=10.0.0.1 job=FORGED";
    const DecodeError error = worker_decode_error(frame(with(chunk_fields(), "t", str(forged))));
    CHECK(error.code == DecodeErrorCode::unknown_type);
    CHECK(error.detail.size() < 80);
    CHECK(error.detail.find("audit") == std::string::npos);
    CHECK(error.message_type.empty());
    // Cut on a character boundary: "é" is two bytes.
    const DecodeError accents =
        worker_decode_error(frame(with(chunk_fields(), "t", str(std::string(40, 'e') + "é"))));
    CHECK(accents.detail == "unknown worker message type '" + std::string(32, 'e') + "...'");
    const DecodeError two_byte =
        worker_decode_error(frame(with(chunk_fields(), "t", str(std::string(31, 'e') + "éééé"))));
    CHECK(two_byte.detail == "unknown worker message type '" + std::string(31, 'e') + "...'");
    CHECK(worker_decode_error(frame(without(chunk_fields(), "wseq"))).message_type == "chunk");
}
