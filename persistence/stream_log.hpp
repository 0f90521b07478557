// Durable Streams created over HTTP (/v1/streams/{name}): their settings,
// messages and idempotent producers, as a store keeps them. Every write is
// committed before it returns, so whatever a reader is shown is durable; the
// rules an append follows are domain/stream_rules.hpp's. A second engine
// implements the same interface (the SQLite one is sqlite_stream_log.*).
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
};

struct StreamMessage {
    std::uint64_t seq = 0;
    std::string data;  // bytes, or one JSON value's text in JSON mode
};

struct CreateStream {
    std::string name;
    std::string owner;
    std::string content_type;
    std::int64_t ttl_seconds = -1;
    std::string expires_at;
    std::int64_t expires_at_ms = 0;
    bool closed = false;
    std::vector<std::string> messages;  // the initial body's messages
    std::int64_t now_ms = 0;
};

struct AppendToStream {
    std::string name;
    std::string owner;
    domain::StreamAppendRequest request;
    std::vector<std::string> messages;  // empty for a close-only request
    std::int64_t now_ms = 0;
};

enum class StreamWrite {
    created,    // CreateStream: a new stream
    exists,     // CreateStream: the same settings were created before (idempotent)
    conflict,   // CreateStream: the name holds a stream with other settings
    not_found,  // no such stream (or another owner's, or expired)
    decided,    // AppendToStream: see `decision`
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
    // False when there is no such stream of `owner`.
    virtual bool remove(const std::string& name, const std::string& owner) = 0;
    // Reads and writes keep a stream with a TTL alive (HEAD does not):
    // `touch` records a read of stream `id` at `now_ms`.
    virtual void touch(std::int64_t id, std::int64_t now_ms) = 0;

    // The stream if it exists, is `owner`'s and has not expired at `now_ms`.
    virtual std::optional<StreamInfo> get(const std::string& name, const std::string& owner,
                                          std::int64_t now_ms) = 0;
    // Messages of stream `id` with seq > after, in order, until their data
    // reaches `max_bytes` (at least one when there is one).
    virtual std::vector<StreamMessage> read(std::int64_t id, std::uint64_t after,
                                            std::size_t max_bytes) = 0;
    // Deletes the streams expired at `now_ms`; how many.
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
