// libFuzzer target for HTTP request handling up to the router. The input is
// read twice:
//  1. as raw bytes on the wire, through the Beast parser the server uses (its
//     header and body limits) and to_http_request, as HttpSession does;
//  2. as "METHOD TARGET\nName: value\n...\n\nbody" split leniently, so bytes
//     the Beast parser would refuse (NUL, invalid UTF-8, bare CR) still reach
//     the target, query and header handling.
// Each request goes through parse_rest_request (route, method, query and body
// validation: everything RestApi does before it touches the store),
// refuse_websocket_upgrade and route_label (the metric label). A refusal must be a 400/404/405 with
// a JSON error body of the matching code; an accepted call must be within the configured bounds.
// Anything else aborts.
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "web/http/beast_request.hpp"
#include "web/http/http_server.hpp"
#include "web/http/routes.hpp"
#include "web/rest/rest_api.hpp"
#include "web/rest/rest_request.hpp"
#include "web/stream/websocket_handshake.hpp"

using namespace jobcast;
using namespace jobcast::web;
namespace http = boost::beast::http;

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
    std::fprintf(stderr, "fuzz_http_request: %s: %.*s\n", what, static_cast<int>(text.size()),
                 text.data());
    std::abort();
}

const RestConfig& config() {
    static const RestConfig instance;
    return instance;
}

void check_refusal(const HttpResponse& response, const HttpRequest& request) {
    std::string_view expected;
    switch (response.status) {
        case 400:
            expected = "invalid_request";
            break;
        case 404:
            expected = "not_found";
            break;
        case 405:
            expected = "method_not_allowed";
            if (response.headers.empty() || response.headers.front().first != "Allow") {
                fail("405 without Allow", request.target);
            }
            break;
        default:
            fail("unexpected refusal status", request.target);
    }
    boost::json::error_code ec;
    auto body = boost::json::parse(response.body, ec);
    if (ec || !body.is_object()) fail("error body is not JSON", response.body);
    const auto* error = body.as_object().if_contains("error");
    if (!error || !error->is_object()) fail("error body has no error object", response.body);
    const auto* code = error->as_object().if_contains("code");
    if (!code || !code->is_string() || code->as_string() != expected) {
        fail("error code does not match the status", response.body);
    }
}

struct CallChecker {
    const HttpRequest& request;
    void operator()(const HealthCall&) const {}
    void operator()(const ReadyCall&) const {}
    void operator()(const CreateJobCall& call) const {
        if (request.method != "POST") fail("create without POST", request.method);
        if (call.idempotency_key.size() > config().max_idempotency_key) {
            fail("idempotency key too long", call.idempotency_key);
        }
        if (call.job.type.empty()) fail("job without a type", request.body);
        if (!json::is_object(call.job.params)) fail("params not an object", call.job.params);
    }
    void operator()(const GetJobCall& call) const { check_id(call.job_id); }
    void operator()(const CancelJobCall& call) const { check_id(call.job_id); }
    void operator()(const ListJobsCall& call) const {
        if (call.limit < 1 || call.limit > config().max_list_limit)
            fail("list limit", request.target);
        if (call.type && call.type->empty()) fail("empty type filter", request.target);
    }
    void operator()(const JobEventsCall& call) const {
        check_id(call.job_id);
        if (call.limit < 1 || call.limit > config().max_events_limit) {
            fail("events limit", request.target);
        }
        if (call.wait.count() < 0 || call.wait > config().max_wait) fail("wait", request.target);
    }
    void operator()(const JobSnapshotCall& call) const { check_id(call.job_id); }
    void operator()(const TypesCall&) const {}
    void operator()(const CreateTokenCall& call) const {
        check_id(call.job_id);
        if (call.token.ttl_seconds &&
            (*call.token.ttl_seconds < 1 || *call.token.ttl_seconds > json::kMaxTokenTtlSeconds)) {
            fail("token ttl", request.body);
        }
    }
    void operator()(const RevokeTokensCall& call) const {
        if (call.revoke.key.empty() || call.revoke.key.size() > json::kMaxRevokeKeyBytes) {
            fail("revocation key", request.body);
        }
    }
    void check_id(const std::string& id) const {
        if (id.empty()) fail("empty job id routed", request.target);
    }
};

void check_request(const HttpRequest& request) {
    auto parsed = parse_rest_request(request, config());
    if (const auto* refused = std::get_if<HttpResponse>(&parsed)) {
        check_refusal(*refused, request);
    } else {
        std::visit(CallChecker{request}, std::get<RestCall>(parsed));
    }
    if (auto refused = refuse_websocket_upgrade(request)) {
        if (refused->status != 400 && refused->status != 426)
            fail("upgrade refusal", request.target);
        boost::json::error_code ec;
        boost::json::parse(refused->body, ec);
        if (ec) fail("upgrade refusal is not JSON", refused->body);
    }
    const std::string_view label = route_label(request.target);
    if (label.empty() || label.front() == '?') fail("bad route label", request.target);
    for (char c : label) {
        if (static_cast<unsigned char>(c) < 0x20) fail("control byte in a route label", label);
    }
}

// 1. Bytes on the wire, through Beast.
void through_beast(std::string_view input) {
    const HttpConfig limits;
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    parser.header_limit(static_cast<std::uint32_t>(limits.header_limit));
    parser.body_limit(limits.body_limit);
    boost::beast::error_code ec;
    std::size_t used = 0;
    while (used < input.size() && !parser.is_done()) {
        std::size_t n =
            parser.put(boost::asio::buffer(input.data() + used, input.size() - used), ec);
        if (ec == http::error::need_more) {
            ec = {};
            if (n == 0) break;
        }
        if (ec) return;
        used += n;
    }
    if (!parser.is_done()) {
        parser.put_eof(ec);
        if (ec || !parser.is_done()) return;
    }
    auto message = parser.release();
    check_request(to_http_request(message));
}

// 2. The same bytes split leniently, without Beast's checks.
void direct(std::string_view input) {
    HttpRequest request;
    auto take_line = [&input]() {
        auto nl = input.find('\n');
        std::string_view line = input.substr(0, nl);
        input = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        return line;
    };
    std::string_view first = take_line();
    auto space = first.find(' ');
    request.method = std::string(first.substr(0, space));
    if (space != std::string_view::npos) {
        std::string_view target = first.substr(space + 1);
        target = target.substr(0, target.find(' '));  // drop " HTTP/1.1"
        request.target = std::string(target);
    }
    while (!input.empty()) {
        std::string_view line = take_line();
        if (line.empty()) break;
        auto colon = line.find(':');
        std::string_view value =
            colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
            value.remove_prefix(1);
        request.headers.emplace(std::string(line.substr(0, colon)), std::string(value));
    }
    request.body = std::string(input);
    check_request(request);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    through_beast(input);
    direct(input);
    return 0;
}
