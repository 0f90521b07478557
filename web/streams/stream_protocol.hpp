// The Durable Streams protocol's wire details, as pure functions: offsets and
// their sentinels, the header values it validates (Stream-TTL,
// Stream-Expires-At, Producer-*), the cursor that collapses live requests in
// CDNs, and the SSE framing of data and control events. No I/O, no clock of
// their own.
#pragma once

#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace jobcast::web::streams {

// Header names (matched case-insensitively).
inline constexpr std::string_view kNextOffset = "Stream-Next-Offset";
inline constexpr std::string_view kUpToDate = "Stream-Up-To-Date";
inline constexpr std::string_view kCursor = "Stream-Cursor";
inline constexpr std::string_view kClosed = "Stream-Closed";
inline constexpr std::string_view kStreamSeq = "Stream-Seq";
inline constexpr std::string_view kTtl = "Stream-TTL";
inline constexpr std::string_view kExpiresAt = "Stream-Expires-At";
inline constexpr std::string_view kSseDataEncoding = "Stream-SSE-Data-Encoding";
inline constexpr std::string_view kProducerId = "Producer-Id";
inline constexpr std::string_view kProducerEpoch = "Producer-Epoch";
inline constexpr std::string_view kProducerSeq = "Producer-Seq";
inline constexpr std::string_view kProducerExpectedSeq = "Producer-Expected-Seq";
inline constexpr std::string_view kProducerReceivedSeq = "Producer-Received-Seq";
inline constexpr std::string_view kForkedFrom = "Stream-Forked-From";
inline constexpr std::string_view kForkOffset = "Stream-Fork-Offset";
inline constexpr std::string_view kForkSubOffset = "Stream-Fork-Sub-Offset";

// An offset names the position after message `seq` (0: before the first):
// twenty decimal digits, so offsets compare as strings the way positions
// do. A job's stream numbers its messages by the events' seq, so a reader's
// offset and a WebSocket subscription's `after` are the same number.
std::string format_offset(std::uint64_t seq);

// ?offset=: absent or "-1" is the start, "now" the tail.
struct OffsetStart {};
struct OffsetNow {};
struct OffsetAfter {
    std::uint64_t seq = 0;
};
using Offset = std::variant<OffsetStart, OffsetNow, OffsetAfter>;
// nullopt for anything else (the caller answers 400).
std::optional<Offset> parse_offset(std::string_view text);
// Stream-Fork-Offset: an offset as a read takes it, or the zero offset as
// the protocol's reference servers write it ("0000000000000000_0000000000000000",
// zeros on both sides of the "_"), which clients send for the start.
std::optional<Offset> parse_fork_offset(std::string_view text);

// A header's non-negative decimal integer: digits only (no sign, space or
// point), at most `max`; `canonical`: no leading zero either.
// Stream-TTL (kMaxTtlSeconds) and Stream-Fork-Sub-Offset are canonical,
// Producer-Epoch and Producer-Seq (kMaxSafeInteger) are not.
std::optional<std::uint64_t> parse_header_number(std::string_view text, std::uint64_t max,
                                                 bool canonical);
inline constexpr std::uint64_t kMaxSafeInteger = (std::uint64_t{1} << 53) - 1;
inline constexpr std::uint64_t kMaxTtlSeconds = std::uint64_t{INT32_MAX} * 1000;
// Stream-Expires-At: an RFC 3339 timestamp ("2026-12-05T10:00:00Z",
// fractions and a numeric zone allowed) as unix ms.
std::optional<std::int64_t> parse_timestamp(std::string_view text);

// Stream-Cursor: the number of 20-second intervals since 2024-10-09, so that
// live requests in one interval share a CDN cache entry. A client that sends
// back a cursor at or ahead of the current interval gets one further ahead
// (by `jitter_intervals`, at least 1): a cached answer never loops.
std::string next_cursor(std::int64_t now_ms, std::optional<std::string_view> client_cursor,
                        std::uint32_t jitter_intervals);

// Text types and JSON are sent in SSE as they are; everything else base64.
bool sse_needs_base64(std::string_view normalized_content_type);
std::string base64_encode(std::string_view bytes);

// "event: data\n" and one "data:" line per line of `payload` (CR, LF and
// CRLF all split lines, so a payload cannot end the event early), "\n".
void append_sse_event(std::string& out, std::string_view event, std::string_view payload);

}  // namespace jobcast::web::streams
