#include "protocol/codec.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <msgpack/unpack.hpp>
#include <msgpack/zone.hpp>
#include <new>
#include <stdexcept>

#include "common/time_bounds.hpp"
#include "protocol/codec_impl.hpp"
#include "protocol/frame_scan.hpp"
#include "protocol/msgpack_json.hpp"
#include "protocol/utf8.hpp"

// Wire rules beyond the header (DESIGN.md, "Worker protocol v1"):
// - Keys are field names as in messages.hpp; unknown keys are ignored so a newer
//   peer can add fields. When a key repeats, the last value wins.
// - Every field is required except hello.inflight (absent = none in flight),
//   heartbeat.inflight with heartbeat.assigned (both absent = not reported),
//   assign.checkpoint (absent = no checkpoint), reject.attempt (absent = 0,
//   not about one attempt) and hello.schemas (absent = none).
// - Integers must be msgpack integers (no floats, no strings); ids and texts are
//   str (UTF-8); checkpoint bytes are bin; data/params/result are maps whose
//   JSON form the structs carry.
// - Inside data/params/result: keys are unique strings; bin, ext, NaN and
//   infinities have no JSON form and are refused as wrong_type (a worker sends
//   bytes base64-encoded in a string, or as a checkpoint).
// - chunk.ts is unix microseconds; one outside (0, year 9999] decodes as 0
//   (none: the broker stamps its own clock).

namespace jobcast::proto {

namespace {

using detail::Packer;
using detail::StringSink;

// ---------------------------------------------------------------------------
// Field names

enum class Field : std::uint8_t {
    v,
    t,
    worker,
    types,
    capacity,
    inflight,
    job,
    attempt,
    wseq,
    next_wseq,
    kind,
    data,
    ts,
    bytes,
    result,
    error,
    retryable,
    heartbeat_ms,
    type,
    params,
    checkpoint,
    reason,
    assigned,
    session,
    detail,
    schemas,
    events,
    features,
    count_,  // not a field: the number of fields
};
constexpr std::size_t kFieldCount = static_cast<std::size_t>(Field::count_);

constexpr std::array<std::string_view, kFieldCount> kFieldNames = {
    "v",       "t",        "worker",    "types",        "capacity", "inflight", "job",
    "attempt", "wseq",     "next_wseq", "kind",         "data",     "ts",       "bytes",
    "result",  "error",    "retryable", "heartbeat_ms", "type",     "params",   "checkpoint",
    "reason",  "assigned", "session",   "detail",       "schemas",  "events",   "features",
};

std::string_view name(Field field) {
    return kFieldNames[static_cast<std::size_t>(field)];
}

// Field of a key, or count_ for a key this version does not know.
Field field_of(std::string_view key) {
    // Few names share a length, so switching on it leaves one or two compares.
    switch (key.size()) {
        case 1:
            if (key == "v") return Field::v;
            if (key == "t") return Field::t;
            break;
        case 2:
            if (key == "ts") return Field::ts;
            break;
        case 3:
            if (key == "job") return Field::job;
            break;
        case 4:
            if (key == "wseq") return Field::wseq;
            if (key == "kind") return Field::kind;
            if (key == "data") return Field::data;
            if (key == "type") return Field::type;
            break;
        case 5:
            if (key == "types") return Field::types;
            if (key == "bytes") return Field::bytes;
            if (key == "error") return Field::error;
            break;
        case 6:
            if (key == "worker") return Field::worker;
            if (key == "result") return Field::result;
            if (key == "params") return Field::params;
            if (key == "reason") return Field::reason;
            if (key == "detail") return Field::detail;
            if (key == "events") return Field::events;
            break;
        case 7:
            if (key == "attempt") return Field::attempt;
            if (key == "session") return Field::session;
            if (key == "schemas") return Field::schemas;
            break;
        case 8:
            if (key == "capacity") return Field::capacity;
            if (key == "inflight") return Field::inflight;
            if (key == "assigned") return Field::assigned;
            if (key == "features") return Field::features;
            break;
        case 9:
            if (key == "next_wseq") return Field::next_wseq;
            if (key == "retryable") return Field::retryable;
            break;
        case 10:
            if (key == "checkpoint") return Field::checkpoint;
            break;
        case 12:
            if (key == "heartbeat_ms") return Field::heartbeat_ms;
            break;
    }
    return Field::count_;
}

std::string_view str_view(const msgpack::object& o) {
    return std::string_view(o.via.str.ptr, o.via.str.size);
}

// The known fields of one msgpack map, looked up once.
class FieldMap {
  public:
    explicit FieldMap(const msgpack::object& map) {
        const msgpack::object_kv* kv = map.via.map.ptr;
        for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
            if (kv[i].key.type != msgpack::type::STR) {
                non_string_key_ = true;
                continue;
            }
            const Field field = field_of(str_view(kv[i].key));
            if (field != Field::count_) slots_[static_cast<std::size_t>(field)] = &kv[i].val;
        }
    }
    const msgpack::object* get(Field field) const {
        return slots_[static_cast<std::size_t>(field)];
    }
    bool non_string_key() const { return non_string_key_; }

  private:
    std::array<const msgpack::object*, kFieldCount> slots_{};
    bool non_string_key_ = false;
};

// ---------------------------------------------------------------------------
// Reading fields. Each reader returns false after recording the first error.

class Reader {
  public:
    explicit Reader(const DecodeLimits& limits) : limits_(limits) {}

    DecodeError& error() { return error_; }

    bool fail(DecodeErrorCode code, std::string detail) {
        error_.code = code;
        error_.detail = std::move(detail);
        return false;
    }
    bool missing(Field field) {
        return fail(DecodeErrorCode::missing_field,
                    "missing field '" + std::string(name(field)) + "'");
    }
    bool wrong(Field field, std::string_view expected) {
        return fail(DecodeErrorCode::wrong_type,
                    "field '" + std::string(name(field)) + "': expected " + std::string(expected));
    }

    const msgpack::object* require(const FieldMap& fields, Field field) {
        const msgpack::object* o = fields.get(field);
        if (!o) missing(field);
        return o;
    }

