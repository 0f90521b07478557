// libFuzzer target for the WebSocket client ops: parse_client_op on arbitrary
// text. An op that parses must satisfy the op's own rules (job ids of 1..64
// printable ASCII bytes, a non-empty token) and parse back to itself from its
// canonical JSON; a refusal must carry a known code and a message, and the
// error frame sent for it must be valid JSON. Anything else aborts.
#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/client_api.hpp"
#include "protocol/json.hpp"

using namespace jobcast;
using namespace jobcast::client_api;

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
    std::fprintf(stderr, "fuzz_client_ops: %s: %.*s\n", what, static_cast<int>(text.size()),
                 text.data());
    std::abort();
}

boost::json::value parse_json(std::string_view text) {
    boost::json::error_code ec;
    boost::json::value value = boost::json::parse(text, ec);
    if (ec || !value.is_object()) fail("a frame we build is not a JSON object", text);
    return value;
}

void check_job_id(std::string_view job) {
    if (job.empty() || job.size() > 64) fail("job id of a bad length accepted", job);
    for (unsigned char c : job) {
        if (c <= 0x20 || c >= 0x7f) fail("job id with a control or non-ASCII byte", job);
    }
}

std::string quoted(std::string_view text) {
    std::string out;
    json::append_quoted(out, text);
    return out;
}

// Parses `canonical` and checks it gives an op of the same kind as `op`.
template <class Op>
const Op& reparse(const std::string& canonical, std::variant<ClientOp, OpError>& holder) {
    holder = parse_client_op(canonical);
    const auto* again = std::get_if<ClientOp>(&holder);
    if (!again || !std::holds_alternative<Op>(*again)) {
        fail("canonical op does not parse back", canonical);
    }
    return std::get<Op>(*again);
}

void check(const SubscribeOp& op) {
    check_job_id(op.job);
    std::variant<ClientOp, OpError> holder;
    const auto& again = reparse<SubscribeOp>(R"({"op":"subscribe","job":)" + quoted(op.job) +
                                                 R"(,"after":)" + std::to_string(op.after) + "}",
                                             holder);
    if (again.job != op.job || again.after != op.after) fail("subscribe changed", op.job);
    const std::string frame = subscribed_frame(op.job, op.after);
    if (parse_json(frame).as_object().at("job").as_string() != op.job) {
        fail("subscribed frame lost the job id", frame);
    }
}
// unsubscribe and cancel: an op that names only a job.
template <class Op>
void check_job_op(const Op& op, const char* name) {
    check_job_id(op.job);
    std::variant<ClientOp, OpError> holder;
    const auto& again = reparse<Op>(
        std::string(R"({"op":")") + name + R"(","job":)" + quoted(op.job) + "}", holder);
    if (again.job != op.job) fail("op changed its job", op.job);
}
void check(const UnsubscribeOp& op) {
    check_job_op(op, "unsubscribe");
}
void check(const CancelOp& op) {
    check_job_op(op, "cancel");
}
void check(const AuthOp& op) {
    if (op.token.empty()) fail("empty token accepted", op.token);
    std::variant<ClientOp, OpError> holder;
    const auto& again =
        reparse<AuthOp>(R"({"op":"auth","token":)" + quoted(op.token) + "}", holder);
    if (again.token != op.token) fail("auth token changed", op.token);
}
void check(const SubscribeFeedOp& op) {
    if (op.feed != "jobs") fail("unknown feed accepted", op.feed);
}
void check(const UnsubscribeFeedOp& op) {
    if (op.feed != "jobs") fail("unknown feed accepted", op.feed);
}
void check(const PingOp&) {}

void check(const OpError& error, std::string_view input) {
    if (error.code != "bad_json" && error.code != "unknown_op" && error.code != "bad_request") {
        fail("unknown error code", error.code);
    }
    if (error.message.empty()) fail("error without a message", input);
    if (!error.job.empty()) check_job_id(error.job);
    const std::string frame = error_frame(error.code, error.message, error.job);
    const auto value = parse_json(frame);
    if (value.as_object().at("type").as_string() != "error") fail("error frame type", frame);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    auto parsed = parse_client_op(input);
    if (const auto* error = std::get_if<OpError>(&parsed)) {
        check(*error, input);
    } else {
        std::visit([](const auto& op) { check(op); }, std::get<ClientOp>(parsed));
    }
    // Arbitrary bytes as the code, message and job of an error frame.
    const auto third = size / 3;
    const std::string frame =
        error_frame(input.substr(0, third), input.substr(third, third), input.substr(2 * third));
    parse_json(frame);
    return 0;
}
