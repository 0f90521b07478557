// Every message type survives encode -> decode unchanged, in both directions.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "frame_builder.hpp"
#include "protocol/codec.hpp"

using namespace jobcast;
using namespace jobcast::proto;

namespace {

template <class Message>
Message decoded_or_fail(const Decoded<Message>& result) {
    if (const auto* error = std::get_if<DecodeError>(&result)) {
        FAIL("decode failed: " << to_string(error->code) << ": " << error->detail);
    }
    return std::get<Message>(result);
}

// `body` encoded as a `Message` and decoded back with `decode`.
template <class Message, class Body, class Decode>
Body round_trip(const Body& body, Decode decode) {
    const std::string frame = encode(Message{body});
    const Message message = decoded_or_fail(decode(frame));
    REQUIRE(std::holds_alternative<Body>(message));
    return std::get<Body>(message);
}

template <class Body>
Body worker_round_trip(const Body& body) {
    return round_trip<WorkerMessage>(
        body, [](std::string_view frame) { return decode_worker_message(frame); });
}

template <class Body>
Body broker_round_trip(const Body& body) {
    return round_trip<BrokerMessage>(
        body, [](std::string_view frame) { return decode_broker_message(frame); });
}

const std::string kBinaryWithNuls("\0\x01\xff\0checkpoint\0", 15);

}  // namespace

TEST_CASE("hello round trips, with non-ASCII names and inflight jobs", "[codec]") {
    Hello hello;
    hello.worker = "wörker-東京-🚀";
    hello.types = {"llm.generate", "research", "exec"};
    hello.capacity = 8;
    hello.inflight = {{"01HZY3J5KX8Q2V7R4M6N0P1S9T", 2, 15}, {"01HZY3J5KX8Q2V7R4M6N0P1S9V", 1, 1}};
    CHECK(worker_round_trip(hello) == hello);
}

TEST_CASE("hello round trips with empty arrays", "[codec]") {
    Hello hello;
    hello.worker = "w";
    CHECK(worker_round_trip(hello) == hello);
}

TEST_CASE("the optional session and reject detail round trip, absent when empty", "[codec]") {
    Hello hello;
    hello.worker = "w-1";
    hello.types = {"research"};
    hello.session = std::string(64, 'a');
    CHECK(worker_round_trip(hello) == hello);
    CHECK(broker_round_trip(Welcome{200, std::string(64, 'f')}) ==
          Welcome{200, std::string(64, 'f')});
    Reject reject{"", "identity", 0, "worker name is held by another CURVE key"};
    CHECK(broker_round_trip(reject) == reject);
    // Absent fields are not written: an older peer sees the frames it knows.
    CHECK(encode(BrokerMessage{Welcome{200}}).find("session") == std::string::npos);
    CHECK(encode(BrokerMessage{Reject{"j", "lease"}}).find("detail") == std::string::npos);
    hello.session.clear();
    CHECK(encode(WorkerMessage{hello}).find("session") == std::string::npos);
}

TEST_CASE("heartbeat round trips both ways", "[codec]") {
    CHECK(worker_round_trip(Heartbeat{}) == Heartbeat{});
    CHECK(broker_round_trip(Heartbeat{}) == Heartbeat{});
    // A worker's heartbeat lists what it holds, and how many assigns it got.
    Heartbeat report{std::vector<InflightJob>{{"01HZY3J5KX8Q2V7R4M6N0P1S9T", 2, 41}}, 7};
    CHECK(worker_round_trip(report) == report);
    report.inflight->clear();  // holding nothing is a report too, unlike no list at all
    CHECK(worker_round_trip(report) == report);
    CHECK(worker_round_trip(report) != Heartbeat{});
}

TEST_CASE("chunk round trips for each kind a worker may send", "[codec]") {
    for (EventKind kind : {EventKind::progress, EventKind::token, EventKind::log}) {
        Chunk chunk;
        chunk.job = "01HZY3J5KX8Q2V7R4M6N0P1S9T";
        chunk.attempt = 3;
        chunk.wseq = UINT64_MAX;
        chunk.kind = kind;
        chunk.data = R"({"text":"héllo \"wörld\"\n\u0001","n":-42,"big":18446744073709551615,)"
                     R"("f":0.1,"tiny":1.3927926388013963e-143,"neg0":-0.0,"ok":true,"no":false,)"
                     R"("nil":null,"list":[1,[2,{"deep":"東京"}],[]],"empty":{}})";
        chunk.ts = 1700000000123456;
        CHECK(worker_round_trip(chunk) == chunk);
    }
}

TEST_CASE("chunk data is carried as compact JSON text", "[codec]") {
    Chunk chunk;
    chunk.job = "j";
    chunk.data = R"( { "a" : [ 1 , 2.50 ] , "b" : "\u00e9" } )";
    const Chunk back = worker_round_trip(chunk);
    CHECK(back.data == R"({"a":[1,2.5],"b":"é"})");
}