    bool string(const FieldMap& fields, Field field, std::string& out) {
        const msgpack::object* o = require(fields, field);
        if (!o) return false;
        return string_value(*o, field, out);
    }
    bool string_value(const msgpack::object& o, Field field, std::string& out) {
        if (o.type != msgpack::type::STR) return wrong(field, "string");
        // UTF-8 was checked by scan_frame for every str in the frame.
        out.assign(o.via.str.ptr, o.via.str.size);
        return true;
    }

    // An optional string field of at most `max_bytes` bytes (absent: empty).
    bool optional_string(const FieldMap& fields, Field field, std::size_t max_bytes,
                         std::string& out) {
        out.clear();
        const msgpack::object* o = fields.get(field);
        if (!o) return true;
        if (o->type != msgpack::type::STR) return wrong(field, "string");
        if (o->via.str.size > max_bytes) {
            return fail(DecodeErrorCode::wrong_type, "field '" + std::string(name(field)) +
                                                         "': longer than " +
                                                         std::to_string(max_bytes) + " bytes");
        }
        out.assign(o->via.str.ptr, o->via.str.size);
        return true;
    }

    // A name that is logged and shown: 1..max_bytes bytes, no control characters.
    bool printable_name(const FieldMap& fields, Field field, std::size_t max_bytes,
                        std::string& out) {
        if (!string(fields, field, out)) return false;
        if (is_printable_name(out, max_bytes)) return true;
        return fail(DecodeErrorCode::wrong_type,
                    "field '" + std::string(name(field)) + "': expected 1 to " +
                        std::to_string(max_bytes) + " bytes without control characters");
    }

    // hello.types: at most kMaxHelloTypes names, each printable.
    bool type_list(const FieldMap& fields, std::vector<std::string>& out) {
        const msgpack::object* o = fields.get(Field::types);
        if (o && o->type == msgpack::type::ARRAY && o->via.array.size > kMaxHelloTypes) {
            return fail(
                DecodeErrorCode::wrong_type,
                "field 'types': more than " + std::to_string(kMaxHelloTypes) + " job types");
        }
        if (!string_array(fields, Field::types, out)) return false;
        for (const std::string& type : out) {
            if (!is_printable_name(type, kMaxTypeBytes)) {
                return fail(DecodeErrorCode::wrong_type, "field 'types': each must be 1 to " +
                                                             std::to_string(kMaxTypeBytes) +
                                                             " bytes without control characters");
            }
        }
        return true;
    }

    // hello.schemas: a map of job type -> JSON Schema text (optional). The
    // texts are compiled by the broker, which refuses a bad one alone.
    bool schema_map(const FieldMap& fields, std::map<std::string, std::string>& out) {
        out.clear();
        const msgpack::object* o = fields.get(Field::schemas);
        if (!o) return true;
        if (o->type != msgpack::type::MAP || o->via.map.size > kMaxHelloTypes) {
            return fail(DecodeErrorCode::wrong_type, "field 'schemas': expected a map of at most " +
                                                         std::to_string(kMaxHelloTypes) +
                                                         " job types to JSON Schema strings");
        }
        for (std::uint32_t i = 0; i < o->via.map.size; ++i) {
            const msgpack::object_kv& kv = o->via.map.ptr[i];
            if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::STR ||
                !is_printable_name(str_view(kv.key), kMaxTypeBytes)) {
                return fail(DecodeErrorCode::wrong_type,
                            "field 'schemas': expected job type names to JSON Schema strings");
            }
            out.insert_or_assign(std::string(str_view(kv.key)), std::string(str_view(kv.val)));
        }
        return true;
    }

    bool string_array(const FieldMap& fields, Field field, std::vector<std::string>& out) {
        const msgpack::object* o = require(fields, field);
        if (!o) return false;
        if (o->type != msgpack::type::ARRAY) return wrong(field, "array of strings");
        out.clear();
        out.reserve(o->via.array.size);
        for (std::uint32_t i = 0; i < o->via.array.size; ++i) {
            const msgpack::object& item = o->via.array.ptr[i];
            if (item.type != msgpack::type::STR) return wrong(field, "array of strings");
            out.emplace_back(item.via.str.ptr, item.via.str.size);
        }
        return true;
    }

    // An integer in [min, max].
    bool integer(const msgpack::object& o, Field field, std::int64_t min, std::int64_t max,
                 std::int64_t& out) {
        std::int64_t value;
        if (o.type == msgpack::type::POSITIVE_INTEGER) {
            if (o.via.u64 > static_cast<std::uint64_t>(INT64_MAX))
                return out_of_range(field, min, max);
            value = static_cast<std::int64_t>(o.via.u64);
        } else if (o.type == msgpack::type::NEGATIVE_INTEGER) {
            value = o.via.i64;
        } else {
            return wrong(field, "integer");
        }
        if (value < min || value > max) return out_of_range(field, min, max);
        out = value;
        return true;
    }
    bool out_of_range(Field field, std::int64_t min, std::int64_t max) {
        return fail(DecodeErrorCode::wrong_type,
                    "field '" + std::string(name(field)) + "': expected integer in [" +
                        std::to_string(min) + ", " + std::to_string(max) + "]");
    }

    bool int_field(const FieldMap& fields, Field field, int min, int& out) {
        const msgpack::object* o = require(fields, field);
        if (!o) return false;
        std::int64_t value = 0;
        if (!integer(*o, field, min, INT_MAX, value)) return false;
        out = static_cast<int>(value);
        return true;
    }
    bool attempt(const FieldMap& fields, int& out) {
        return int_field(fields, Field::attempt, 0, out);
    }
    bool optional_attempt(const FieldMap& fields, int& out) {
        out = 0;
        return !fields.get(Field::attempt) || attempt(fields, out);
    }

    bool int64_field(const FieldMap& fields, Field field, std::int64_t& out) {
        const msgpack::object* o = require(fields, field);
        if (!o) return false;
        return integer(*o, field, INT64_MIN, INT64_MAX, out);
    }

