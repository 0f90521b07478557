#include "protocol/utf8.hpp"

#include <cstdint>
#include <cstring>

namespace jobcast::proto::detail {

std::size_t utf8_sequence_length(std::string_view text, std::size_t pos) {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t left = text.size() - pos;
    const unsigned char b0 = s[pos];
    if (b0 < 0x80) return 1;
    auto cont = [&](std::size_t i) { return (s[pos + i] & 0xc0) == 0x80; };
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        return left >= 2 && cont(1) ? 2 : 0;
    }
    if (b0 >= 0xe0 && b0 <= 0xef) {
        if (left < 3 || !cont(1) || !cont(2)) return 0;
        const unsigned char b1 = s[pos + 1];
        if (b0 == 0xe0 && b1 < 0xa0) return 0;  // overlong
        if (b0 == 0xed && b1 > 0x9f) return 0;  // UTF-16 surrogate
        return 3;
    }
    if (b0 >= 0xf0 && b0 <= 0xf4) {
        if (left < 4 || !cont(1) || !cont(2) || !cont(3)) return 0;
        const unsigned char b1 = s[pos + 1];
        if (b0 == 0xf0 && b1 < 0x90) return 0;  // overlong
        if (b0 == 0xf4 && b1 > 0x8f) return 0;  // above U+10FFFF
        return 4;
    }
    return 0;  // continuation byte, 0xc0/0xc1 or 0xf5..0xff
}

bool is_valid_utf8(std::string_view text) {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t pos = 0;
    while (pos < n) {
        // Most protocol text (ids, field names, English tokens) is ASCII: skip it
        // eight bytes at a time.
        while (pos + 8 <= n) {
            std::uint64_t word;
            std::memcpy(&word, s + pos, 8);
            if (word & 0x8080808080808080ULL) break;
            pos += 8;
        }
        if (pos >= n) break;
        if (s[pos] < 0x80) {
            ++pos;
            continue;
        }
        const std::size_t len = utf8_sequence_length(text, pos);
        if (len == 0) return false;
        pos += len;
    }
    return true;
}

}  // namespace jobcast::proto::detail
