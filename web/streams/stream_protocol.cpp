#include "web/streams/stream_protocol.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>

namespace jobcast::web::streams {

namespace {

constexpr std::int64_t kCursorEpochMs = 1'728'432'000'000;  // 2024-10-09T00:00:00Z
constexpr std::int64_t kCursorIntervalMs = 20'000;

bool all_digits(std::string_view text) {
    if (text.empty()) return false;
    for (char c : text)
        if (c < '0' || c > '9') return false;
    return true;
}

std::optional<std::uint64_t> to_number(std::string_view text) {
    if (!all_digits(text)) return std::nullopt;
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// Reads `width` digits at `pos` of `text`.
std::optional<int> digits(std::string_view text, std::size_t pos, std::size_t width) {
    if (pos + width > text.size()) return std::nullopt;
    auto value = to_number(text.substr(pos, width));
    if (!value) return std::nullopt;
    return static_cast<int>(*value);
}

}  // namespace

std::string format_offset(std::uint64_t seq) {
    char buffer[24];
    std::snprintf(buffer, sizeof buffer, "%020llu", static_cast<unsigned long long>(seq));
    return buffer;
}

std::optional<Offset> parse_offset(std::string_view text) {
    if (text == "-1") return OffsetStart{};
    if (text == "now") return OffsetNow{};
    if (auto seq = to_number(text)) return OffsetAfter{*seq};
    return std::nullopt;
}

std::optional<Offset> parse_fork_offset(std::string_view text) {
    const auto split = text.find('_');
    if (split != std::string_view::npos) {
        const auto zeros = [](std::string_view part) {
            return !part.empty() && part.find_first_not_of('0') == std::string_view::npos;
        };
        if (zeros(text.substr(0, split)) && zeros(text.substr(split + 1))) return OffsetStart{};
        return std::nullopt;
    }
    return parse_offset(text);
}

std::optional<std::uint64_t> parse_header_number(std::string_view text, std::uint64_t max,
                                                 bool canonical) {
    if (canonical && text.size() > 1 && text.front() == '0') return std::nullopt;
    auto value = to_number(text);
    if (!value || *value > max) return std::nullopt;
    return value;
}

std::optional<std::int64_t> parse_timestamp(std::string_view text) {
    // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
    auto year = digits(text, 0, 4), month = digits(text, 5, 2), day = digits(text, 8, 2);
    auto hour = digits(text, 11, 2), minute = digits(text, 14, 2), second = digits(text, 17, 2);
    if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
    if (text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't') ||
        text[13] != ':' || text[16] != ':') {
        return std::nullopt;
    }
    const std::chrono::year_month_day date{std::chrono::year{*year},
                                           std::chrono::month{unsigned(*month)},
                                           std::chrono::day{unsigned(*day)}};
    if (!date.ok() || *hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
    std::size_t pos = 19;
    std::int64_t millis = 0;
    if (pos < text.size() && text[pos] == '.') {
        std::size_t start = ++pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9')
            ++pos;
        if (pos == start) return std::nullopt;
        std::string_view fraction = text.substr(start, std::min<std::size_t>(pos - start, 3));
        millis = static_cast<std::int64_t>(*to_number(fraction));
        for (std::size_t i = fraction.size(); i < 3; ++i)
            millis *= 10;
    }
    std::int64_t zone_minutes = 0;
    std::string_view zone = text.substr(pos);
    if (zone == "Z" || zone == "z") {
        zone_minutes = 0;
    } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
        auto zh = digits(zone, 1, 2), zm = digits(zone, 4, 2);
        if (!zh || !zm || *zh > 23 || *zm > 59) return std::nullopt;
        zone_minutes = (*zh * 60 + *zm) * (zone[0] == '-' ? -1 : 1);
    } else {
        return std::nullopt;
    }
    const auto days = std::chrono::sys_days{date}.time_since_epoch().count();
    const std::int64_t seconds =
        days * 86400 + *hour * 3600 + *minute * 60 + *second - zone_minutes * 60;
    return seconds * 1000 + millis;
}

std::string next_cursor(std::int64_t now_ms, std::optional<std::string_view> client_cursor,
                        std::uint32_t jitter_intervals) {
    const std::int64_t current = (now_ms - kCursorEpochMs) / kCursorIntervalMs;
    if (client_cursor) {
        std::int64_t theirs = 0;
        auto [end, ec] = std::from_chars(client_cursor->data(),
                                         client_cursor->data() + client_cursor->size(), theirs);
        if (ec == std::errc{} && end == client_cursor->data() + client_cursor->size() &&
            theirs >= current) {
            return std::to_string(theirs + std::max<std::uint32_t>(1, jitter_intervals));
        }
    }
    return std::to_string(current);
}

bool sse_needs_base64(std::string_view type) {
    return !(type.starts_with("text/") || type == "application/json");
}

std::string base64_encode(std::string_view bytes) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const auto n = (std::uint32_t(std::uint8_t(bytes[i])) << 16) |
                       (std::uint32_t(std::uint8_t(bytes[i + 1])) << 8) |
                       std::uint32_t(std::uint8_t(bytes[i + 2]));
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += kAlphabet[(n >> 6) & 63];
        out += kAlphabet[n & 63];
    }
    if (i < bytes.size()) {
        std::uint32_t n = std::uint32_t(std::uint8_t(bytes[i])) << 16;
        if (i + 1 < bytes.size()) n |= std::uint32_t(std::uint8_t(bytes[i + 1])) << 8;
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

void append_sse_event(std::string& out, std::string_view event, std::string_view payload) {
    out.append("event: ").append(event).append("\n");
    // No space after "data:": a reader strips exactly one, and a payload
    // line may begin with spaces of its own.
    std::size_t start = 0;
    for (;;) {
        std::size_t end = payload.find_first_of("\r\n", start);
        out.append("data:").append(payload.substr(start, end - start)).append("\n");
        if (end == std::string_view::npos) break;
        start =
            end + ((payload[end] == '\r' && end + 1 < payload.size() && payload[end + 1] == '\n')
                       ? 2
                       : 1);
    }
    out.append("\n");
}

}  // namespace jobcast::web::streams
