// libFuzzer target for the client-facing JSON: parse_job_request on arbitrary
// bodies, and append_quoted / error_body on arbitrary bytes, must always produce
// valid JSON (checked with Boost.JSON's own parser) or a clean error.
#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

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