    bool uint64_value(const msgpack::object& o, Field field, std::uint64_t& out) {
        if (o.type != msgpack::type::POSITIVE_INTEGER) return wrong(field, "unsigned integer");
        out = o.via.u64;
        return true;
    }
    bool uint64_field(const FieldMap& fields, Field field, std::uint64_t& out) {
        const msgpack::object* o = require(fields, field);
        if (!o) return false;
        return uint64_value(*o, field, out);
    }

    bool boolean(const FieldMap& fields, Field field, bool& out) {
        const msgpack::object* o = require(fields, field);
        if (!o) return false;
        if (o->type != msgpack::type::BOOLEAN) return wrong(field, "boolean");
        out = o->via.boolean;
        return true;
    }

    bool bin(const FieldMap& fields, Field field, bool required, std::string& out) {
        const msgpack::object* o = fields.get(field);
        if (!o) {
            out.clear();
            return !required || missing(field);
        }
        if (o->type != msgpack::type::BIN) return wrong(field, "bin");
        out.assign(o->via.bin.ptr, o->via.bin.size);
        return true;
    }

    bool json_map(const FieldMap& fields, Field field, std::string& out) {
        const msgpack::object* o = require(fields, field);
        if (!o) return false;
        if (o->type != msgpack::type::MAP) return wrong(field, "map");
        return detail::map_to_json(*o, name(field), limits_.max_depth, out, error_);
    }

    bool chunk_kind(const FieldMap& fields, EventKind& out) {
        const msgpack::object* o = require(fields, Field::kind);
        if (!o) return false;
        // Workers may only stream these; state, result and error events are the
        // broker's to write.
        if (o->type == msgpack::type::STR) {
            const std::string_view text = str_view(*o);
            if (text == "progress") return out = EventKind::progress, true;
            if (text == "token") return out = EventKind::token, true;
            if (text == "log") return out = EventKind::log, true;
        }
        return wrong(Field::kind, "\"progress\", \"token\" or \"log\"");
    }

    // welcome.features: optional, at most kMaxFeatures names of at most
    // kMaxFeatureBytes each.
    bool features(const FieldMap& fields, std::vector<std::string>& out) {
        out.clear();
        const msgpack::object* o = fields.get(Field::features);
        if (!o) return true;
        if (o->type == msgpack::type::ARRAY && o->via.array.size > kMaxFeatures) {
            return fail(DecodeErrorCode::wrong_type,
                        "field 'features': more than " + std::to_string(kMaxFeatures) + " names");
        }
        if (!string_array(fields, Field::features, out)) return false;
        for (const std::string& feature : out) {
            if (feature.size() > kMaxFeatureBytes) {
                return fail(DecodeErrorCode::wrong_type,
                            "field 'features': a name is longer than " +
                                std::to_string(kMaxFeatureBytes) + " bytes");
            }
        }
        return true;
    }

    // chunks.events: 1..kMaxChunksEvents maps {kind, data, ts?}, each with no
    // job, attempt or wseq of its own (one message is one attempt's run of
    // consecutive wseqs).
    bool chunk_events(const FieldMap& fields, std::uint64_t first_wseq,
                      std::vector<ChunkEvent>& out) {
        const msgpack::object* o = require(fields, Field::events);
        if (!o) return false;
        if (o->type != msgpack::type::ARRAY) return wrong(Field::events, "array of maps");
        const std::uint32_t count = o->via.array.size;
        if (count == 0) return fail(DecodeErrorCode::wrong_type, "field 'events': empty");
        if (count > kMaxChunksEvents) {
            return fail(
                DecodeErrorCode::wrong_type,
                "field 'events': more than " + std::to_string(kMaxChunksEvents) + " events");
        }
        if (first_wseq > UINT64_MAX - (count - 1)) {
            return fail(DecodeErrorCode::wrong_type,
                        "field 'wseq': the last event's wseq would overflow");
        }
        out.clear();
        out.resize(count);
        for (std::uint32_t i = 0; i < count; ++i) {
            const msgpack::object& item = o->via.array.ptr[i];
            if (item.type != msgpack::type::MAP) return wrong(Field::events, "array of maps");
            const FieldMap event(item);
            if (event.non_string_key()) return wrong(Field::events, "maps with string keys");
            if (event.get(Field::job) || event.get(Field::attempt) || event.get(Field::wseq)) {
                return fail(DecodeErrorCode::wrong_type,
                            "field 'events': an event names its own job, attempt or wseq");
            }
            ChunkEvent& e = out[i];
            if (!chunk_kind(event, e.kind) || !json_map(event, Field::data, e.data) ||
                !optional_ts(event, e.ts)) {
                error_.detail.insert(0, "event " + std::to_string(i) + ": ");
                return false;
            }
        }
        return true;
    }
    // An optional chunk ts (absent: 0); one outside (0, year 9999] reads as 0.
    bool optional_ts(const FieldMap& fields, UnixUs& out) {
        out = 0;
        if (fields.get(Field::ts) && !int64_field(fields, Field::ts, out)) return false;
        if (!time_bounds::plausible_unix_micros(out)) out = 0;
        return true;
    }

    bool inflight(const FieldMap& fields, std::vector<InflightJob>& out) {
        out.clear();
        const msgpack::object* o = fields.get(Field::inflight);
        if (!o) return true;  // optional: a fresh worker has nothing in flight
        if (o->type != msgpack::type::ARRAY) return wrong(Field::inflight, "array of maps");
        out.reserve(o->via.array.size);
        for (std::uint32_t i = 0; i < o->via.array.size; ++i) {
            const msgpack::object& item = o->via.array.ptr[i];
            if (item.type != msgpack::type::MAP) return wrong(Field::inflight, "array of maps");
            const FieldMap entry(item);
            if (entry.non_string_key()) return wrong(Field::inflight, "maps with string keys");
            InflightJob& job = out.emplace_back();
            if (!string(entry, Field::job, job.job) || !attempt(entry, job.attempt) ||
                !uint64_field(entry, Field::next_wseq, job.next_wseq)) {
                error_.detail.insert(0, "inflight entry: ");
                return false;
            }
        }
        return true;
    }

