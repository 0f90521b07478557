// One set of limits for both sides (audit H1): what POST /v1/jobs accepts is
// exactly what a worker's decoder takes in an assign, so no job can hold a
// worker slot while its worker drops the assign. And what a worker can still
// read from an assign it cannot decode, to answer it (peek_assign).
#include <catch2/catch.hpp>
#include <climits>
#include <string>

#include "frame_builder.hpp"
#include "protocol/assign_check.hpp"
#include "protocol/codec.hpp"
#include "protocol/json.hpp"
#include "protocol/limits.hpp"

using namespace jobcast;
using namespace jobcast::proto;

namespace {

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// {"prompt":"hi","x":<depth nested arrays around 1>}: the params object is
// level 1, so its deepest container is at level depth + 1.
std::string nested_params(int depth) {
    return R"({"prompt":"hi","x":)" + std::string(depth, '[') + "1" + std::string(depth, ']') + "}";
}

// {"x":[1.5,1.5,...]} with `n` floats.
std::string float_params(std::size_t n, std::string_view number = "1.5") {
    std::string out = R"({"x":[)";
    for (std::size_t i = 0; i < n; ++i) {
        if (i) out += ',';
        out += number;
    }
    return out + "]}";
}

std::string submit_error(const std::string& params) {
    auto result = json::parse_job_request(R"({"type":"llm.generate","params":)" + params + "}");
    REQUIRE(std::holds_alternative<json::RequestError>(result));
    return std::get<json::RequestError>(result).message;
}

bool submit_ok(const std::string& params) {
    auto result = json::parse_job_request(R"({"type":"llm.generate","params":)" + params + "}");
    if (auto* error = std::get_if<json::RequestError>(&result)) {
        UNSCOPED_INFO(error->message);
        return false;
    }
    return true;
}

// Whether a worker decodes the assign of a job with these params (a real id).
bool worker_decodes(const std::string& params, const std::string& checkpoint = "") {
    const std::string frame = encode(
        BrokerMessage{Assign{"01HZY3J5KX8Q2V7R4M6N0P1S9T", 1, "llm.generate", params, checkpoint}});
    return std::holds_alternative<BrokerMessage>(decode_broker_message(frame));
}

}  // namespace

TEST_CASE("the shared limits are the worker decoder's defaults", "[limits]") {
    CHECK(DecodeLimits{}.max_frame_bytes == kMaxFrameBytes);
    CHECK(DecodeLimits{}.max_depth == kMaxDataDepth);
}

TEST_CASE("submit refuses params with a duplicate key, as the worker does", "[limits]") {
    const std::string dup = R"({"prompt":"a","max_tokens":3,"prompt":"b"})";
    CHECK_FALSE(worker_decodes(dup));
    const std::string message = submit_error(dup);
    CHECK(contains(message, "field 'params'"));
    CHECK(contains(message, "duplicate map key \"prompt\""));
    // Nested objects too.
    CHECK(contains(submit_error(R"({"a":[{"k":1,"k":2}]})"), "duplicate map key \"k\""));
    CHECK(submit_ok(R"({"a":[{"k":1},{"k":2}],"k":3})"));  // same key in different objects
}

TEST_CASE("submit takes params exactly as deep as the worker decodes", "[limits]") {
    // The params object is level 1 on both sides: 31 arrays inside it are level 32.
    CHECK(worker_decodes(nested_params(kMaxDataDepth - 1)));
    CHECK(submit_ok(nested_params(kMaxDataDepth - 1)));
    CHECK_FALSE(worker_decodes(nested_params(kMaxDataDepth)));
    const std::string message = submit_error(nested_params(kMaxDataDepth));
    CHECK(contains(message, "field 'params' nests deeper than 32 levels"));
    // The audit's variant: 40 levels, within the request body's own limit.
    CHECK(contains(submit_error(nested_params(40)), "nests deeper"));
}

