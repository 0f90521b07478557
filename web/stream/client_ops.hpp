// The WebSocket client ops of Client API v1, parsed from one text message.
// Pure: no sockets. Every malformed message becomes an OpError with a code
// and a message that says what is wrong; nothing throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace jobcast::web {

struct SubscribeOp {
    std::string job;
    std::uint64_t after = 0;
};
struct SubscribeFeedOp {
    std::string feed;  // "jobs"
};
struct UnsubscribeOp {
    std::string job;
};
struct UnsubscribeFeedOp {
    std::string feed;
};
struct CancelOp {
    std::string job;
};
struct PingOp {};
struct AuthOp {
    std::string token;
};

using ClientOp = std::variant<SubscribeOp, SubscribeFeedOp, UnsubscribeOp, UnsubscribeFeedOp,
                              CancelOp, PingOp, AuthOp>;

struct OpError {
    std::string code;     // "bad_json", "unknown_op", "bad_request"
    std::string message;  // names the field and the problem
    std::string job;      // the job the op named, when it named one
};

std::variant<ClientOp, OpError> parse_client_op(std::string_view text);

// {"type":"error","code":C,"message":M[,"job":ID]}
std::string error_frame(std::string_view code, std::string_view message, std::string_view job = {});
// {"type":"subscribed","job":ID,"last_seq":N}
std::string subscribed_frame(std::string_view job, std::uint64_t last_seq);

}  // namespace jobcast::web
