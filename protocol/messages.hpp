// Worker protocol v1: the messages between workers (DEALER) and the broker
// (ROUTER). Each message is one msgpack map with "v" = 1 and "t" = type.
// Payloads that are JSON objects for clients (chunk data, job params, done
// result) are carried here as JSON text; the codec converts to and from msgpack
// maps on the wire.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/model.hpp"

namespace jobcast::proto {

inline constexpr int kVersion = 1;

// welcome.features: the broker takes `chunks` messages.
inline constexpr std::string_view kFeatureChunks = "chunks";

struct InflightJob {
    std::string job;
    int attempt = 0;
    std::uint64_t next_wseq = 1;
    bool operator==(const InflightJob&) const = default;
};

// worker -> broker
struct Hello {
    std::string worker;              // 1..128 bytes of UTF-8, no control characters
    std::vector<std::string> types;  // at most 64, each 1..128 bytes
    int capacity = 1;                // 1..1024
    std::vector<InflightJob> inflight;
    // The session the broker's last welcome gave this worker name (optional;
    // empty when it has none). A hello for a name the broker knows (a live
    // connection, or leases, e.g. after a broker restart) must carry it, or
    // with CURVE come from the same key: otherwise it is refused
    // (reject{reason:"identity"}), so no peer can take another's leases by
    // saying its name.
    std::string session = {};
    // The params of some of its types as JSON Schema (draft 7) documents, by
    // type (optional; absent: none). The broker checks submissions of the type
    // against it (protocol/params_schema.hpp); a schema it cannot take is
    // refused alone, and the type is served without one.
    std::map<std::string, std::string> schemas = {};
    bool operator==(const Hello&) const = default;
};
struct Heartbeat {
    // From a worker: the attempts it holds (as in hello), and how many assigns
    // it has received since its last hello. The broker takes back a lease
    // whose assign the worker had received (its number is at most `assigned`)
    // but which it does not list, so no job stays leased to a worker that has
    // forgotten it. Absent (the broker's heartbeats, workers that do not say):
    // nothing is reconciled.
    std::optional<std::vector<InflightJob>> inflight;
    std::uint64_t assigned = 0;
    bool operator==(const Heartbeat&) const = default;
};
struct Chunk {
    std::string job;
    int attempt = 0;
    std::uint64_t wseq = 0;
    EventKind kind = EventKind::token;  // progress | token | log
    std::string data = "{}";            // JSON object text
    UnixUs ts = 0;
    bool operator==(const Chunk&) const = default;
};
// Several consecutive chunks of one job attempt in one message (optional in
// v1: a worker sends it only to a broker whose welcome lists "chunks" in its
// features). Event i has wseq `wseq + i`; each is stored exactly as the chunk
// with that wseq would be. An event's ts is optional on the wire (absent: 0,
// the broker stamps its clock).
struct ChunkEvent {
    EventKind kind = EventKind::token;  // progress | token | log
    std::string data = "{}";            // JSON object text
    UnixUs ts = 0;
    bool operator==(const ChunkEvent&) const = default;
};
struct Chunks {
    std::string job;
    int attempt = 0;
    std::uint64_t wseq = 0;          // of the first event
    std::vector<ChunkEvent> events;  // 1..kMaxChunksEvents
    bool operator==(const Chunks&) const = default;
};
struct Checkpoint {
    std::string job;
    int attempt = 0;
    std::uint64_t wseq = 0;
    std::string bytes;
    bool operator==(const Checkpoint&) const = default;
};
struct Done {
    std::string job;
    int attempt = 0;
    std::uint64_t wseq = 0;
    std::string result = "{}";  // JSON object text
    bool operator==(const Done&) const = default;
};
struct Fail {
    std::string job;
    int attempt = 0;
    std::uint64_t wseq = 0;
    std::string error;
    bool retryable = false;
    bool operator==(const Fail&) const = default;
};

// broker -> worker
struct Welcome {
    int heartbeat_ms = 1000;
    // The worker's session secret (optional; empty from brokers that do not
    // issue one): sent back in every later hello of the same worker name.
    std::string session = {};
    // Optional protocol features this broker takes (absent: none), e.g.
    // "chunks". A worker ignores names it does not know.
    std::vector<std::string> features = {};
    bool operator==(const Welcome&) const = default;
};
struct Assign {
    std::string job;
    int attempt = 0;
    std::string type;
    std::string params = "{}";  // JSON object text
    std::string checkpoint;     // opaque bytes; empty when none
    bool operator==(const Assign&) const = default;
};
struct Ack {
    std::string job;
    int attempt = 0;
    std::uint64_t wseq = 0;  // cumulative: everything up to and including wseq
    bool operator==(const Ack&) const = default;
};
struct Cancel {
    std::string job;
    bool operator==(const Cancel&) const = default;
};
struct Reject {
    std::string job;
    std::string reason;
    // The attempt the reject is about; 0 when it is about the worker (job
    // empty) or comes from a broker that does not say. A worker ignores a
    // reject for another attempt of a job than the one it runs: it was caused
    // by frames of an attempt it has already given up.
    int attempt = 0;
    // Why, in words, for the worker's log (optional; empty when not given),
    // e.g. for reason "invalid_hello" or "identity".
    std::string detail = {};
    bool operator==(const Reject&) const = default;
};

using WorkerMessage = std::variant<Hello, Heartbeat, Chunk, Chunks, Checkpoint, Done, Fail>;
using BrokerMessage = std::variant<Welcome, Assign, Ack, Cancel, Heartbeat, Reject>;

}  // namespace jobcast::proto
