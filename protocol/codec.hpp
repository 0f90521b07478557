// msgpack encode/decode of worker protocol v1. Decoding never trusts its input:
// every failure is a DecodeError value naming the problem; no exception escapes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/decode_error.hpp"
#include "protocol/limits.hpp"
#include "protocol/messages.hpp"

namespace jobcast::proto {

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

// Chunk events encoded once and framed later, by a worker that batches. An
// event is its kind, data and ts as encode_chunk_event writes them (`out`
// cleared first; throws std::invalid_argument as encode does). frame_chunk
// makes it one `chunk` message, the same bytes as encode(Chunk{...}).
// begin_chunks starts a `chunks` message of `count` events (1..
// kMaxChunksEvents) whose first has `wseq`, then append_chunks_event adds
// each, in wseq order.
void encode_chunk_event(EventKind kind, std::string_view data_json, UnixUs ts, std::string& out);
void frame_chunk(std::string_view job, int attempt, std::uint64_t wseq, std::string_view event,
                 std::string& out);
void begin_chunks(std::string_view job, int attempt, std::uint64_t wseq, std::size_t count,
                  std::string& out);
void append_chunks_event(std::string_view event, std::string& out);

// The type tag ("hello", "chunk", ...) of a message, for logs and metric labels.
std::string_view type_name(const WorkerMessage& message);
std::string_view type_name(const BrokerMessage& message);

}  // namespace jobcast::proto
