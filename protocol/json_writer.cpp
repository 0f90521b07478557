#include "protocol/json_writer.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "protocol/json_quote.hpp"
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

namespace {

// Appends the decimal digits of `value`, after a '-' when `negative`. Two
// digits at a time into a local buffer, then one append: every event of
// every frame carries a seq and a timestamp of up to 16 digits.
void append_decimal(std::string& out, std::uint64_t value, bool negative) {
    static constexpr char kPairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    char buffer[24];
    char* const end = buffer + sizeof buffer;
    char* begin = end;
    while (value >= 100) {
        const auto pair = static_cast<std::size_t>(value % 100) * 2;
        value /= 100;
        begin -= 2;
        std::memcpy(begin, kPairs + pair, 2);
    }
    if (value >= 10) {
        begin -= 2;
        std::memcpy(begin, kPairs + value * 2, 2);
    } else {
        *--begin = static_cast<char>('0' + value);
    }
    if (negative) *--begin = '-';
    out.append(begin, static_cast<std::size_t>(end - begin));
}

}  // namespace

void append_int(std::string& out, std::int64_t value) {
    if (value >= 0) {
        append_decimal(out, static_cast<std::uint64_t>(value), false);
    } else {
        // The magnitude in unsigned arithmetic: -INT64_MIN does not fit an int64.
        append_decimal(out, 0 - static_cast<std::uint64_t>(value), true);
    }
}

void append_uint(std::string& out, std::uint64_t value) {
    append_decimal(out, value, false);
}

bool append_double(std::string& out, double value) {
    return append_floating(out, value);
}
bool append_float(std::string& out, float value) {
    return append_floating(out, value);
}

}  // namespace detail

namespace {

// Whether any of the 8 bytes in `word` must leave the fast copy: a byte of
// 0x80 or above (UTF-8 to check), below 0x20, '"' or '\\'. Bitwise tests on
// all eight at once (each is exact for "some byte", which is all this asks).
bool needs_attention(std::uint64_t word) {
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    constexpr std::uint64_t highs = 0x8080808080808080ULL;
    const std::uint64_t quote = word ^ (ones * '"');
    const std::uint64_t backslash = word ^ (ones * '\\');
    return ((word | ((word - ones * 0x20) & ~word) | ((quote - ones) & ~quote) |
             ((backslash - ones) & ~backslash)) &
            highs) != 0;
}

// Appends `text` quoted. A byte that does not start a UTF-8 sequence is
// written as U+FFFD (Strict: false) or ends the call with false (Strict: true;
// `out` then holds part of the text).
template <bool Strict>
bool quote(std::string& out, std::string_view text) {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    out.reserve(out.size() + n + 2);
    out.push_back('"');
    std::size_t run = 0;  // start of the bytes not yet copied
    std::size_t pos = 0;
    while (pos < n) {
        if (pos + 8 <= n) {
            std::uint64_t word;
            std::memcpy(&word, s + pos, 8);
            if (!needs_attention(word)) {
                pos += 8;
                continue;
            }
        }
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
        } else if constexpr (Strict) {
            return false;
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
    return true;
}

}  // namespace

bool detail::append_quoted_utf8(std::string& out, std::string_view text) {
    return quote<true>(out, text);
}

void append_quoted(std::string& out, std::string_view text) {
    quote<false>(out, text);
}

}  // namespace jobcast::json
