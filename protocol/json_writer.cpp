#include "protocol/json_writer.hpp"

#include <charconv>
#include <cmath>
#include <string_view>

#include "protocol/utf8.hpp"

namespace jobcast::json {

namespace {

template <class Number>
bool append_floating(std::string& out, Number value) {
    if (!std::isfinite(value)) return false;
    if (value == 0 && std::signbit(value)) {
        out += "-0.0";
        return true;
    }
    char buffer[64];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, result.ptr);
    return true;
}

// JSON requires escaping '"', '\\' and U+0000..U+001F; everything else may be
// written as is. Short escapes where JSON has them, \u00XX for the rest.
void append_escaped_ascii(std::string& out, unsigned char c) {
    switch (c) {
        case '"':
            out += "\\\"";
            return;
        case '\\':
            out += "\\\\";
            return;
        case '\b':
            out += "\\b";
            return;
        case '\f':
            out += "\\f";
            return;
        case '\n':
            out += "\\n";
            return;
        case '\r':
            out += "\\r";
            return;
        case '\t':
            out += "\\t";
            return;
        default: {
            static constexpr char kHex[] = "0123456789abcdef";
            const char escape[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
            out.append(escape, sizeof escape);
        }
    }
}

}  // namespace

namespace detail {

void append_int(std::string& out, std::int64_t value) {
    char buffer[24];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, result.ptr);
}

void append_uint(std::string& out, std::uint64_t value) {
    char buffer[24];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, result.ptr);
}

bool append_double(std::string& out, double value) {
    return append_floating(out, value);
}
bool append_float(std::string& out, float value) {
    return append_floating(out, value);
}

}  // namespace detail

void append_quoted(std::string& out, std::string_view text) {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    out.reserve(out.size() + n + 2);
    out.push_back('"');
    std::size_t run = 0;  // start of the bytes not yet copied
    std::size_t pos = 0;
    while (pos < n) {
        const unsigned char c = s[pos];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            ++pos;
            continue;
        }
        out.append(text.data() + run, pos - run);
        if (c < 0x80) {
            append_escaped_ascii(out, c);
            ++pos;
        } else if (std::size_t len = proto::detail::utf8_sequence_length(text, pos); len != 0) {
            out.append(text.data() + pos, len);
            pos += len;
        } else {
            // Not UTF-8: the output must stay valid JSON whatever the input, so
            // each bad byte becomes U+FFFD, the replacement character.
            out += "\\ufffd";
            ++pos;
        }
        run = pos;
    }
    out.append(text.data() + run, n - run);
    out.push_back('"');
}

}  // namespace jobcast::json