TEST_CASE("checkpoint round trips binary bytes with NULs", "[codec]") {
    Checkpoint checkpoint{"01HZY3J5KX8Q2V7R4M6N0P1S9T", 1, 9, kBinaryWithNuls};
    CHECK(worker_round_trip(checkpoint) == checkpoint);
    Checkpoint empty{"j", 0, 0, ""};
    CHECK(worker_round_trip(empty) == empty);
}

TEST_CASE("done and fail round trip", "[codec]") {
    Done done{"01HZY3J5KX8Q2V7R4M6N0P1S9T", 2, 100, R"({"text":"résumé","tokens":128})"};
    CHECK(worker_round_trip(done) == done);
    Fail fail{"01HZY3J5KX8Q2V7R4M6N0P1S9T", 2, 101, "exit code 1: ошибка", true};
    CHECK(worker_round_trip(fail) == fail);
    fail.retryable = false;
    CHECK(worker_round_trip(fail) == fail);
}

TEST_CASE("broker messages round trip", "[codec]") {
    CHECK(broker_round_trip(Welcome{2500}) == Welcome{2500});

    Assign assign{"01HZY3J5KX8Q2V7R4M6N0P1S9T", 2, "llm.generate",
                  R"({"prompt":"Grüß Gott","max_tokens":64,"seed":7})", kBinaryWithNuls};
    CHECK(broker_round_trip(assign) == assign);
    assign.checkpoint.clear();
    assign.params = "{}";
    CHECK(broker_round_trip(assign) == assign);

    Ack ack{"01HZY3J5KX8Q2V7R4M6N0P1S9T", 1, 12345678901234ULL};
    CHECK(broker_round_trip(ack) == ack);
    Cancel cancel{"01HZY3J5KX8Q2V7R4M6N0P1S9T"};
    CHECK(broker_round_trip(cancel) == cancel);
    Reject reject{"01HZY3J5KX8Q2V7R4M6N0P1S9T", "lease lost — réessayez"};
    CHECK(broker_round_trip(reject) == reject);
    reject.attempt = 3;  // a reject about one attempt says which
    CHECK(broker_round_trip(reject) == reject);
}

TEST_CASE("encode clears the output buffer first", "[codec]") {
    std::string out = "garbage";
    encode(WorkerMessage{Heartbeat{}}, out);
    CHECK(out == encode(WorkerMessage{Heartbeat{}}));
    CHECK(std::holds_alternative<WorkerMessage>(decode_worker_message(out)));
}

TEST_CASE("type names match the wire tags", "[codec]") {
    CHECK(type_name(WorkerMessage{Hello{}}) == "hello");
    CHECK(type_name(WorkerMessage{Heartbeat{}}) == "heartbeat");
    CHECK(type_name(WorkerMessage{Chunk{}}) == "chunk");
    CHECK(type_name(WorkerMessage{Checkpoint{}}) == "checkpoint");
    CHECK(type_name(WorkerMessage{Done{}}) == "done");
    CHECK(type_name(WorkerMessage{Fail{}}) == "fail");
    CHECK(type_name(BrokerMessage{Welcome{}}) == "welcome");
    CHECK(type_name(BrokerMessage{Assign{}}) == "assign");
    CHECK(type_name(BrokerMessage{Ack{}}) == "ack");
    CHECK(type_name(BrokerMessage{Cancel{}}) == "cancel");
    CHECK(type_name(BrokerMessage{Heartbeat{}}) == "heartbeat");
    CHECK(type_name(BrokerMessage{Reject{}}) == "reject");
}

TEST_CASE("the wire format is the documented map", "[codec]") {
    // Decode our own encoding with plain msgpack-c: a worker in another language
    // sees exactly these keys and msgpack types.
    Chunk chunk{"job-1", 2, 3, EventKind::log, R"({"level":"info"})", 44};
    const std::string frame = encode(WorkerMessage{chunk});
    msgpack::object_handle handle = msgpack::unpack(frame.data(), frame.size());
    const auto map = handle.get().as<std::map<std::string, msgpack::object>>();
    CHECK(map.size() == 8);
    CHECK(map.at("v").as<int>() == 1);
    CHECK(map.at("t").as<std::string>() == "chunk");
    CHECK(map.at("job").as<std::string>() == "job-1");
    CHECK(map.at("attempt").as<int>() == 2);
    CHECK(map.at("wseq").as<uint64_t>() == 3);
    CHECK(map.at("kind").as<std::string>() == "log");
    CHECK(map.at("data").type == msgpack::type::MAP);
    CHECK(map.at("ts").as<int64_t>() == 44);

    Checkpoint checkpoint{"job-1", 2, 4, "xy"};
    const std::string frame2 = encode(WorkerMessage{checkpoint});
    msgpack::object_handle handle2 = msgpack::unpack(frame2.data(), frame2.size());
    const auto map2 = handle2.get().as<std::map<std::string, msgpack::object>>();
    CHECK(map2.at("bytes").type == msgpack::type::BIN);
}