  private:
    const DecodeLimits& limits_;
    DecodeError error_;
};

// ---------------------------------------------------------------------------
// Message bodies

bool read(const FieldMap& f, Reader& r, Hello& m) {
    if (!r.printable_name(f, Field::worker, kMaxWorkerNameBytes, m.worker) ||
        !r.type_list(f, m.types) || !r.int_field(f, Field::capacity, 1, m.capacity)) {
        return false;
    }
    if (m.capacity > kMaxCapacity) {
        return r.fail(DecodeErrorCode::wrong_type, "field 'capacity': expected integer in [1, " +
                                                       std::to_string(kMaxCapacity) + "]");
    }
    return r.inflight(f, m.inflight) &&
           r.optional_string(f, Field::session, kMaxSessionBytes, m.session) &&
           r.schema_map(f, m.schemas);
}
bool read(const FieldMap& f, Reader& r, Heartbeat& m) {
    m.inflight.reset();
    m.assigned = 0;
    if (!f.get(Field::inflight)) return true;
    return r.inflight(f, m.inflight.emplace()) && r.uint64_field(f, Field::assigned, m.assigned);
}
bool read(const FieldMap& f, Reader& r, Chunk& m) {
    if (!(r.string(f, Field::job, m.job) && r.attempt(f, m.attempt) &&
          r.uint64_field(f, Field::wseq, m.wseq) && r.chunk_kind(f, m.kind) &&
          r.json_map(f, Field::data, m.data) && r.int64_field(f, Field::ts, m.ts))) {
        return false;
    }
    // A timestamp before 1970 or after year 9999 (a worker's bug, or a hostile
    // peer) is treated as absent: 0, which the broker replaces with its clock.
    if (!time_bounds::plausible_unix_micros(m.ts)) m.ts = 0;
    return true;
}
bool read(const FieldMap& f, Reader& r, Chunks& m) {
    return r.string(f, Field::job, m.job) && r.attempt(f, m.attempt) &&
           r.uint64_field(f, Field::wseq, m.wseq) && r.chunk_events(f, m.wseq, m.events);
}
bool read(const FieldMap& f, Reader& r, Checkpoint& m) {
    return r.string(f, Field::job, m.job) && r.attempt(f, m.attempt) &&
           r.uint64_field(f, Field::wseq, m.wseq) && r.bin(f, Field::bytes, true, m.bytes);
}
bool read(const FieldMap& f, Reader& r, Done& m) {
    return r.string(f, Field::job, m.job) && r.attempt(f, m.attempt) &&
           r.uint64_field(f, Field::wseq, m.wseq) && r.json_map(f, Field::result, m.result);
}
bool read(const FieldMap& f, Reader& r, Fail& m) {
    return r.string(f, Field::job, m.job) && r.attempt(f, m.attempt) &&
           r.uint64_field(f, Field::wseq, m.wseq) && r.string(f, Field::error, m.error) &&
           r.boolean(f, Field::retryable, m.retryable);
}
bool read(const FieldMap& f, Reader& r, Welcome& m) {
    return r.int_field(f, Field::heartbeat_ms, 1, m.heartbeat_ms) &&
           r.optional_string(f, Field::session, kMaxSessionBytes, m.session) &&
           r.features(f, m.features);
}
bool read(const FieldMap& f, Reader& r, Assign& m) {
    return r.string(f, Field::job, m.job) && r.attempt(f, m.attempt) &&
           r.string(f, Field::type, m.type) && r.json_map(f, Field::params, m.params) &&
           r.bin(f, Field::checkpoint, false, m.checkpoint);
}
bool read(const FieldMap& f, Reader& r, Ack& m) {
    return r.string(f, Field::job, m.job) && r.attempt(f, m.attempt) &&
           r.uint64_field(f, Field::wseq, m.wseq);
}
bool read(const FieldMap& f, Reader& r, Cancel& m) {
    return r.string(f, Field::job, m.job);
}
bool read(const FieldMap& f, Reader& r, Reject& m) {
    return r.string(f, Field::job, m.job) && r.string(f, Field::reason, m.reason) &&
           r.optional_attempt(f, m.attempt) &&
           r.optional_string(f, Field::detail, kMaxFrameBytes, m.detail);
}

// ---------------------------------------------------------------------------
// Decoding a frame

template <class Message>
Decoded<Message> failure(DecodeErrorCode code, std::string detail) {
    return Decoded<Message>(std::in_place_index<1>, DecodeError{code, std::move(detail)});
}

// The type tag of each message body (defined with the encoders below).
std::string_view tag(const Hello&);
std::string_view tag(const Heartbeat&);
std::string_view tag(const Chunk&);
std::string_view tag(const Chunks&);
std::string_view tag(const Checkpoint&);
std::string_view tag(const Done&);
std::string_view tag(const Fail&);
std::string_view tag(const Welcome&);
std::string_view tag(const Assign&);
std::string_view tag(const Ack&);
std::string_view tag(const Cancel&);
std::string_view tag(const Reject&);

// A peer's unknown message type, for an error detail: at most this many bytes.
constexpr std::size_t kEchoedTypeBytes = 32;

// `text` cut to at most `max` bytes on a character boundary (text is valid
// UTF-8: scan_frame checked every str), with "..." when cut.
std::string shortened(std::string_view text, std::size_t max) {
    if (text.size() <= max) return std::string(text);
    std::size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80)
        --end;
    return std::string(text.substr(0, end)) + "...";
}

template <class Message, class Body>
Decoded<Message> read_body(const FieldMap& fields, Reader& reader) {
    Body body;
    if (!read(fields, reader, body)) {
        reader.error().message_type = tag(body);
        return Decoded<Message>(std::in_place_index<1>, std::move(reader.error()));
    }
    return Decoded<Message>(std::in_place_index<0>, std::in_place_type<Body>, std::move(body));
}

template <class Message>
Decoded<Message> read_message(std::string_view type, const FieldMap& fields, Reader& reader);

