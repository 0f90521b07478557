#include "protocol/limits.hpp"

#include "protocol/utf8.hpp"

namespace jobcast::proto {

bool is_printable_name(std::string_view name, std::size_t max_bytes) {
    if (name.empty() || name.size() > max_bytes) return false;
    const auto* s = reinterpret_cast<const unsigned char*>(name.data());
    std::size_t pos = 0;
    while (pos < name.size()) {
        const std::size_t length = detail::utf8_sequence_length(name, pos);
        if (length == 0) return false;
        const unsigned char b0 = s[pos];
        if (b0 < 0x20 || b0 == 0x7f) return false;           // C0, DEL
        if (b0 == 0xc2 && s[pos + 1] <= 0x9f) return false;  // C1: U+0080..U+009F
        if (b0 == 0xe2 && s[pos + 1] == 0x80 && (s[pos + 2] == 0xa8 || s[pos + 2] == 0xa9)) {
            return false;  // U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR
        }
        pos += length;
    }
    return true;
}

}  // namespace jobcast::proto
