// The codec's private header (chunk_decode.cpp). The broker's hot path:
// `chunk` and `chunks` frames decoded in one pass over the bytes, straight
// into the messages with their data as JSON text — no separate scan, no
// msgpack objects, no second walk to convert. Internal to protocol/; decode_worker_message tries it
// first.
#pragma once

#include <string_view>

#include "protocol/codec.hpp"

namespace jobcast::proto::detail {

// Decodes `frame` into `out` when it is a chunk or chunks in the shape workers
// write: every key known and present once, no unknown keys, data maps of at
// most kFastPathMapKeys keys each. The result is then exactly what the full
// decoder would give. Returns false for anything else — another message,
// another shape, or any error (`out` is then unspecified): the full decoder
// decides those, with its error details.
bool decode_chunk_frame(std::string_view frame, const DecodeLimits& limits,
                        Decoded<WorkerMessage>& out);

// The full decoder alone, for any frame: what decode_worker_message runs when
// decode_chunk_frame declines (and what tests hold the fast path to).
Decoded<WorkerMessage> decode_worker_message_in_full(std::string_view frame,
                                                     const DecodeLimits& limits);

// Data maps with more keys are left to the full decoder (its duplicate check
// sorts them; this path compares each key with the ones before it).
inline constexpr unsigned kFastPathMapKeys = 16;

}  // namespace jobcast::proto::detail
