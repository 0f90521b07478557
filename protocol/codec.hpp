// msgpack encode/decode of worker protocol v1. Decoding never trusts its input:
// every failure is a DecodeError value naming the problem; no exception escapes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/limits.hpp"
#include "protocol/messages.hpp"

namespace jobcast::proto {

enum class DecodeErrorCode {
    oversize,       // frame larger than the configured limit
    malformed,      // not msgpack, truncated, or trailing bytes after the map
    not_a_map,      // top level is not a map
    bad_version,    // "v" missing or not 1
    unknown_type,   // "t" missing or not a message of this direction
    missing_field,  // a required field is absent
    wrong_type,     // a field has the wrong msgpack type or is out of range
    too_deep,       // nesting deeper than the limit
    invalid_utf8,   // a string is not valid UTF-8
};

std::string_view to_string(DecodeErrorCode code);

struct DecodeError {
    DecodeErrorCode code;
    // e.g. "field 'wseq': expected unsigned integer". Peer-supplied text in it
    // (an unknown type's name) is cut short; log it through log_quote.
    std::string detail;
    // The message type ("hello", "assign", ...) when 't' named one of this
    // direction's messages and its fields were wrong; empty otherwise. Lets the
    // broker answer a refused hello.
    std::string_view message_type = {};
};

// A decoder's defaults are what every shipped worker runs with (limits.hpp).
struct DecodeLimits {
    std::size_t max_frame_bytes = kMaxFrameBytes;
    int max_depth = kMaxDataDepth;  // nesting of maps/arrays inside data
};

// What can still be read from a broker frame that did not decode: whether it
// is an assign (its 't'), and the job and attempt it is for when those are
// readable (a str of valid UTF-8 up to kMaxJobIdBytes, an integer >= 0). A
// worker answers such an assign with a fail instead of dropping it. Reads the
// top-level map only, up to the first damage; never throws.
struct AssignHeader {
    bool is_assign = false;
    std::optional<std::string> job;
    std::optional<int> attempt;
};
AssignHeader peek_assign(std::string_view frame);

template <class T>
using Decoded = std::variant<T, DecodeError>;

Decoded<WorkerMessage> decode_worker_message(std::string_view frame,
                                             const DecodeLimits& limits = {});
Decoded<BrokerMessage> decode_broker_message(std::string_view frame,
                                             const DecodeLimits& limits = {});

// Encoders append one msgpack frame to `out` (cleared first).
void encode(const WorkerMessage& message, std::string& out);
void encode(const BrokerMessage& message, std::string& out);
std::string encode(const WorkerMessage& message);
std::string encode(const BrokerMessage& message);

// The type tag ("hello", "chunk", ...) of a message, for logs and metric labels.
std::string_view type_name(const WorkerMessage& message);
std::string_view type_name(const BrokerMessage& message);

}  // namespace jobcast::proto
