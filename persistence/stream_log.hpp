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
};

struct StreamWriteResult {
    StreamWrite status = StreamWrite::decided;
    domain::AppendDecision decision;
    std::optional<StreamInfo> stream;  // after the write, when it exists
};

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
    // Whether create() takes forks (CreateStream::fork); without, a fork is
    // answered 501.
    virtual bool forks() const { return true; }
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
