// The rules of a Durable Stream's appends (the protocol under /v1/streams/):
// whether an append, a close or an idempotent producer's retry is taken,
// answered as a duplicate, or refused — as a function over the stream's
// record and its producer's state. No storage, no clock, no I/O: a store
// loads the records, calls decide_append inside its write, and keeps what it
// decided. The SQLite stream log follows these rules; another store (Redis)
// follows the same ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jobcast::domain {

// What an append is decided against.
struct StreamRecord {
    std::string content_type;  // normalized media type ("text/plain")
    bool closed = false;
    // The producer tuple whose append closed the stream ("id\nepoch\nseq"),
    // empty when it was closed without one: its retry is a duplicate.
    std::string closed_by;
    std::string stream_seq;          // the last Stream-Seq taken; empty: none yet
    std::int64_t ttl_seconds = -1;   // sliding expiry from accessed_at; -1: none
    std::int64_t expires_at_ms = 0;  // absolute expiry, unix ms; 0: none
    std::int64_t accessed_at_ms = 0;
};

// One idempotent producer on one stream: the epoch it holds and the last
// Producer-Seq committed in it.
struct ProducerState {
    std::uint64_t epoch = 0;
    std::uint64_t seq = 0;
};

struct ProducerClaim {
    std::string id;
    std::uint64_t epoch = 0;
    std::uint64_t seq = 0;
};

struct StreamAppendRequest {
    bool has_data = false;     // false: close-only
    bool close = false;        // Stream-Closed: true
    std::string content_type;  // normalized; checked only when has_data
    std::optional<std::string> stream_seq;
    std::optional<ProducerClaim> producer;
};

enum class AppendVerdict {
    append,                 // take it (append the data, close if asked)
    close_again,            // close-only on a closed stream, no producer: nothing to do
    duplicate,              // a producer's retry: already committed, answer success
    closed,                 // the stream is closed: 409 with Stream-Closed
    content_type_mismatch,  // 409
    stale_epoch,            // 403 with the current epoch (a fenced zombie)
    invalid_epoch_seq,      // 400: a new epoch must start at seq 0
    sequence_gap,           // 409 with the expected and received seq
    stream_seq_conflict,    // 409: Stream-Seq not after the last one
};

struct AppendDecision {
    AppendVerdict verdict = AppendVerdict::append;
    // append: the producer's state to keep (when the request had a producer).
    std::optional<ProducerState> producer_next;
    std::uint64_t producer_seq = 0;   // duplicate: the highest seq committed
    std::uint64_t current_epoch = 0;  // stale_epoch
    std::uint64_t expected_seq = 0;   // sequence_gap
    std::uint64_t received_seq = 0;   // sequence_gap
};

// The producer tuple as stored in StreamRecord::closed_by.
std::string producer_tuple(const ProducerClaim& claim);

// `producer`: the claimed producer's state on this stream, if it has any.
AppendDecision decide_append(const StreamRecord& stream,
                             const std::optional<ProducerState>& producer,
                             const StreamAppendRequest& request);

// Whether the stream has expired at `now_ms` (its TTL since the last read or
// write, or its Expires-At).
bool stream_expired(const StreamRecord& stream, std::int64_t now_ms);

// A fork of a fork of ... goes at most this deep: a stream that is not a
// fork is 0 deep, a fork one more than its source. It bounds how far a read
// follows a fork's chain of sources.
inline constexpr std::uint32_t kMaxForkDepth = 16;

// Whether a fork of a stream `source_depth` forks deep is refused.
bool fork_too_deep(std::uint32_t source_depth);

// "Application/JSON; charset=utf-8" -> "application/json".
std::string normalize_content_type(std::string_view content_type);

}  // namespace jobcast::domain
