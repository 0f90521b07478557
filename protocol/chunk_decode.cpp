#include "protocol/codec_impl.hpp"

#include <array>
#include <climits>
#include <cstdint>
#include <cstring>

#include "common/time_bounds.hpp"
#include "protocol/json_quote.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/utf8.hpp"

namespace jobcast::proto::detail {

namespace {

// The keys of a chunk or chunks message, as bits of a mask.
constexpr unsigned kV = 1u << 0;
constexpr unsigned kT = 1u << 1;
constexpr unsigned kJob = 1u << 2;
constexpr unsigned kAttempt = 1u << 3;
constexpr unsigned kWseq = 1u << 4;
constexpr unsigned kKind = 1u << 5;
constexpr unsigned kData = 1u << 6;
constexpr unsigned kTs = 1u << 7;
constexpr unsigned kEvents = 1u << 8;
constexpr unsigned kChunkKeys = kV | kT | kJob | kAttempt | kWseq | kKind | kData | kTs;
constexpr unsigned kChunksKeys = kV | kT | kJob | kAttempt | kWseq | kEvents;

// The key's bit; 0 for any other key.
unsigned key_bit(std::string_view key) {
    switch (key.size()) {
        case 1:
            return key == "v" ? kV : key == "t" ? kT : 0;
        case 2:
            return key == "ts" ? kTs : 0;
        case 3:
            return key == "job" ? kJob : 0;
        case 4:
            return key == "wseq" ? kWseq : key == "kind" ? kKind : key == "data" ? kData : 0;
        case 6:
            return key == "events" ? kEvents : 0;
        case 7:
            return key == "attempt" ? kAttempt : 0;
    }
    return 0;
}

// An integer item as msgpack-c reads it: a signed encoding of a value >= 0
// counts as unsigned.
struct Integer {
    bool negative = false;
    std::uint64_t u = 0;  // when !negative
    std::int64_t i = 0;   // when negative
};

// Reads the frame front to back; every read returns false, having consumed an
// unspecified part, when the next item is not what was asked or is cut short.
class FrameReader {
  public:
    FrameReader(std::string_view frame, int max_depth)
        : p_(reinterpret_cast<const unsigned char*>(frame.data())),
          n_(frame.size()),
          max_depth_(max_depth) {}

    bool at_end() const { return pos_ == n_; }

    bool map_header(std::uint32_t& count) {
        if (pos_ >= n_) return false;
        const unsigned char b = p_[pos_];
        if (b >= 0x80 && b <= 0x8f) {
            ++pos_;
            count = b & 0x0f;
            return true;
        }
        if (b == 0xde || b == 0xdf) return length(b == 0xde ? 2 : 4, count);
        return false;
    }

    bool array_header(std::uint32_t& count) {
        if (pos_ >= n_) return false;
        const unsigned char b = p_[pos_];
        if (b >= 0x90 && b <= 0x9f) {
            ++pos_;
            count = b & 0x0f;
            return true;
        }
        if (b == 0xdc || b == 0xdd) return length(b == 0xdc ? 2 : 4, count);
        return false;
    }

    // A str item's bytes (not yet checked to be UTF-8).
    bool str(std::string_view& out) {
        if (pos_ >= n_) return false;
        const unsigned char b = p_[pos_];
        std::uint32_t size = 0;
        if (b >= 0xa0 && b <= 0xbf) {
            ++pos_;
            size = b & 0x1f;
        } else if (b >= 0xd9 && b <= 0xdb) {
            if (!length(std::size_t{1} << (b - 0xd9), size)) return false;
        } else {
            return false;
        }
        if (size > n_ - pos_) return false;
        out = std::string_view(reinterpret_cast<const char*>(p_ + pos_), size);
        pos_ += size;
        return true;
    }

    bool utf8_str(std::string_view& out) { return str(out) && is_valid_utf8(out); }

    bool integer(Integer& out) {
        if (pos_ >= n_) return false;
        const unsigned char b = p_[pos_];
        if (b <= 0x7f) {
            ++pos_;
            out = {false, b, 0};
            return true;
        }
        if (b >= 0xe0) {
            ++pos_;
            out = {true, 0, static_cast<std::int8_t>(b)};
            return true;
        }
        std::uint64_t raw = 0;
        if (b >= 0xcc && b <= 0xcf) {
            if (!big_endian(std::size_t{1} << (b - 0xcc), raw)) return false;
            out = {false, raw, 0};
            return true;
        }
        if (b >= 0xd0 && b <= 0xd3) {
            const std::size_t bytes = std::size_t{1} << (b - 0xd0);
            if (!big_endian(bytes, raw)) return false;
            const unsigned shift = static_cast<unsigned>(64 - 8 * bytes);
            const auto value = static_cast<std::int64_t>(raw << shift) >> shift;
            out = value < 0 ? Integer{true, 0, value}
                            : Integer{false, static_cast<std::uint64_t>(value), 0};
            return true;
        }
        return false;
    }

