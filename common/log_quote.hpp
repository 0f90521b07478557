// Escaping for log lines. Every value a peer or a client chose (a worker name,
// a job type, an error string, a message type, an owner, a URL target) goes
// into a key=value line through log_quote, so it can neither end the line,
// forge another field or line, nor carry terminal control sequences. The log
// formatters (common/logging.hpp) escape whole messages with the same rules, so
// no line can span two whatever a call site forgets.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace jobcast {

namespace detail {

inline constexpr char kLogHexDigits[] = "0123456789abcdef";

// The length of the valid UTF-8 sequence at the start of `s` (1..4), and its
// code point; 0 when the first byte does not start one (a stray continuation
// byte, an overlong form, a surrogate, a value above U+10FFFF, a truncation).
inline std::size_t utf8_sequence(std::string_view s, char32_t& code_point) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char b0 = byte(0);
    if (b0 < 0x80) {
        code_point = b0;
        return 1;
    }
    std::size_t length;
    char32_t min;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        length = 2;
        min = 0x80;
        code_point = b0 & 0x1f;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        length = 3;
        min = 0x800;
        code_point = b0 & 0x0f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        length = 4;
        min = 0x10000;
        code_point = b0 & 0x07;
    } else {
        return 0;
    }
    if (s.size() < length) return 0;
    for (std::size_t i = 1; i < length; ++i) {
        if ((byte(i) & 0xc0) != 0x80) return 0;
        code_point = (code_point << 6) | (byte(i) & 0x3f);
    }
    if (code_point < min || code_point > 0x10ffff ||
        (code_point >= 0xd800 && code_point <= 0xdfff)) {
        return 0;
    }
    return length;
}

// How a log escaper writes what it must escape.
enum class LogEscape {
    text,  // \n \r \t, \xNN for other control bytes and invalid UTF-8, \uNNNN
    json,  // inside a JSON string: \n \r \t \uNNNN, and \\xNN for invalid UTF-8
};

// Appends `in` to `out` (anything with push_back(char) and append(first,
// last)) with control characters (C0, DEL, C1), U+2028/U+2029 and invalid
// UTF-8 bytes escaped; '"' and '\' too when `quote_chars` (always for json).
// Consumes at most `max_bytes` of input (whole characters only) and returns
// how many it consumed.
template <class Out>
std::size_t append_log_escaped(Out& out, std::string_view in, LogEscape style, bool quote_chars,
                               std::size_t max_bytes = std::string_view::npos) {
    const bool json = style == LogEscape::json;
    const auto put = [&](std::string_view text) {
        out.append(text.data(), text.data() + text.size());
    };
    const auto hex_byte = [&](unsigned char c) {
        // json: the two characters '\' 'x' inside the string, i.e. "\\x" escaped.
        const char text[] = {'\\', '\\', 'x', kLogHexDigits[c >> 4], kLogHexDigits[c & 15]};
        if (json) {
            out.append(text, text + 5);
        } else {
            out.append(text + 1, text + 5);
        }
    };
    const auto unicode = [&](char32_t cp) {
        const char text[] = {'\\',
                             'u',
                             kLogHexDigits[(cp >> 12) & 15],
                             kLogHexDigits[(cp >> 8) & 15],
                             kLogHexDigits[(cp >> 4) & 15],
                             kLogHexDigits[cp & 15]};
        out.append(text, text + 6);
    };
    std::size_t pos = 0;
    while (pos < in.size()) {
        char32_t cp = 0;
        std::size_t length = utf8_sequence(in.substr(pos), cp);
        const std::size_t taken = length == 0 ? 1 : length;
        if (max_bytes != std::string_view::npos && pos + taken > max_bytes) break;
        if (length == 0) {
            hex_byte(static_cast<unsigned char>(in[pos]));
        } else if (cp == '\n') {
            put("\\n");
        } else if (cp == '\r') {
            put("\\r");
        } else if (cp == '\t') {
            put("\\t");
        } else if (cp < 0x20 || cp == 0x7f) {
            if (json) {
                unicode(cp);
            } else {
                hex_byte(static_cast<unsigned char>(cp));
            }
        } else if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
            unicode(cp);  // C1 controls (NEL is a line break to some readers), line separators
        } else if ((cp == '"' || cp == '\\') && (quote_chars || json)) {
            out.push_back('\\');
            out.push_back(static_cast<char>(cp));
        } else {
            out.append(in.data() + pos, in.data() + pos + length);
        }
        pos += taken;
    }
    return pos;
}

}  // namespace detail

// The default bound on a quoted value: enough for any name, type or error
// worth reading, and a peer cannot make one log line megabytes long.
inline constexpr std::size_t kLogQuoteMaxBytes = 256;

// `value` as a double-quoted log value: '"' and '\' escaped, control
// characters as \n, \r, \t or \xNN, C1 controls and U+2028/U+2029 as \uNNNN,
// invalid UTF-8 bytes as \xNN. Values longer than `max_bytes` are cut (at a
// character boundary) and end with a marker saying how much was left out:
// "abc…[+1234 bytes]".
inline std::string log_quote(std::string_view value, std::size_t max_bytes = kLogQuoteMaxBytes) {
    std::string out;
    out.reserve(2 + std::min(value.size(), max_bytes) + 16);
    out.push_back('"');
    const std::size_t used =
        detail::append_log_escaped(out, value, detail::LogEscape::text, true, max_bytes);
    if (used < value.size()) {
        out += "\xe2\x80\xa6[+";  // U+2026 HORIZONTAL ELLIPSIS
        out += std::to_string(value.size() - used);
        out += " bytes]";
    }
    out.push_back('"');
    return out;
}

}  // namespace jobcast
