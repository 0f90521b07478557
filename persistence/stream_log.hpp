// Durable Streams created over HTTP (/v1/streams/{name}): their settings,
// messages and idempotent producers, as a store keeps them. Every write is
// committed before it returns, so whatever a reader is shown is durable; the
// rules an append follows are domain/stream_rules.hpp's. A second engine
// implements the same interface (the SQLite one is sqlite_stream_log.*).
//
// Forks (PUT with Stream-Forked-From): a fork starts as its source up to a
// fork point and goes its own way from there. The messages up to the fork
// point are the source's, shared and never copied: read() follows the chain
// of sources. A stream deleted while forks still share its messages is kept
// for them, `deleted` (gone, 410, to everyone else, its name still taken),
// until the last of them goes; then it goes too, and so on up the chain.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "domain/stream_rules.hpp"

namespace jobcast::store {

// A stream as it stands: messages numbered 1, 2, ... up to last_seq. Names
// are per owner: two owners' streams of one name are two streams.
struct StreamInfo {
    std::int64_t id = 0;  // this incarnation: a name deleted and created again gets a new one
    std::string name;
    std::string owner;
    std::string content_type;  // as given at creation (parameters kept)
    std::int64_t ttl_seconds = -1;
    std::string expires_at;  // Stream-Expires-At as given; empty: none
    std::int64_t expires_at_ms = 0;
    bool closed = false;
    std::uint64_t last_seq = 0;  // the newest message's number; 0 when empty
    std::int64_t created_at_ms = 0;
    bool deleted = false;  // deleted but kept for its forks: gone to its readers and writers
};

struct StreamMessage {
    std::uint64_t seq = 0;
    std::string data;  // bytes, or one JSON value's text in JSON mode
};

// Where a fork starts: messages 1..offset (+ the sub-offset) are `source`'s.
struct ForkFrom {
    std::string source;                   // the source's name (the same owner's stream)
    std::optional<std::uint64_t> offset;  // nullopt: the source's tail
    // Stream-Fork-Sub-Offset (0: none). JSON mode: that many more of the
    // source's messages. Otherwise: the first sub_offset bytes of the
    // source's message offset + 1, copied as the fork's first own message.
    std::uint64_t sub_offset = 0;
};

struct CreateStream {
    std::string name;
    std::string owner;
    // A fork's content_type empty: the source's; its TTL and Expires-At are
    // the source's when neither is given.
    std::string content_type;
    std::int64_t ttl_seconds = -1;
    std::string expires_at;
    std::int64_t expires_at_ms = 0;
    bool closed = false;
    std::vector<std::string> messages;  // the initial body's messages (after a fork's)
    std::int64_t now_ms = 0;
    // A fork. Created again, it matches when the same source, offset (or
    // none) and sub-offset are asked again, with the settings given.
    std::optional<ForkFrom> fork;
};

struct AppendToStream {
    std::string name;
    std::string owner;
    domain::StreamAppendRequest request;
    std::vector<std::string> messages;  // empty for a close-only request
    std::int64_t now_ms = 0;
};

enum class StreamWrite {
    created,          // CreateStream: a new stream
    exists,           // CreateStream: the same settings were created before (idempotent)
    conflict,         // CreateStream: the name is taken (other settings, or deleted and kept
                      // for its forks); a fork: its content type is not the source's
    not_found,        // no such stream (or another owner's, or expired)
    decided,          // AppendToStream: see `decision`
    removed,          // remove: done
    gone,             // AppendToStream, remove: the stream is deleted, kept for its forks
    source_missing,   // CreateStream fork: no such source
    source_gone,      // CreateStream fork: the source is deleted (kept for its forks)
    bad_fork_offset,  // CreateStream fork: the offset or sub-offset is past the source's data
    fork_too_deep,    // CreateStream fork: the source is domain::kMaxForkDepth forks deep
};

struct StreamWriteResult {
    StreamWrite status = StreamWrite::decided;
    domain::AppendDecision decision;
    std::optional<StreamInfo> stream;  // after the write, when it exists
};

// The rules of a fork both stores follow.

// Whether `op` asks again for `stream` (its content type normalized `type`;
// `fork` as it was asked, nullptr: not a fork): the settings it gives (a
// fork's omitted ones were inherited) and the same fork.
inline bool asks_again(const StreamInfo& stream, const std::string& type, const ForkFrom* fork,
                       const CreateStream& op) {
    const bool inherits = op.fork && op.ttl_seconds < 0 && op.expires_at.empty();
    const bool type_given = !op.fork || !op.content_type.empty();
    if (type_given && type != domain::normalize_content_type(op.content_type)) return false;
    if (!inherits && (stream.ttl_seconds != op.ttl_seconds || stream.expires_at != op.expires_at))
        return false;
    if (stream.closed != op.closed) return false;
    if (!op.fork || !fork) return !op.fork && !fork;
    return fork->source == op.fork->source && fork->offset == op.fork->offset &&
           fork->sub_offset == op.fork->sub_offset;
}

// Where a fork starts on its source: messages 1..at are the source's, then
// `partial` (a binary sub-offset's slice of the next one) is the fork's first.
struct ForkPoint {
    std::uint64_t at = 0;
    std::optional<std::string> partial;
};

// Resolves `op`'s fork on `source` (its content type normalized
// `source_type`, `last` its tail as readers see it): the settings a fork
// inherits, then the fork point. `next(seq)` reads the source's messages
// after `seq`, at least one when there is one. Answers created, conflict (a
// content type other than the source's) or bad_fork_offset.
template <class ReadNext>
StreamWrite resolve_fork_point(CreateStream& op, const StreamInfo& source,
                               const std::string& source_type, std::uint64_t last, ReadNext&& next,
                               ForkPoint& point) {
    if (op.content_type.empty()) {
        op.content_type = source.content_type;
    } else if (domain::normalize_content_type(op.content_type) != source_type) {
        return StreamWrite::conflict;
    }
    if (op.ttl_seconds < 0 && op.expires_at.empty()) {
        op.ttl_seconds = source.ttl_seconds;
        op.expires_at = source.expires_at;
        op.expires_at_ms = source.expires_at_ms;
    }
    const ForkFrom& asked = *op.fork;
    std::uint64_t at = asked.offset.value_or(last);
    if (at > last) return StreamWrite::bad_fork_offset;
    if (asked.sub_offset > 0) {
        if (source_type == "application/json") {
            // Messages are JSON values, one seq each: the sub-offset counts them.
            if (asked.sub_offset > last - at) return StreamWrite::bad_fork_offset;
            at += asked.sub_offset;
        } else {
            std::vector<StreamMessage> after = next(at);
            if (after.empty() || after.front().seq != at + 1 ||
                after.front().data.size() < asked.sub_offset)
                return StreamWrite::bad_fork_offset;
            point.partial = after.front().data.substr(0, asked.sub_offset);
        }
    }
    point.at = at;
    return StreamWrite::created;
}

class StreamLog {
  public:
    virtual ~StreamLog() = default;
    // Blocking, thread-safe; each returns once its outcome is committed.
    virtual StreamWriteResult create(CreateStream op) = 0;
    virtual StreamWriteResult append(AppendToStream op) = 0;
    // removed, not_found (or expired at `now_ms`) or gone. A stream that
    // forks still read is kept for them (deleted); one that goes frees its
    // deleted sources that no other fork holds.
    virtual StreamWrite remove(const std::string& name, const std::string& owner,
                               std::int64_t now_ms) = 0;
    // Reads and writes keep a stream with a TTL alive (HEAD does not):
    // `touch` records a read of stream `id` at `now_ms`.
    virtual void touch(std::int64_t id, std::int64_t now_ms) = 0;