    // The data map that starts here, as JSON text appended to `out`, with
    // the full decoder's rules (msgpack_json.hpp): the map is at depth 1.
    bool json_map(std::string& out) {
        std::uint32_t count = 0;
        return map_header(count) && json_map_body(out, count, 1);
    }

  private:
    bool length(std::size_t bytes, std::uint32_t& out) {
        std::uint64_t value = 0;
        if (!big_endian(bytes, value)) return false;
        out = static_cast<std::uint32_t>(value);
        return true;
    }

    // The `bytes` after the current header byte, big-endian; consumes both.
    bool big_endian(std::size_t bytes, std::uint64_t& out) {
        if (n_ - pos_ - 1 < bytes) return false;
        std::uint64_t value = 0;
        for (std::size_t i = 1; i <= bytes; ++i)
            value = (value << 8) | p_[pos_ + i];
        pos_ += 1 + bytes;
        out = value;
        return true;
    }

    bool json_map_body(std::string& out, std::uint32_t count, int depth) {
        if (depth > max_depth_ || count > kFastPathMapKeys) return false;
        std::array<std::string_view, kFastPathMapKeys> keys;
        out.push_back('{');
        for (std::uint32_t i = 0; i < count; ++i) {
            std::string_view key;
            if (!str(key)) return false;
            for (std::uint32_t j = 0; j < i; ++j) {
                if (keys[j] == key) return false;
            }
            keys[i] = key;
            if (i != 0) out.push_back(',');
            if (!json::detail::append_quoted_utf8(out, key)) return false;
            out.push_back(':');
            if (!json_value(out, depth)) return false;
        }
        out.push_back('}');
        return true;
    }

    // One value inside a container at `depth`.
    bool json_value(std::string& out, int depth) {
        if (pos_ >= n_) return false;
        const unsigned char b = p_[pos_];
        std::uint32_t count = 0;
        std::uint64_t raw = 0;
        switch (b) {
            case 0xc0:
                ++pos_;
                out += "null";
                return true;
            case 0xc2:
                ++pos_;
                out += "false";
                return true;
            case 0xc3:
                ++pos_;
                out += "true";
                return true;
            case 0xca: {
                if (!big_endian(4, raw)) return false;
                const auto bits = static_cast<std::uint32_t>(raw);
                float value;
                std::memcpy(&value, &bits, sizeof value);
                return json::detail::append_float(out, value);
            }
            case 0xcb: {
                if (!big_endian(8, raw)) return false;
                double value;
                std::memcpy(&value, &raw, sizeof value);
                return json::detail::append_double(out, value);
            }
            default:
                break;
        }
        if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) {
            std::string_view text;
            return str(text) && json::detail::append_quoted_utf8(out, text);
        }
        if ((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf) {
            return map_header(count) && json_map_body(out, count, depth + 1);
        }
        if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd) {
            if (!array_header(count) || depth + 1 > max_depth_) return false;
            out.push_back('[');
            for (std::uint32_t i = 0; i < count; ++i) {
                if (i != 0) out.push_back(',');
                if (!json_value(out, depth + 1)) return false;
            }
            out.push_back(']');
            return true;
        }
        Integer value;
        if (!integer(value)) return false;  // bin, ext and 0xc1 have no JSON form
        if (value.negative) {
            json::detail::append_int(out, value.i);
        } else {
            json::detail::append_uint(out, value.u);
        }
        return true;
    }