TEST_CASE("unknown keys are ignored, optional fields default", "[codec]") {
    using namespace jobcast::test;
    auto fields = chunk_fields();
    fields.emplace_back("future_field", map({{"x", array({uint64(1), str("y")})}}));
    fields.emplace_back("trace_id", str("abc"));
    auto chunk = decode_worker_message(frame(fields));
    REQUIRE(std::holds_alternative<WorkerMessage>(chunk));
    CHECK(std::get<Chunk>(std::get<WorkerMessage>(chunk)).data == R"({"text":"hi"})");

    // hello without "inflight"; inflight entries with extra keys.
    auto hello = decode_worker_message(frame({{"v", uint64(1)},
                                              {"t", str("hello")},
                                              {"worker", str("w1")},
                                              {"types", array({str("exec")})},
                                              {"capacity", uint64(2)}}));
    REQUIRE(std::holds_alternative<WorkerMessage>(hello));
    CHECK(std::get<Hello>(std::get<WorkerMessage>(hello)).inflight.empty());

    auto hello2 = decode_worker_message(frame({{"v", uint64(1)},
                                               {"t", str("hello")},
                                               {"worker", str("w1")},
                                               {"types", array({})},
                                               {"capacity", uint64(1)},
                                               {"inflight", array({map({{"job", str("j")},
                                                                        {"attempt", uint64(1)},
                                                                        {"next_wseq", uint64(5)},
                                                                        {"x", nil()}})})}}));
    REQUIRE(std::holds_alternative<WorkerMessage>(hello2));
    CHECK(std::get<Hello>(std::get<WorkerMessage>(hello2)).inflight ==
          std::vector<InflightJob>{{"j", 1, 5}});

    // assign without "checkpoint".
    auto assign = decode_broker_message(frame({{"v", uint64(1)},
                                               {"t", str("assign")},
                                               {"job", str("j")},
                                               {"attempt", uint64(1)},
                                               {"type", str("exec")},
                                               {"params", map({})}}));
    REQUIRE(std::holds_alternative<BrokerMessage>(assign));
    CHECK(std::get<Assign>(std::get<BrokerMessage>(assign)).checkpoint.empty());

    // reject without "attempt" (a broker that does not say): about any attempt.
    auto reject = decode_broker_message(frame(
        {{"v", uint64(1)}, {"t", str("reject")}, {"job", str("j")}, {"reason", str("lease")}}));
    REQUIRE(std::holds_alternative<BrokerMessage>(reject));
    CHECK(std::get<Reject>(std::get<BrokerMessage>(reject)) == Reject{"j", "lease", 0});
}

TEST_CASE("data numbers in the other msgpack forms decode to JSON", "[codec]") {
    using namespace jobcast::test;
    auto decode_data = [](jobcast::test::Value data) {
        auto result =
            decode_worker_message(frame(with(chunk_fields(), "data", map({{"x", data}}))));
        REQUIRE(std::holds_alternative<WorkerMessage>(result));
        return std::get<Chunk>(std::get<WorkerMessage>(result)).data;
    };
    CHECK(decode_data(float32(0.1f)) == R"({"x":0.1})");
    CHECK(decode_data(float64(-0.0)) == R"({"x":-0.0})");
    CHECK(decode_data(float64(3.0)) == R"({"x":3})");
    CHECK(decode_data(float64(1e300)) == R"({"x":1e+300})");
    CHECK(decode_data(int64(INT64_MIN)) == R"({"x":-9223372036854775808})");
    CHECK(decode_data(uint64(UINT64_MAX)) == R"({"x":18446744073709551615})");
    CHECK(decode_data(str(std::string("a\0b\x1f\"\\", 6))) == R"({"x":"a\u0000b\u001f\"\\"})");
}

TEST_CASE("frames packed by another msgpack implementation decode", "[codec]") {
    // The fuzz seeds are written by tests/fuzz/make_corpus.py, a hand-written
    // Python packer: an independent check of the wire format.
    const auto dir = std::filesystem::path(JOBCAST_SOURCE_DIR) / "tests/fuzz/corpus/worker_decode";
    REQUIRE(std::filesystem::is_directory(dir));
    int decoded = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        std::ifstream in(entry.path(), std::ios::binary);
        const std::string frame((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
        INFO(entry.path().filename().string());
        const bool worker = std::holds_alternative<WorkerMessage>(decode_worker_message(frame));
        const bool broker = std::holds_alternative<BrokerMessage>(decode_broker_message(frame));
        CHECK((worker || broker));
        decoded += worker + broker;
    }
    // 7 worker + 6 broker types, welcome with and without features, reject
    // with and without its attempt, heartbeat with and without what the
    // worker holds, hello with schemas; a heartbeat decodes both ways.
    CHECK(decoded == 19);
}