    // The stream if it exists, is `owner`'s and has not expired at `now_ms`;
    // a deleted one kept for its forks too (`deleted`).
    virtual std::optional<StreamInfo> get(const std::string& name, const std::string& owner,
                                          std::int64_t now_ms) = 0;
    // Messages of stream `id` with seq > after, in order, until their data
    // reaches `max_bytes` (at least one when there is one). A fork's
    // messages up to its fork point are its source's.
    virtual std::vector<StreamMessage> read(std::int64_t id, std::uint64_t after,
                                            std::size_t max_bytes) = 0;
    // Deletes the streams expired at `now_ms` as remove() does; how many.
    virtual std::size_t expire(std::int64_t now_ms) = 0;

    // Changes committed by other processes on a store they share (brokers on
    // the Redis store); a store only this process writes has none, and the
    // defaults do nothing. While stream `id` is watched, `listener(id)` runs
    // after each append, close or delete of it made elsewhere, and at once
    // when the stream moved past `after` (the seq its reader holds) before
    // the watch could see it. Each watch is undone by one unwatch. The
    // listener runs on the store's thread and must not block; listen(nullptr)
    // returns once no call of the old listener runs.
    using ChangeListener = std::function<void(std::int64_t id)>;
    virtual void listen(ChangeListener listener) {}
    virtual void watch(std::int64_t id, std::uint64_t after) {}
    virtual void unwatch(std::int64_t id) {}
};

}  // namespace jobcast::store