TEST_CASE("submit measures params as the assign's msgpack, floats included", "[limits]") {
    // "1.5," is 4 bytes of JSON and 9 of msgpack (float64): a body under the
    // 1 MiB request limit becomes an assign over the worker's 1 MiB frame.
    const std::size_t n = (std::size_t{1} << 20) / 4 - 1000;
    const std::string floats = float_params(n);
    REQUIRE(floats.size() < (std::size_t{1} << 20));
    CHECK_FALSE(worker_decodes(floats));
    const std::string message = submit_error(floats);
    CHECK(contains(message, "field 'params' is too large for a worker"));
    CHECK(contains(message, "over the limit of 1048576"));
    // The same count of small integers is 1 byte each: fine.
    CHECK(submit_ok(float_params(n, "1")));
    CHECK(worker_decodes(float_params(n, "1")));

    // At the boundary: the largest string param that fits passes both sides.
    const std::string probe = R"({"s":""})";
    std::string frame;
    Assign assign{std::string(kMaxJobIdBytes, '0'), INT_MAX, "llm.generate", probe, ""};
    REQUIRE_FALSE(check_assign(assign, frame));
    const std::size_t envelope = frame.size();  // with an empty string (a 1-byte header)
    // A str32 header is 5 bytes: 4 more than the empty string's.
    const std::size_t fits = kMaxFrameBytes - envelope - 4;
    const std::string largest = R"({"s":")" + std::string(fits, 'a') + "\"}";
    CHECK(submit_ok(largest));
    CHECK(worker_decodes(largest));
    CHECK(contains(submit_error(R"({"s":")" + std::string(fits + 1, 'a') + "\"}"), "too large"));
}

TEST_CASE("check_assign refuses an assign a checkpoint pushes over the frame limit", "[limits]") {
    std::string frame;
    Assign assign{"01HZY3J5KX8Q2V7R4M6N0P1S9T", 2, "research", R"({"topic":"t"})",
                  std::string(kMaxFrameBytes - 200, 'c')};
    CHECK_FALSE(check_assign(assign, frame));  // still fits
    CHECK(worker_decodes(assign.params, assign.checkpoint));
    assign.params = R"({"topic":")" + std::string(300, 't') + "\"}";
    auto problem = check_assign(assign, frame);
    REQUIRE(problem);
    CHECK(problem->kind == AssignProblem::Kind::too_large);
    CHECK(contains(problem->detail, "over the limit of 1048576"));
    CHECK_FALSE(worker_decodes(assign.params, assign.checkpoint));
    // Params that are not JSON (a damaged row) are a problem, not an exception.
    assign.checkpoint.clear();
    assign.params = "{not json";
    problem = check_assign(assign, frame);
    REQUIRE(problem);
    CHECK(problem->kind == AssignProblem::Kind::undecodable);
}

