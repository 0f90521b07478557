// The Durable Streams wire details: offsets and sentinels, the header values
// it validates, cursors, and SSE framing that payloads cannot break out of.
#include "web/streams/stream_protocol.hpp"

#include <catch2/catch.hpp>

namespace jobcast::web::streams {
namespace {

TEST_CASE("offsets are twenty digits of seq and sort as positions do") {
    CHECK(format_offset(42) == "00000000000000000042");
    CHECK(format_offset(9) < format_offset(10));
    auto after = parse_offset(format_offset(42));
    REQUIRE(after);
    CHECK(std::get<OffsetAfter>(*after).seq == 42);
    CHECK(std::holds_alternative<OffsetStart>(*parse_offset("-1")));
    CHECK(std::holds_alternative<OffsetNow>(*parse_offset("now")));
    for (const char* bad : {"", "1,2", "1 2", "-2", "abc", "../x", "99999999999999999999999"}) {
        CHECK_FALSE(parse_offset(bad));
    }
}

TEST_CASE("Stream-TTL and sub-offsets are plain non-negative integers") {
    CHECK(parse_header_number("0", kMaxTtlSeconds, true) == 0u);
    CHECK(parse_header_number("3600", kMaxTtlSeconds, true) == 3600u);
    for (const char* bad : {"", "-1", "+5", "05", "1.5", "1e3", " 5", "abc"}) {
        CHECK_FALSE(parse_header_number(bad, kMaxTtlSeconds, true));
    }
    CHECK_FALSE(parse_header_number("2147483647001", kMaxTtlSeconds, true));
}

TEST_CASE("a fork offset is a read's offset or the reference servers' zero offset") {
    CHECK(std::get<OffsetAfter>(*parse_fork_offset(format_offset(7))).seq == 7u);
    CHECK(std::holds_alternative<OffsetStart>(*parse_fork_offset("-1")));
    CHECK(std::holds_alternative<OffsetNow>(*parse_fork_offset("now")));
    CHECK(std::holds_alternative<OffsetStart>(
        *parse_fork_offset("0000000000000000_0000000000000000")));
    for (const char* bad : {"", "_", "0_", "_0", "9999999999999999_9999999999999999", "0_1", "x"}) {
        CHECK_FALSE(parse_fork_offset(bad));
    }
}

TEST_CASE("Stream-Expires-At is an RFC 3339 timestamp") {
    CHECK(parse_timestamp("1970-01-01T00:00:00Z") == 0);
    CHECK(parse_timestamp("2026-12-05T10:00:00.250Z") == 1'796'464'800'250);
    CHECK(parse_timestamp("2026-12-05T11:00:00+01:00") == 1'796'464'800'000);
    for (const char* bad :
         {"", "tomorrow", "2026-13-01T00:00:00Z", "2026-12-05 10:00:00Z", "2026-12-05T10:00:00"}) {
        CHECK_FALSE(parse_timestamp(bad));
    }
}

TEST_CASE("producer numbers are digits only, up to 2^53 - 1") {
    CHECK(parse_header_number("0", kMaxSafeInteger, false) == 0u);
    CHECK(parse_header_number("007", kMaxSafeInteger, false) == 7u);
    CHECK(parse_header_number("9007199254740991", kMaxSafeInteger, false) == 9007199254740991u);
    for (const char* bad : {"", "1abc", "1e3", "-1", "9007199254740992"}) {
        CHECK_FALSE(parse_header_number(bad, kMaxSafeInteger, false));
    }
}

TEST_CASE("a cursor echoed back moves ahead, never staying or going back") {
    const std::int64_t now = 1'728'432'000'000 + 20'000 * 100;  // interval 100
    CHECK(next_cursor(now, std::nullopt, 7) == "100");
    CHECK(next_cursor(now, std::string_view("42"), 7) == "100");
    CHECK(next_cursor(now, std::string_view("100"), 7) == "107");
    CHECK(next_cursor(now, std::string_view("150"), 0) == "151");
}

TEST_CASE("SSE data lines split at CR, LF and CRLF, so no payload ends an event") {
    std::string out;
    append_sse_event(out, "data", "a\r\nevent: control\rb\nc");
    CHECK(out == "event: data\ndata:a\ndata:event: control\ndata:b\ndata:c\n\n");
}

TEST_CASE("binary streams go out in base64") {
    CHECK(sse_needs_base64("application/octet-stream"));
    CHECK_FALSE(sse_needs_base64("text/plain"));
    CHECK_FALSE(sse_needs_base64("application/json"));
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode(std::string("\xff\x00\x10", 3)) == "/wAQ");
}

}  // namespace
}  // namespace jobcast::web::streams