template <>
Decoded<WorkerMessage> read_message<WorkerMessage>(std::string_view type, const FieldMap& fields,
                                                   Reader& reader) {
    using M = WorkerMessage;
    if (type == "chunk") return read_body<M, Chunk>(fields, reader);  // by far the most common
    if (type == "chunks") return read_body<M, Chunks>(fields, reader);
    if (type == "heartbeat") return read_body<M, Heartbeat>(fields, reader);
    if (type == "checkpoint") return read_body<M, Checkpoint>(fields, reader);
    if (type == "done") return read_body<M, Done>(fields, reader);
    if (type == "fail") return read_body<M, Fail>(fields, reader);
    if (type == "hello") return read_body<M, Hello>(fields, reader);
    return failure<M>(DecodeErrorCode::unknown_type,
                      "unknown worker message type '" + shortened(type, kEchoedTypeBytes) + "'");
}

template <>
Decoded<BrokerMessage> read_message<BrokerMessage>(std::string_view type, const FieldMap& fields,
                                                   Reader& reader) {
    using M = BrokerMessage;
    if (type == "ack") return read_body<M, Ack>(fields, reader);
    if (type == "heartbeat") return read_body<M, Heartbeat>(fields, reader);
    if (type == "assign") return read_body<M, Assign>(fields, reader);
    if (type == "cancel") return read_body<M, Cancel>(fields, reader);
    if (type == "reject") return read_body<M, Reject>(fields, reader);
    if (type == "welcome") return read_body<M, Welcome>(fields, reader);
    return failure<M>(DecodeErrorCode::unknown_type,
                      "unknown broker message type '" + shortened(type, kEchoedTypeBytes) + "'");
}

// msgpack-c may point str and bin objects into the frame instead of copying them
// into the zone: the frame outlives the objects, which die with the decode call.
bool reference_frame(msgpack::type::object_type, std::size_t, void*) {
    return true;
}

// One zone per thread, emptied after each frame: a zone allocates 8 KiB when it
// is created, and decoding runs for every chunk.
class ZoneLease {
  public:
    ZoneLease() : zone_(zone()) {}
    ~ZoneLease() { zone_.clear(); }
    msgpack::zone& get() { return zone_; }

  private:
    static msgpack::zone& zone() {
        thread_local msgpack::zone z;
        return z;
    }
    msgpack::zone& zone_;
};

template <class Message>
Decoded<Message> decode_frame(std::string_view frame, const DecodeLimits& limits) {
    // Everything is inside the try: not even std::bad_alloc may leave a decoder.
    try {
        if (frame.size() > limits.max_frame_bytes) {
            return failure<Message>(DecodeErrorCode::oversize,
                                    "frame of " + std::to_string(frame.size()) +
                                        " bytes exceeds the limit of " +
                                        std::to_string(limits.max_frame_bytes));
        }
        // The top-level map is depth 1 and data/params/result maps depth 2, so data
        // nested max_depth deep is max_depth + 1 in the frame; in a chunks
        // event (map > array > map > data) it is max_depth + 3, and the JSON
        // conversion holds every data map to max_depth itself. hello's inflight
        // entries (map > array > map) need 3 whatever the data limit.
        const std::size_t frame_depth = static_cast<std::size_t>(std::max(limits.max_depth, 2)) + 3;

        const detail::ScanResult scan = detail::scan_frame(frame, frame_depth);
        switch (scan.error) {
            case detail::ScanError::none:
                break;
            case detail::ScanError::malformed:
                return failure<Message>(DecodeErrorCode::malformed, std::string(scan.detail));
            case detail::ScanError::too_deep:
                return failure<Message>(DecodeErrorCode::too_deep, std::string(scan.detail));
            case detail::ScanError::invalid_utf8:
                return failure<Message>(DecodeErrorCode::invalid_utf8, std::string(scan.detail));
        }

        ZoneLease zone;
        // scan_frame already enforced these; the limits are msgpack-c's own guard
        // should the two ever disagree. No container holds more items than the
        // frame has bytes.
        const std::size_t n = frame.size();
        const msgpack::unpack_limit limit(n, n / 2, n, n, n, frame_depth);
        std::size_t offset = 0;
        bool referenced = false;
        const msgpack::object root = msgpack::unpack(zone.get(), frame.data(), n, offset,
                                                     referenced, reference_frame, nullptr, limit);
        if (offset != n) return failure<Message>(DecodeErrorCode::malformed, "trailing bytes");
        if (root.type != msgpack::type::MAP) {
            return failure<Message>(DecodeErrorCode::not_a_map, "message is not a map");
        }

        const FieldMap fields(root);
        const msgpack::object* version = fields.get(Field::v);
        if (!version) return failure<Message>(DecodeErrorCode::bad_version, "missing 'v'");
        if (version->type != msgpack::type::POSITIVE_INTEGER ||
            version->via.u64 != static_cast<std::uint64_t>(kVersion)) {
            return failure<Message>(DecodeErrorCode::bad_version, "'v' is not 1");
        }
        const msgpack::object* type = fields.get(Field::t);
        if (!type) return failure<Message>(DecodeErrorCode::unknown_type, "missing 't'");
        if (type->type != msgpack::type::STR) {
            return failure<Message>(DecodeErrorCode::unknown_type, "'t' is not a string");
        }
        if (fields.non_string_key()) {
            return failure<Message>(DecodeErrorCode::wrong_type, "a message key is not a string");
        }
        Reader reader(limits);
        return read_message<Message>(str_view(*type), fields, reader);
    } catch (const msgpack::depth_size_overflow&) {
        return failure<Message>(DecodeErrorCode::too_deep, "nesting too deep");
    } catch (const std::bad_alloc&) {
        return failure<Message>(DecodeErrorCode::oversize, "frame needs too much memory");
    } catch (const std::exception& e) {
        // msgpack::unpack_error and its kin (parse_error, insufficient_bytes,
        // size_overflow), should scan_frame ever let one through.
        return failure<Message>(DecodeErrorCode::malformed, e.what());
    } catch (...) {
        return failure<Message>(DecodeErrorCode::malformed, "unexpected error");
    }
}

// ---------------------------------------------------------------------------
// Peeking into a frame that did not decode

