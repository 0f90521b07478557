// The WebSocket side of Client API v1 as the CLI speaks it: the subscribe op
// it sends and the server frames it reads. Pure.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cli/errors.hpp"

namespace jobcast::cli {

// One event of a job's log.
struct StreamEvent {
    std::uint64_t seq = 0;
    std::string kind;  // state, progress, token, log, result, error (others are ignored)
    std::int64_t ts = 0;
    boost::json::object data;
};

// {"type":"subscribed","job":ID,"last_seq":N}
struct SubscribedFrame {
    std::string job;
    std::uint64_t last_seq = 0;
};
// {"type":"event",...} or {"type":"events","job":ID,"events":[...]}
struct EventsFrame {
    std::string job;
    std::vector<StreamEvent> events;
};
// {"type":"error","code":C,"message":M[,"job":ID]}
struct ErrorFrame {
    std::string code;
    std::string message;
    std::string job;
};
// pong, feed frames, types added after v1: nothing for a watcher to do.
struct IgnoredFrame {
    std::string type;
};
// Not JSON, or a known type without its fields: the server is not speaking v1.
struct MalformedFrame {
    std::string reason;
};

using ServerFrame =
    std::variant<SubscribedFrame, EventsFrame, ErrorFrame, IgnoredFrame, MalformedFrame>;

ServerFrame parse_server_frame(std::string_view text);

// {"op":"subscribe","job":ID,"after":N}
std::string subscribe_op(std::string_view job, std::uint64_t after);

// The event as one line of `watch --json` output:
// {"job":ID,"seq":N,"kind":K,"ts":T,"data":{...}} (no newline).
std::string event_json_line(std::string_view job, const StreamEvent& event);

enum class Outcome { succeeded, failed, cancelled };

// The outcome when `event` is the terminal state event that ends a job's log.
std::optional<Outcome> terminal_outcome(const StreamEvent& event);
ExitCode exit_code(Outcome outcome);

}  // namespace jobcast::cli
