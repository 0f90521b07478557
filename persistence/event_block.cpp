#include "persistence/event_block.hpp"

#include <cstdint>

namespace jobcast::store {

namespace {

constexpr std::uint8_t kMaxKind = static_cast<std::uint8_t>(EventKind::error);
constexpr std::uint64_t kMaxSeq = INT64_MAX;  // seqs are SQLite integers

void put_varint(std::string& out, std::uint64_t value) {
    char buffer[10];
    std::size_t n = 0;
    while (value >= 0x80) {
        buffer[n++] = static_cast<char>(static_cast<std::uint8_t>(value) | 0x80);
        value >>= 7;
    }
    buffer[n++] = static_cast<char>(value);
    out.append(buffer, n);
}

std::uint64_t zigzag(std::uint64_t delta) {
    // (n << 1) ^ (n >> 63) on the two's complement value, in unsigned arithmetic.
    return (delta << 1) ^ (0 - (delta >> 63));
}

std::uint64_t unzigzag(std::uint64_t value) {
    return (value >> 1) ^ (0 - (value & 1));
}

// Reads bounds-checked values from a block body.
class Reader {
  public:
    explicit Reader(std::string_view bytes)
        : at_(reinterpret_cast<const std::uint8_t*>(bytes.data())), end_(at_ + bytes.size()) {}

    bool done() const { return at_ == end_; }
    const char* position() const { return reinterpret_cast<const char*>(at_); }

    bool byte(std::uint8_t& value) {
        if (at_ == end_) return false;
        value = *at_++;
        return true;
    }

    bool varint(std::uint64_t& value) {
        std::uint64_t result = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
            if (at_ == end_) return false;
            const std::uint8_t b = *at_++;
            // The 10th byte may only carry the top bit.
            if (shift == 63 && b > 1) return false;
            result |= static_cast<std::uint64_t>(b & 0x7f) << shift;
            if ((b & 0x80) == 0) {
                value = result;
                return true;
            }
        }
        return false;
    }

    bool skip(std::uint64_t n) {
        if (n > static_cast<std::uint64_t>(end_ - at_)) return false;
        at_ += n;
        return true;
    }

  private:
    const std::uint8_t* at_;
    const std::uint8_t* end_;
};

}  // namespace

void encode_block(std::span<const Event> events, std::string& body) {
    body.clear();
    std::size_t size = 1;
    for (const Event& event : events)
        size += 1 + 10 + 10 + event.data.size();
    body.reserve(size);
    body.push_back(static_cast<char>(kBlockFormat));
    std::uint64_t previous = 0;
    for (const Event& event : events) {
        const auto ts = static_cast<std::uint64_t>(event.ts);
        body.push_back(static_cast<char>(event.kind));
        put_varint(body, zigzag(ts - previous));
        put_varint(body, event.data.size());
        body.append(event.data);
        previous = ts;
    }
}

std::optional<std::string> decode_block(std::string_view body, std::uint64_t first_seq,
                                        std::uint64_t last_seq, std::uint64_t after,
                                        std::size_t limit, std::vector<EventView>& out,
                                        ByteBudget* budget) {
    if (first_seq == 0 || last_seq < first_seq || last_seq > kMaxSeq) {
        return "bad seq range " + std::to_string(first_seq) + ".." + std::to_string(last_seq);
    }
    const std::size_t out_size = out.size();
    const std::size_t budget_used = budget ? budget->used : 0;
    auto corrupt = [&](const char* what, std::uint64_t seq) -> std::optional<std::string> {
        out.resize(out_size);
        if (budget) budget->used = budget_used;
        return std::string(what) + " at seq " + std::to_string(seq);
    };

    Reader reader(body);
    std::uint8_t format = 0;
    if (!reader.byte(format)) return corrupt("empty block", first_seq);
    if (format != kBlockFormat) return corrupt("unknown block format", first_seq);

    std::uint64_t previous = 0;
    std::size_t appended = 0;
    for (std::uint64_t seq = first_seq; seq <= last_seq; ++seq) {
        std::uint8_t kind = 0;
        std::uint64_t delta = 0;
        std::uint64_t length = 0;
        if (!reader.byte(kind)) return corrupt("truncated block", seq);
        if (kind > kMaxKind) return corrupt("unknown event kind", seq);
        if (!reader.varint(delta)) return corrupt("bad timestamp", seq);
        if (!reader.varint(length)) return corrupt("bad data length", seq);
        const char* data = reader.position();
        if (!reader.skip(length)) return corrupt("data runs past the block", seq);
        previous += unzigzag(delta);
        if (seq <= after) continue;
        if (appended == limit) return std::nullopt;  // enough; the rest is not needed
        if (budget && !out.empty() && budget->used >= budget->max) return std::nullopt;
        if (budget) budget->used += length;
        out.push_back({seq, static_cast<EventKind>(kind), static_cast<UnixUs>(previous),
                       std::string_view(data, length)});
        ++appended;
    }
    if (!reader.done()) return corrupt("trailing bytes after the last event", last_seq);
    return std::nullopt;
}

}  // namespace jobcast::store