// Reads msgpack items one after the other, without building objects and
// without recursion; every read fails (false / nullopt) at the first damage.
class Cursor {
  public:
    explicit Cursor(std::string_view frame)
        : p_(reinterpret_cast<const unsigned char*>(frame.data())), n_(frame.size()) {}

    // The element count of a map header (pairs), if the next item is a map.
    std::optional<std::uint64_t> map_header() {
        Item item;
        if (!header(item) || !item.map) return std::nullopt;
        return item.children / 2;
    }

    // The bytes of a str item, if the next item is one (else nothing is read).
    std::optional<std::string_view> str() {
        const std::size_t start_pos = pos_;
        Item item;
        if (!header(item) || !item.str) {
            pos_ = start_pos;
            return std::nullopt;
        }
        const auto* start = reinterpret_cast<const char*>(p_ + pos_);
        pos_ += item.payload;
        return std::string_view(start, item.payload);
    }

    // An integer item in [0, INT_MAX] (else nothing is read).
    std::optional<int> small_int() {
        if (pos_ >= n_) return std::nullopt;
        const unsigned char b = p_[pos_];
        std::uint64_t value = 0;
        std::size_t bytes = 0;
        if (b <= 0x7f) {
            value = b;
        } else if (b >= 0xcc && b <= 0xcf) {
            bytes = std::size_t{1} << (b - 0xcc);
        } else if (b >= 0xd0 && b <= 0xd3) {
            bytes = std::size_t{1} << (b - 0xd0);
            // A signed encoding of a non-negative value is allowed (msgpack
            // writers pick either); negative values fail below.
            if (pos_ + 1 < n_ && (p_[pos_ + 1] & 0x80)) return std::nullopt;
        } else {
            return std::nullopt;
        }
        if (n_ - pos_ - 1 < bytes) return std::nullopt;
        for (std::size_t i = 0; i < bytes; ++i)
            value = (value << 8) | p_[pos_ + 1 + i];
        if (value > static_cast<std::uint64_t>(INT_MAX)) return std::nullopt;
        pos_ += 1 + bytes;
        return static_cast<int>(value);
    }

    // Bytes read so far.
    std::size_t position() const { return pos_; }

    // Skips one whole item, containers included.
    bool skip() {
        std::uint64_t pending = 1;
        while (pending > 0) {
            --pending;
            Item item;
            if (!header(item)) return false;
            pos_ += item.payload;
            pending += item.children;
            if (pending > n_ - pos_) return false;  // each item takes a byte at least
        }
        return true;
    }

  private:
    struct Item {
        std::uint64_t payload = 0;   // bytes after the header
        std::uint64_t children = 0;  // items inside (a map's keys and values)
        bool str = false;
        bool map = false;
    };

    // Reads the header of the next item; its payload must fit in the frame.
    bool header(Item& item) {
        if (pos_ >= n_) return false;
        const unsigned char b = p_[pos_++];
        auto length = [&](std::size_t bytes) {
            if (n_ - pos_ < bytes) return false;
            std::uint64_t value = 0;
            for (std::size_t i = 0; i < bytes; ++i)
                value = (value << 8) | p_[pos_ + i];
            pos_ += bytes;
            item.payload = value;
            return true;
        };
        auto count = [&](std::size_t bytes, std::uint64_t per_item) {
            if (!length(bytes)) return false;
            item.children = item.payload * per_item;
            item.payload = 0;
            return true;
        };
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            // fixint, nil, bool: the header is the whole item
        } else if (b <= 0x8f) {
            item.map = true;
            item.children = 2 * std::uint64_t(b & 0x0f);
        } else if (b <= 0x9f) {
            item.children = b & 0x0f;
        } else if (b <= 0xbf) {
            item.str = true;
            item.payload = b & 0x1f;
        } else if (b >= 0xc4 && b <= 0xc6) {  // bin 8/16/32
            if (!length(std::size_t{1} << (b - 0xc4))) return false;
        } else if (b >= 0xc7 && b <= 0xc9) {  // ext 8/16/32, then its type byte
            if (!length(std::size_t{1} << (b - 0xc7))) return false;
            item.payload += 1;
        } else if (b == 0xca || b == 0xcb) {  // float32/64
            item.payload = b == 0xca ? 4 : 8;
        } else if (b >= 0xcc && b <= 0xd3) {  // uint 8..64, int 8..64
            item.payload = std::size_t{1} << ((b - 0xcc) & 3);
        } else if (b >= 0xd4 && b <= 0xd8) {  // fixext 1..16, with its type byte
            item.payload = 1 + (std::size_t{1} << (b - 0xd4));
        } else if (b >= 0xd9 && b <= 0xdb) {  // str 8/16/32
            item.str = true;
            if (!length(std::size_t{1} << (b - 0xd9))) return false;
        } else if (b == 0xdc || b == 0xdd) {  // array 16/32
            if (!count(b == 0xdc ? 2 : 4, 1)) return false;
        } else if (b == 0xde || b == 0xdf) {  // map 16/32
            item.map = true;
            if (!count(b == 0xde ? 2 : 4, 2)) return false;
        } else {
            return false;  // 0xc1: never used
        }
        return item.payload <= n_ - pos_;
    }

    const unsigned char* p_;
    std::size_t n_;
    std::size_t pos_ = 0;
};

// ---------------------------------------------------------------------------
// Encoding

void require(bool ok, const char* what) {
    if (!ok) throw std::invalid_argument(what);
}

class Writer {
  public:
    explicit Writer(std::string& out) : out_(out), sink_{&out}, packer_(sink_) {}

