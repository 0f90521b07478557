// The client-facing JSON shapes: what a browser or the CLI parses.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/json.hpp"

using namespace jobcast;

namespace {

boost::json::value parse_or_fail(std::string_view text) {
    boost::json::error_code ec;
    boost::json::value value = boost::json::parse(text, ec);
    if (ec) FAIL("not valid JSON (" << ec.message() << "): " << text);
    return value;
}

template <class T>
std::string error_of(const T& result) {
    REQUIRE(std::holds_alternative<json::RequestError>(result));
    return std::get<json::RequestError>(result).message;
}

json::JobRequest request_of(std::string_view body) {
    auto result = json::parse_job_request(body);
    if (auto* error = std::get_if<json::RequestError>(&result)) FAIL(error->message);
    return std::get<json::JobRequest>(result);
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

TEST_CASE("job JSON of a finished job has every field with its JSON type", "[json]") {
    Job job;
    job.id = "01HZY3J5KX8Q2V7R4M6N0P1S9T";
    job.type = "llm.generate";
    job.owner = "alice";
    job.params = R"({"prompt":"héllo","max_tokens":16})";
    job.priority = -5;
    job.state = JobState::succeeded;
    job.attempt = 2;
    job.max_attempts = 3;
    job.worker = "worker-1";
    job.progress = 1.0;
    job.last_seq = 42;
    job.checkpoint = std::string("\0\1", 2);
    job.result = R"({"text":"done","tokens":16})";
    job.cancel_requested = true;
    job.created_at = 1700000000000;
    job.started_at = 1700000000500;
    job.finished_at = 1700000001000;

    const auto value = parse_or_fail(json::job(job));
    const auto& o = value.as_object();
    CHECK(o.at("id") == "01HZY3J5KX8Q2V7R4M6N0P1S9T");
    CHECK(o.at("type") == "llm.generate");
    CHECK(o.at("owner") == "alice");
    REQUIRE(o.at("params").is_object());
    CHECK(o.at("params").at("prompt") == "héllo");
    CHECK(o.at("params").at("max_tokens") == 16);
    CHECK(o.at("priority") == -5);
    CHECK(o.at("state") == "succeeded");
    CHECK(o.at("attempt") == 2);
    CHECK(o.at("max_attempts") == 3);
    CHECK(o.at("worker") == "worker-1");
    CHECK(o.at("progress").to_number<double>() == 1.0);
    CHECK(o.at("last_seq") == 42);
    REQUIRE(o.at("result").is_object());
    CHECK(o.at("result").at("tokens") == 16);
    CHECK(o.at("error").is_null());
    CHECK(o.at("created_at") == 1700000000000);
    CHECK(o.at("started_at") == 1700000000500);
    CHECK(o.at("finished_at") == 1700000001000);
    CHECK(o.at("cancel_requested") == true);
    CHECK(o.at("has_checkpoint") == true);
    CHECK_FALSE(o.contains("checkpoint"));  // opaque worker bytes stay private
    CHECK(o.size() == 18);
}

TEST_CASE("job JSON of a fresh job has nulls for what is absent", "[json]") {
    Job job;
    job.id = "01HZY3J5KX8Q2V7R4M6N0P1S9T";
    job.type = "exec";
    job.owner = "anonymous";
    job.progress = 0.25;
    job.created_at = 1700000000000;
    const auto value = parse_or_fail(json::job(job));
    const auto& o = value.as_object();
    CHECK(o.at("state") == "queued");
    CHECK(o.at("params").is_object());
    CHECK(o.at("params").as_object().empty());
    CHECK(o.at("worker").is_null());
    CHECK(o.at("result").is_null());
    CHECK(o.at("error").is_null());
    CHECK(o.at("started_at").is_null());
    CHECK(o.at("finished_at").is_null());
    CHECK(o.at("created_at") == 1700000000000);
    CHECK(o.at("progress").as_double() == 0.25);
    CHECK(o.at("cancel_requested") == false);
    CHECK(o.at("has_checkpoint") == false);
}

TEST_CASE("job JSON escapes text and survives damaged payloads", "[json]") {
    Job job;
    job.id = "id";
    job.type = "exec";
    job.owner = "o\"wn\ner";
    job.state = JobState::failed;
    job.error = "line 1\nline 2\t\"quoted\" \x01 \xff";
    job.params = "{not json";
    job.result = "also not json";
    const auto value = parse_or_fail(json::job(job));
    CHECK(value.at("owner") == "o\"wn\ner");
    CHECK(value.at("error") == "line 1\nline 2\t\"quoted\" \x01 \xef\xbf\xbd");
    CHECK(value.at("params").is_null());
    CHECK(value.at("result").is_null());
}

TEST_CASE("event_object is exact", "[json]") {
    Event event;
    event.seq = 7;
    event.kind = EventKind::token;
    event.ts = 1700000000123456;
    event.data = R"({"text":"Hel"})";
    CHECK(json::event_object(event) ==
          R"({"seq":7,"kind":"token","ts":1700000000123456,"data":{"text":"Hel"}})");

    std::string batch = "[";
    json::append_event_object(batch, event);
    batch += ",";
    event.seq = 8;
    event.kind = EventKind::state;
    event.data = R"({"state":"succeeded","attempt":1})";
    json::append_event_object(batch, event);
    batch += "]";
    const auto value = parse_or_fail(batch);
    CHECK(value.as_array().size() == 2);
    CHECK(value.at(1).at("kind") == "state");
    CHECK(value.at(1).at("data").at("state") == "succeeded");

    event.data.clear();
    CHECK(json::event_object(event) ==
          R"({"seq":8,"kind":"state","ts":1700000000123456,"data":{}})");
}

TEST_CASE("error_body", "[json]") {
    CHECK(json::error_body("not_found", "no such job") ==
          R"({"error":{"code":"not_found","message":"no such job"}})");
    const auto value = parse_or_fail(json::error_body("bad_request", "field 'x' \"y\"\n"));
    CHECK(value.at("error").at("message") == "field 'x' \"y\"\n");
}

TEST_CASE("append_quoted escapes every control character", "[json]") {
    std::string all;
    for (int c = 0; c < 0x80; ++c)
        all.push_back(static_cast<char>(c));
    std::string out;
    json::append_quoted(out, all);
    const auto value = parse_or_fail(out);
    CHECK(value.as_string() == all);
    CHECK(contains(out, R"(\u0000)"));
    CHECK(contains(out, R"(\n)"));
    CHECK(contains(out, R"(\t)"));
    CHECK(contains(out, R"(\u001f)"));
    CHECK(contains(out, R"(\")"));
    CHECK(contains(out, R"(\\)"));

    out.clear();
    json::append_quoted(out, "");
    CHECK(out == "\"\"");
    out = "x=";
    json::append_quoted(out, "é東🚀");
    CHECK(out == "x=\"é東🚀\"");  // valid UTF-8 passes through unescaped
}

TEST_CASE("append_quoted turns invalid UTF-8 into U+FFFD and stays valid JSON", "[json]") {
    const std::string inputs[] = {
        "\xff",        "a\x80z",          "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
        "ok \xe6\x9d", "\xe6\x9d\xb1\xe6"};
    for (const std::string& input : inputs) {
        std::string out;
        json::append_quoted(out, input);
        const auto value = parse_or_fail(out);
        CHECK(contains(value.as_string(), "\xef\xbf\xbd"));
    }
    std::string out;
    json::append_quoted(out,
                        "a\xff"
                        "b");
    CHECK(out == R"("a\ufffdb")");
    // Every single byte value, alone: always parseable.
    for (int b = 0; b < 256; ++b) {
        std::string one(1, static_cast<char>(b));
        std::string quoted;
        json::append_quoted(quoted, one);
        parse_or_fail(quoted);
    }
}

TEST_CASE("parse_job_request accepts good bodies", "[json][request]") {
    auto minimal = request_of(R"({"type":"exec"})");
    CHECK(minimal.type == "exec");
    CHECK(minimal.params == "{}");
    CHECK(minimal.priority == 0);
    CHECK(minimal.max_attempts == 3);

    auto full = request_of(
        R"( { "type" : "llm.generate_v2-beta", "params" : { "prompt" : "hi", "n" : [1, 2.50, -0.0], )"
        R"("x": 1.3927926388013963e-143 }, "priority": -1000, "max_attempts": 100 } )");
    CHECK(full.type == "llm.generate_v2-beta");
    CHECK(full.params == R"({"prompt":"hi","n":[1,2.5,-0.0],"x":1.3927926388013963e-143})");
    CHECK(full.priority == -1000);
    CHECK(full.max_attempts == 100);

    CHECK(request_of(R"({"type":"a","priority":1000,"max_attempts":1})").priority == 1000);
    CHECK(request_of(std::string(R"({"type":")") + std::string(128, 'x') + "\"}").type.size() ==
          128);
}

TEST_CASE("parse_job_request names the field and the problem", "[json][request]") {
    auto error = [](std::string_view body) { return error_of(json::parse_job_request(body)); };
    CHECK(contains(error(""), "not valid JSON"));
    CHECK(contains(error("{\"type\":"), "not valid JSON"));
    CHECK(contains(error(R"({"type":"exec"} x)"), "not valid JSON"));
    CHECK(contains(error("[1]"), "must be a JSON object"));
    CHECK(contains(error("\"exec\""), "must be a JSON object"));
    CHECK(contains(error("{}"), "'type' is required"));
    CHECK(contains(error(R"({"type":5})"), "'type' must be a string"));
    CHECK(contains(error(R"({"type":null})"), "'type' must be a string"));
    CHECK(contains(error(R"({"type":""})"), "'type' must not be empty"));
    CHECK(contains(error(std::string(R"({"type":")") + std::string(129, 'x') + "\"}"),
                   "'type' must be at most 128"));
    CHECK(contains(error(R"({"type":"has space"})"), "'type' may contain only"));
    CHECK(contains(error(R"({"type":"a/b"})"), "'type' may contain only"));
    CHECK(contains(error(R"({"type":"é"})"), "'type' may contain only"));
    CHECK(contains(error(R"({"type":"exec","params":[]})"), "'params' must be a JSON object"));
    CHECK(contains(error(R"({"type":"exec","params":"{}"})"), "'params' must be a JSON object"));
    CHECK(contains(error(R"({"type":"exec","params":null})"), "'params' must be a JSON object"));
    CHECK(contains(error(R"({"type":"exec","priority":1.5})"), "'priority' must be an integer"));
    CHECK(contains(error(R"({"type":"exec","priority":"1"})"), "'priority' must be an integer"));
    CHECK(contains(error(R"({"type":"exec","priority":1001})"), "'priority' must be between"));
    CHECK(contains(error(R"({"type":"exec","priority":-1001})"), "'priority' must be between"));
    CHECK(contains(error(R"({"type":"exec","priority":18446744073709551615})"),
                   "'priority' must be between"));
    CHECK(contains(error(R"({"type":"exec","max_attempts":0})"), "'max_attempts' must be between"));
    CHECK(
        contains(error(R"({"type":"exec","max_attempts":101})"), "'max_attempts' must be between"));
    CHECK(contains(error(R"({"type":"exec","max_attempts":true})"),
                   "'max_attempts' must be an integer"));
    CHECK(contains(error(R"({"type":"exec","type":"exec"})"), "'type' appears more than once"));

    const std::string unknown = error(R"({"type":"exec","owner":"mallory","Priority":1})");
    CHECK(contains(unknown, "unknown field"));
    CHECK(contains(unknown, "owner"));
    CHECK(contains(unknown, "Priority"));
}

TEST_CASE("is_object", "[json]") {
    CHECK(json::is_object("{}"));
    CHECK(json::is_object(R"( {"a":[1,{"b":null}]} )"));
    CHECK_FALSE(json::is_object(""));
    CHECK_FALSE(json::is_object("[]"));
    CHECK_FALSE(json::is_object("null"));
    CHECK_FALSE(json::is_object("\"{}\""));
    CHECK_FALSE(json::is_object("{"));
    CHECK_FALSE(json::is_object("{} {}"));
    CHECK_FALSE(json::is_object("{\"a\":\"\xff\"}"));
}

TEST_CASE("integers are written as std::to_string writes them", "[json]") {
    std::vector<std::int64_t> values = {0, INT64_MIN, INT64_MIN + 1, INT64_MAX, -1};
    for (std::int64_t power = 1; power <= INT64_MAX / 10; power *= 10) {
        for (std::int64_t v : {power - 1, power, power + 1, -power, -(power - 1), 9 * power})
            values.push_back(v);
    }
    for (std::int64_t v : values) {
        std::string out = "x";
        json::detail::append_int(out, v);
        CHECK(out == "x" + std::to_string(v));
        if (v >= 0) {
            out = "y";
            json::detail::append_uint(out, static_cast<std::uint64_t>(v));
            CHECK(out == "y" + std::to_string(v));
        }
    }
    std::string out;
    json::detail::append_uint(out, UINT64_MAX);
    CHECK(out == "18446744073709551615");
}
