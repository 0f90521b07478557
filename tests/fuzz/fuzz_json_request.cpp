// libFuzzer target for the client-facing JSON: parse_job_request on arbitrary
// bodies, and append_quoted / error_body on arbitrary bytes, must always produce
// valid JSON (checked with Boost.JSON's own parser) or a clean error; and params
// it accepts must decode in a worker's assign.
#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/codec.hpp"
#include "protocol/json.hpp"

using namespace jobcast;

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
    std::fprintf(stderr, "fuzz_json_request: %s: %.*s\n", what, static_cast<int>(text.size()),
                 text.data());
    std::abort();
}

bool parses(std::string_view text) {
    boost::json::error_code ec;
    boost::json::parse(text, ec);
    return !ec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    const auto request = json::parse_job_request(input);
    if (const auto* ok = std::get_if<json::JobRequest>(&request)) {
        if (!json::is_object(ok->params)) fail("params is not an object", ok->params);
        if (ok->type.empty() || ok->type.size() > 128) fail("bad type accepted", ok->type);
        if (ok->priority < -1000 || ok->priority > 1000) fail("priority out of range", input);
        if (ok->max_attempts < 1 || ok->max_attempts > 100)
            fail("max_attempts out of range", input);
        // What submit accepts, every worker decodes (audit H1): the assign of
        // a job with these params passes the worker's own decoder.
        const std::string frame = proto::encode(proto::BrokerMessage{proto::Assign{
            "01HZY3J5KX8Q2V7R4M6N0P1S9T", ok->max_attempts, ok->type, ok->params, ""}});
        if (!std::holds_alternative<proto::BrokerMessage>(proto::decode_broker_message(frame)))
            fail("accepted params a worker cannot decode", ok->params);
        // Canonical params are a fixed point.
        const std::string again = "{\"type\":\"t\",\"params\":" + ok->params + "}";
        const auto second = json::parse_job_request(again);
        if (!std::holds_alternative<json::JobRequest>(second) ||
            std::get<json::JobRequest>(second).params != ok->params) {
            fail("params do not re-parse to themselves", ok->params);
        }
    } else {
        const std::string body =
            json::error_body("bad_request", std::get<json::RequestError>(request).message);
        if (!parses(body)) fail("error body is not JSON", body);
    }

    std::string quoted;
    json::append_quoted(quoted, input);
    if (!parses(quoted)) fail("append_quoted output is not JSON", quoted);
    return 0;
}
