// msgpack encode/decode of worker protocol v1. Decoding never trusts its input:
// every failure is a DecodeError value naming the problem; no exception escapes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

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
    std::string detail;  // e.g. "field 'wseq': expected unsigned integer"
};

struct DecodeLimits {
    std::size_t max_frame_bytes = 1 << 20;  // 1 MiB
    int max_depth = 32;                     // nesting of maps/arrays inside data
};

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