    // Starts the message map: `fields` counts the fields after v and t.
    void header(std::string_view type, std::uint32_t fields) {
        packer_.pack_map(2 + fields);
        key(Field::v);
        packer_.pack_int(kVersion);
        key(Field::t);
        str(type);
    }
    void key(Field field) { str(name(field)); }
    void str(std::string_view text) {
        packer_.pack_str(size32(text.size()));
        packer_.pack_str_body(text.data(), size32(text.size()));
    }
    void text(Field field, std::string_view value) {
        // The decoder refuses invalid UTF-8; failing here names the sender's bug.
        require(detail::is_valid_utf8(value), "string field is not valid UTF-8");
        key(field);
        str(value);
    }
    void bytes(Field field, std::string_view value) {
        key(field);
        packer_.pack_bin(size32(value.size()));
        packer_.pack_bin_body(value.data(), size32(value.size()));
    }
    void integer(Field field, std::int64_t value) {
        key(field);
        packer_.pack_int64(value);
    }
    void uinteger(Field field, std::uint64_t value) {
        key(field);
        packer_.pack_uint64(value);
    }
    void boolean(Field field, bool value) {
        key(field);
        if (value) {
            packer_.pack_true();
        } else {
            packer_.pack_false();
        }
    }
    void json(Field field, std::string_view json_text) {
        key(field);
        detail::pack_json_object(out_, json_text, name(field));
    }
    void attempt(int value) {
        require(value >= 0, "attempt must not be negative");
        integer(Field::attempt, value);
    }
    // A chunk's kind, data and ts: the tail of a chunk message and the body of
    // a chunks event (three map pairs).
    void event_fields(EventKind kind, std::string_view data_json, UnixUs ts) {
        require(kind == EventKind::progress || kind == EventKind::token || kind == EventKind::log,
                "chunk kind must be progress, token or log");
        key(Field::kind);
        str(to_string(kind));
        json(Field::data, data_json);
        integer(Field::ts, ts);
    }
    void inflight(const std::vector<InflightJob>& jobs) {
        key(Field::inflight);
        packer_.pack_array(static_cast<std::uint32_t>(jobs.size()));
        for (const InflightJob& job : jobs) {
            packer_.pack_map(3);
            text(Field::job, job.job);
            attempt(job.attempt);
            uinteger(Field::next_wseq, job.next_wseq);
        }
    }
    Packer& packer() { return packer_; }

  private:
    static std::uint32_t size32(std::size_t size) {
        require(size <= UINT32_MAX, "value too large for msgpack");
        return static_cast<std::uint32_t>(size);
    }
    std::string& out_;
    StringSink sink_;
    Packer packer_;
};

void write(Writer& w, const Hello& m) {
    require(m.capacity >= 1, "hello capacity must be at least 1");
    w.header("hello", 4 + (m.session.empty() ? 0 : 1) + (m.schemas.empty() ? 0 : 1));
    w.text(Field::worker, m.worker);
    w.key(Field::types);
    w.packer().pack_array(static_cast<std::uint32_t>(m.types.size()));
    for (const std::string& type : m.types) {
        require(detail::is_valid_utf8(type), "string field is not valid UTF-8");
        w.str(type);
    }
    w.integer(Field::capacity, m.capacity);
    w.inflight(m.inflight);
    if (!m.session.empty()) w.text(Field::session, m.session);
    if (m.schemas.empty()) return;
    w.key(Field::schemas);
    w.packer().pack_map(static_cast<std::uint32_t>(m.schemas.size()));
    for (const auto& [type, schema] : m.schemas) {
        require(detail::is_valid_utf8(type) && detail::is_valid_utf8(schema),
                "string field is not valid UTF-8");
        w.str(type);
        w.str(schema);
    }
}
void write(Writer& w, const Heartbeat& m) {
    w.header("heartbeat", m.inflight ? 2 : 0);
    if (!m.inflight) return;
    w.inflight(*m.inflight);
    w.uinteger(Field::assigned, m.assigned);
}
void write(Writer& w, const Chunk& m) {
    w.header("chunk", 6);
    w.text(Field::job, m.job);
    w.attempt(m.attempt);
    w.uinteger(Field::wseq, m.wseq);
    w.event_fields(m.kind, m.data, m.ts);
}
void write(Writer& w, const Chunks& m) {
    require(!m.events.empty() && m.events.size() <= kMaxChunksEvents,
            "chunks must carry 1 to kMaxChunksEvents events");
    require(m.wseq <= UINT64_MAX - (m.events.size() - 1), "chunks wseq would overflow");
    w.header("chunks", 4);
    w.text(Field::job, m.job);
    w.attempt(m.attempt);
    w.uinteger(Field::wseq, m.wseq);
    w.key(Field::events);
    w.packer().pack_array(static_cast<std::uint32_t>(m.events.size()));
    for (const ChunkEvent& e : m.events) {
        w.packer().pack_map(3);
        w.event_fields(e.kind, e.data, e.ts);
    }
}
void write(Writer& w, const Checkpoint& m) {
    w.header("checkpoint", 4);
    w.text(Field::job, m.job);
    w.attempt(m.attempt);
    w.uinteger(Field::wseq, m.wseq);
    w.bytes(Field::bytes, m.bytes);
}
void write(Writer& w, const Done& m) {
    w.header("done", 4);
    w.text(Field::job, m.job);
    w.attempt(m.attempt);
    w.uinteger(Field::wseq, m.wseq);
    w.json(Field::result, m.result);
}
void write(Writer& w, const Fail& m) {
    w.header("fail", 5);
    w.text(Field::job, m.job);
    w.attempt(m.attempt);
    w.uinteger(Field::wseq, m.wseq);
    w.text(Field::error, m.error);
    w.boolean(Field::retryable, m.retryable);
}
void write(Writer& w, const Welcome& m) {
    require(m.heartbeat_ms >= 1, "welcome heartbeat_ms must be at least 1");
    w.header("welcome", 1 + (m.session.empty() ? 0 : 1) + (m.features.empty() ? 0 : 1));
    w.integer(Field::heartbeat_ms, m.heartbeat_ms);
    if (!m.session.empty()) w.text(Field::session, m.session);
    if (m.features.empty()) return;
    w.key(Field::features);
    w.packer().pack_array(static_cast<std::uint32_t>(m.features.size()));
    for (const std::string& feature : m.features) {
        require(detail::is_valid_utf8(feature), "string field is not valid UTF-8");
        w.str(feature);
    }
}
void write(Writer& w, const Assign& m) {
    w.header("assign", 5);
    w.text(Field::job, m.job);
    w.attempt(m.attempt);
    w.text(Field::type, m.type);
    w.json(Field::params, m.params);
    w.bytes(Field::checkpoint, m.checkpoint);
}
void write(Writer& w, const Ack& m) {
    w.header("ack", 3);
    w.text(Field::job, m.job);
    w.attempt(m.attempt);
    w.uinteger(Field::wseq, m.wseq);
}
void write(Writer& w, const Cancel& m) {
    w.header("cancel", 1);
    w.text(Field::job, m.job);
}
void write(Writer& w, const Reject& m) {
    w.header("reject", 2 + (m.attempt > 0 ? 1 : 0) + (m.detail.empty() ? 0 : 1));
    w.text(Field::job, m.job);
    w.text(Field::reason, m.reason);
    if (m.attempt > 0) w.attempt(m.attempt);
    if (!m.detail.empty()) w.text(Field::detail, m.detail);
}