    const unsigned char* p_;
    std::size_t n_;
    std::size_t pos_ = 0;
    int max_depth_;
};

bool chunk_kind(std::string_view text, EventKind& out) {
    if (text == "token") return out = EventKind::token, true;
    if (text == "progress") return out = EventKind::progress, true;
    if (text == "log") return out = EventKind::log, true;
    return false;
}

// A timestamp outside (0, year 9999] reads as 0, as in the full decoder.
bool timestamp(FrameReader& reader, UnixUs& out) {
    Integer value;
    if (!reader.integer(value)) return false;
    if (value.negative) {
        out = value.i;
    } else {
        if (value.u > static_cast<std::uint64_t>(INT64_MAX)) return false;
        out = static_cast<UnixUs>(value.u);
    }
    if (!time_bounds::plausible_unix_micros(out)) out = 0;
    return true;
}

// The JSON of the data map that starts here, in `out` (cleared first). It is
// built in a buffer kept per thread, then copied once at its final size.
bool data(FrameReader& reader, std::string& out) {
    thread_local std::string scratch;
    scratch.clear();
    if (!reader.json_map(scratch)) return false;
    out.assign(scratch);
    if (scratch.capacity() > 65536) std::string().swap(scratch);
    return true;
}

// One event of a chunks: {kind, data, ts?} and nothing else.
bool chunks_event(FrameReader& reader, ChunkEvent& out) {
    std::uint32_t pairs = 0;
    if (!reader.map_header(pairs)) return false;
    unsigned seen = 0;
    out.ts = 0;
    for (std::uint32_t i = 0; i < pairs; ++i) {
        std::string_view key;
        if (!reader.str(key)) return false;
        const unsigned bit = key_bit(key);
        if ((bit & (kKind | kData | kTs)) == 0 || (seen & bit) != 0) return false;
        seen |= bit;
        std::string_view text;
        if (bit == kKind) {
            if (!reader.str(text) || !chunk_kind(text, out.kind)) return false;
        } else if (bit == kData) {
            if (!data(reader, out.data)) return false;
        } else if (!timestamp(reader, out.ts)) {
            return false;
        }
    }
    return (seen & (kKind | kData)) == (kKind | kData);
}

}  // namespace

bool decode_chunk_frame(std::string_view frame, const DecodeLimits& limits,
                        Decoded<WorkerMessage>& out) {
    if (frame.size() > limits.max_frame_bytes) return false;
    try {
        FrameReader reader(frame, limits.max_depth);
        std::uint32_t pairs = 0;
        if (!reader.map_header(pairs)) return false;
        unsigned seen = 0;
        unsigned expected = 0;  // kChunkKeys or kChunksKeys, once 't' is read
        std::string_view job;
        Integer attempt, wseq;
        EventKind kind = EventKind::token;
        UnixUs ts = 0;
        std::string chunk_data;
        std::vector<ChunkEvent> events;
        for (std::uint32_t i = 0; i < pairs; ++i) {
            std::string_view key;
            if (!reader.str(key)) return false;
            const unsigned bit = key_bit(key);
            if (bit == 0 || (seen & bit) != 0) return false;
            seen |= bit;
            std::string_view text;
            Integer version;
            switch (bit) {
                case kV:
                    if (!reader.integer(version) || version.negative ||
                        version.u != static_cast<std::uint64_t>(kVersion)) {
                        return false;
                    }
                    break;
                case kT:
                    if (!reader.str(text)) return false;
                    if (text == "chunk") {
                        expected = kChunkKeys;
                    } else if (text == "chunks") {
                        expected = kChunksKeys;
                    } else {
                        return false;
                    }
                    break;
                case kJob:
                    if (!reader.utf8_str(job)) return false;
                    break;
                case kAttempt:
                    if (!reader.integer(attempt) || attempt.negative ||
                        attempt.u > static_cast<std::uint64_t>(INT_MAX)) {
                        return false;
                    }
                    break;
                case kWseq:
                    if (!reader.integer(wseq) || wseq.negative) return false;
                    break;
                case kKind:
                    if (!reader.str(text) || !chunk_kind(text, kind)) return false;
                    break;
                case kData:
                    if (!data(reader, chunk_data)) return false;
                    break;
                case kTs:
                    if (!timestamp(reader, ts)) return false;
                    break;
                case kEvents: {
                    std::uint32_t count = 0;
                    if (!reader.array_header(count) || count == 0 || count > kMaxChunksEvents) {
                        return false;
                    }
                    events.resize(count);
                    for (ChunkEvent& event : events) {
                        if (!chunks_event(reader, event)) return false;
                    }
                    break;
                }
            }
        }
        if (!reader.at_end() || expected == 0 || seen != expected) return false;
        auto& message = out.emplace<WorkerMessage>();
        if (expected == kChunkKeys) {
            message.emplace<Chunk>(Chunk{std::string(job), static_cast<int>(attempt.u), wseq.u,
                                         kind, std::move(chunk_data), ts});
            return true;
        }
        if (wseq.u > UINT64_MAX - (events.size() - 1)) return false;
        message.emplace<Chunks>(
            Chunks{std::string(job), static_cast<int>(attempt.u), wseq.u, std::move(events)});
        return true;
    } catch (...) {
        return false;  // std::bad_alloc: the full decoder reports it
    }
}

}  // namespace jobcast::proto::detail