TEST_CASE("peek_assign reads the job and attempt of an assign that does not decode",
          "[limits][codec]") {
    using namespace jobcast::test;
    const Fields assign = {{"v", uint64(1)},
                           {"t", str("assign")},
                           {"job", str("01HZY3J5KX8Q2V7R4M6N0P1S9T")},
                           {"attempt", uint64(3)},
                           {"type", str("llm.generate")},
                           {"params", map({{"a", uint64(1)}, {"a", uint64(2)}})}};
    REQUIRE(std::holds_alternative<DecodeError>(decode_broker_message(frame(assign))));
    AssignHeader header = peek_assign(frame(assign));
    CHECK(header.is_assign);
    CHECK(header.job == "01HZY3J5KX8Q2V7R4M6N0P1S9T");
    CHECK(header.attempt == 3);

    // Params nested past any limit, and before the job and attempt.
    Fields deep = {{"v", uint64(1)},
                   {"t", str("assign")},
                   {"params", map({{"x", raw(std::string(100000, '\x91') + '\x01')}})},
                   {"checkpoint", bin("cp")},
                   {"job", str("J")},
                   {"attempt", int64(1)}};
    header = peek_assign(frame(deep));
    CHECK(header.is_assign);
    CHECK(header.job == "J");
    CHECK(header.attempt == 1);

    // An oversize frame (the decoder stops at its size).
    Fields big = with(assign, "params", map({{"s", str(std::string(kMaxFrameBytes, 's'))}}));
    header = peek_assign(frame(big));
    CHECK(header.is_assign);
    CHECK(header.attempt == 3);

    // Damage after the fields it needs does not matter; damage before does.
    std::string truncated = frame(assign);
    truncated.resize(truncated.size() - 3);
    CHECK(peek_assign(truncated).job.has_value());
    CHECK_FALSE(peek_assign(frame(assign).substr(0, 12)).job.has_value());

    // A repeated key counts with its last value, as in the decoder, and a
    // value of the wrong type is skipped.
    header = peek_assign(frame({{"t", uint64(1)},
                                {"job", uint64(5)},
                                {"attempt", str("x")},
                                {"t", str("assign")},
                                {"job", str("J")},
                                {"attempt", uint64(2)}}));
    CHECK(header.is_assign);
    CHECK(header.job == "J");
    CHECK(header.attempt == 2);
    header = peek_assign(frame(with(with(assign, "extra", str("x")), "job", str("J"))));
    CHECK(header.job == "J");
    CHECK_FALSE(peek_assign(frame({{"t", str("assign")}, {"job", str("J")}, {"job", uint64(1)}}))
                    .job.has_value());

    // What it cannot answer: not an assign, no usable job or attempt.
    CHECK_FALSE(peek_assign(frame(with(assign, "t", str("cancel")))).is_assign);
    CHECK_FALSE(peek_assign(frame(with(assign, "job", uint64(5)))).job.has_value());
    CHECK_FALSE(peek_assign(frame(with(assign, "job", str("")))).job.has_value());
    CHECK_FALSE(
        peek_assign(frame(with(assign, "job", str(std::string(kMaxJobIdBytes + 1, 'j'))))).job);
    CHECK_FALSE(peek_assign(frame(with(assign, "job", str("\xff")))).job.has_value());
    CHECK_FALSE(peek_assign(frame(with(assign, "attempt", int64(-1)))).attempt.has_value());
    CHECK_FALSE(peek_assign(frame(with(assign, "attempt", uint64(1ULL << 40)))).attempt);
    CHECK_FALSE(peek_assign(frame(with(assign, "attempt", str("1")))).attempt.has_value());
    for (std::string_view garbage :
         {"", "\xc1", "\x91\x01", "\x81", "\x81\xa1t\xdb\xff\xff\xff\xff"})
        CHECK_FALSE(peek_assign(garbage).is_assign);
    // Every truncation of a poison assign is read without a crash.
    const std::string whole = frame(assign);
    for (std::size_t n = 0; n <= whole.size(); ++n)
        (void)peek_assign(whole.substr(0, n));
}

TEST_CASE("printable names: no control characters, no line separators", "[limits]") {
    CHECK(is_printable_name("w-1", 128));
    CHECK(is_printable_name("wörker 東京 🚀", 128));
    CHECK(is_printable_name(std::string(128, 'w'), 128));
    CHECK_FALSE(is_printable_name(std::string(129, 'w'), 128));
    CHECK_FALSE(is_printable_name("", 128));
    CHECK_FALSE(is_printable_name("w\n2030-01-01T00:00:00.000 info audit", 128));
    CHECK_FALSE(is_printable_name("w\r", 128));
    CHECK_FALSE(is_printable_name("tab\there", 128));
    CHECK_FALSE(is_printable_name(std::string("nul\0", 4), 128));
    CHECK_FALSE(is_printable_name("del\x7f", 128));
    CHECK_FALSE(is_printable_name("nel\xc2\x85", 128));
    CHECK_FALSE(is_printable_name("ls\xe2\x80\xa8", 128));
    CHECK_FALSE(is_printable_name("ps\xe2\x80\xa9", 128));
    CHECK_FALSE(is_printable_name("bad\xff", 128));
    CHECK(is_printable_name("nbsp\xc2\xa0", 128));
}