template <class Message>
void encode_message(const Message& message, std::string& out) {
    out.clear();
    Writer writer(out);
    std::visit([&](const auto& body) { write(writer, body); }, message);
}

std::string_view tag(const Hello&) {
    return "hello";
}
std::string_view tag(const Heartbeat&) {
    return "heartbeat";
}
std::string_view tag(const Chunk&) {
    return "chunk";
}
std::string_view tag(const Chunks&) {
    return "chunks";
}
std::string_view tag(const Checkpoint&) {
    return "checkpoint";
}
std::string_view tag(const Done&) {
    return "done";
}
std::string_view tag(const Fail&) {
    return "fail";
}
std::string_view tag(const Welcome&) {
    return "welcome";
}
std::string_view tag(const Assign&) {
    return "assign";
}
std::string_view tag(const Ack&) {
    return "ack";
}
std::string_view tag(const Cancel&) {
    return "cancel";
}
std::string_view tag(const Reject&) {
    return "reject";
}

template <class Message>
std::string_view type_of(const Message& message) {
    return std::visit([](const auto& body) { return tag(body); }, message);
}

}  // namespace

AssignHeader peek_assign(std::string_view frame) {
    AssignHeader out;
    try {
        Cursor cursor(frame);
        const auto pairs = cursor.map_header();
        if (!pairs) return out;
        for (std::uint64_t i = 0; i < *pairs; ++i) {
            const auto key = cursor.str();
            if (!key) break;
            // A key may repeat: the last value counts, as in the decoder; a
            // value of the wrong type is skipped (and unsets the field).
            bool read_ok = true;
            if (*key == "t") {
                const auto type = cursor.str();
                out.is_assign = type && *type == "assign";
                if (!type) read_ok = cursor.skip();
            } else if (*key == "job") {
                const auto job = cursor.str();
                if (job && !job->empty() && job->size() <= kMaxJobIdBytes &&
                    detail::is_valid_utf8(*job)) {
                    out.job = std::string(*job);
                } else {
                    out.job.reset();
                }
                if (!job) read_ok = cursor.skip();
            } else if (*key == "attempt") {
                out.attempt = cursor.small_int();
                if (!out.attempt) read_ok = cursor.skip();
            } else {
                read_ok = cursor.skip();
            }
            if (!read_ok) break;
        }
    } catch (...) {  // std::bad_alloc from a string copy: what was read stands
    }
    if (!out.is_assign) {
        out.job.reset();
        out.attempt.reset();
    }
    return out;
}

Decoded<WorkerMessage> decode_worker_message(std::string_view frame, const DecodeLimits& limits) {
    // Nearly every frame is a well-formed chunk or chunks: one pass decodes
    // those; the full decoder takes everything else, errors included.
    Decoded<WorkerMessage> decoded;
    if (detail::decode_chunk_frame(frame, limits, decoded)) return decoded;
    return detail::decode_worker_message_in_full(frame, limits);
}

Decoded<WorkerMessage> detail::decode_worker_message_in_full(std::string_view frame,
                                                             const DecodeLimits& limits) {
    return decode_frame<WorkerMessage>(frame, limits);
}

Decoded<BrokerMessage> decode_broker_message(std::string_view frame, const DecodeLimits& limits) {
    return decode_frame<BrokerMessage>(frame, limits);
}

void encode(const WorkerMessage& message, std::string& out) {
    encode_message(message, out);
}
void encode(const BrokerMessage& message, std::string& out) {
    encode_message(message, out);
}

std::string encode(const WorkerMessage& message) {
    std::string out;
    encode_message(message, out);
    return out;
}

std::string encode(const BrokerMessage& message) {
    std::string out;
    encode_message(message, out);
    return out;
}

std::string_view chunk_event(std::string_view chunk_frame) {
    // encode(Chunk) writes v, t, job, attempt and wseq, then the event's
    // kind, data and ts: the event is what follows the first ten items.
    Cursor cursor(chunk_frame);
    const auto pairs = cursor.map_header();
    require(pairs && *pairs == 8, "not a chunk frame");
    for (int i = 0; i < 10; ++i)
        require(cursor.skip(), "not a chunk frame");
    return chunk_frame.substr(cursor.position());
}

void begin_chunks(std::string_view job, int attempt, std::uint64_t wseq, std::size_t count,
                  std::string& out) {
    require(count >= 1 && count <= kMaxChunksEvents,
            "chunks must carry 1 to kMaxChunksEvents events");
    require(wseq <= UINT64_MAX - (count - 1), "chunks wseq would overflow");
    out.clear();
    Writer writer(out);
    writer.header("chunks", 4);
    writer.text(Field::job, job);
    writer.attempt(attempt);
    writer.uinteger(Field::wseq, wseq);
    writer.key(Field::events);
    writer.packer().pack_array(static_cast<std::uint32_t>(count));
}

void append_chunks_event(std::string_view event, std::string& out) {
    Writer(out).packer().pack_map(3);
    out.append(event);
}

std::string_view type_name(const WorkerMessage& message) {
    return type_of(message);
}
std::string_view type_name(const BrokerMessage& message) {
    return type_of(message);
}

}  // namespace jobcast::proto
