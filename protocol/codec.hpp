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

// Batching a worker's chunks into one `chunks` without encoding them again.
// chunk_event: the event of a chunk frame made by encode(Chunk{...}), its
// kind, data and ts fields (a view into `chunk_frame`; throws
// std::invalid_argument for a frame of another layout). begin_chunks starts a
// `chunks` message of `count` events (1..kMaxChunksEvents) whose first has
// `wseq` in `out` (cleared first); append_chunks_event then adds each, in wseq
// order. The result equals encode(Chunks{...}) of the same events.
std::string_view chunk_event(std::string_view chunk_frame);
void begin_chunks(std::string_view job, int attempt, std::uint64_t wseq, std::size_t count,
                  std::string& out);
void append_chunks_event(std::string_view event, std::string& out);

// The type tag ("hello", "chunk", ...) of a message, for logs and metric labels.
std::string_view type_name(const WorkerMessage& message);
std::string_view type_name(const BrokerMessage& message);

}  // namespace jobcast::proto
