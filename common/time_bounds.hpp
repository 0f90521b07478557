// Times and integers that come from outside the broker (token claims exp, nbf
// and iat; worker timestamps ts) and the arithmetic done on them (expiry
// timers, exp + leeway, stream latency). One place for the bounds and the
// overflow-free operations, used by the JWT verifier, the worker protocol
// codec and the streaming code. Header-only and pure: the clock is always a
// parameter.
//
// The bounds: a unix time is in [0, 9999-12-31T23:59:59Z]. Anything outside is
// refused (a token claim) or replaced (a worker timestamp) where it is read,
// so the code behind never sees it; the operations below stay defined for any
// int64 all the same.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>

namespace jobcast::time_bounds {

// 9999-12-31T23:59:59Z, the last second of a four-digit year.
inline constexpr std::int64_t kMaxUnixSeconds = 253'402'300'799;
// The last microsecond of that second.
inline constexpr std::int64_t kMaxUnixMicros = kMaxUnixSeconds * 1'000'000 + 999'999;
// The longest timer set from a unix time (a token's expiry): about ten years.
// A later deadline is still honoured, by the next check after the timer fires.
inline constexpr std::int64_t kMaxTimerSeconds = 3'650LL * 86'400;

// a + b and a - b, clamped to [INT64_MIN, INT64_MAX] instead of overflowing.
constexpr std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
    std::int64_t out = 0;
    if (__builtin_add_overflow(a, b, &out)) {
        return b > 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
    }
    return out;
}
constexpr std::int64_t saturating_sub(std::int64_t a, std::int64_t b) {
    std::int64_t out = 0;
    if (__builtin_sub_overflow(a, b, &out)) {
        return b < 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
    }
    return out;
}

// A NumericDate (RFC 7519 2) as JSON or msgpack carries it, one function per
// number type: the unix second it names, or nullopt when it is outside
// [0, kMaxUnixSeconds] (and for NaN and the infinities). A fraction of a
// second is dropped.
constexpr std::optional<std::int64_t> unix_seconds_from_int(std::int64_t value) {
    if (value < 0 || value > kMaxUnixSeconds) return std::nullopt;
    return value;
}
constexpr std::optional<std::int64_t> unix_seconds_from_uint(std::uint64_t value) {
    if (value > static_cast<std::uint64_t>(kMaxUnixSeconds)) return std::nullopt;
    return static_cast<std::int64_t>(value);
}
inline std::optional<std::int64_t> unix_seconds_from_double(double value) {
    // Written so that NaN fails the test; kMaxUnixSeconds is exact as a double.
    if (!(value >= 0.0 && value <= static_cast<double>(kMaxUnixSeconds))) return std::nullopt;
    return static_cast<std::int64_t>(value);
}

// A worker's event timestamp (unix microseconds) the broker can keep: after
// 1970 and before year 10000. Anything else is treated as absent.
constexpr bool plausible_unix_micros(std::int64_t ts) {
    return ts > 0 && ts <= kMaxUnixMicros;
}

// now - since, for a latency: only when 0 < since <= now (a timestamp from a
// clock ahead of ours, or none, gives nothing rather than a negative or
// overflowing difference).
constexpr std::optional<std::int64_t> elapsed_since(std::int64_t since, std::int64_t now) {
    if (since <= 0 || since > now) return std::nullopt;
    return now - since;
}

// How long from `now` (time since the unix epoch) until the unix second
// `deadline`: zero when it has passed, at most kMaxTimerSeconds. The distance
// is computed in whole seconds before anything is converted to a finer unit,
// so no deadline (any int64) and no clock value can overflow.
inline std::chrono::nanoseconds duration_until(std::int64_t deadline,
                                               std::chrono::nanoseconds now) {
    // now = now_seconds + into_second, with into_second in [0, 1 s), by integer
    // division (std::chrono::floor could overflow for the most negative clocks).
    constexpr std::int64_t kPerSecond = 1'000'000'000;
    std::int64_t now_seconds = now.count() / kPerSecond;
    std::int64_t into_second = now.count() % kPerSecond;
    if (into_second < 0) {
        now_seconds -= 1;
        into_second += kPerSecond;
    }
    const std::int64_t left = saturating_sub(deadline, now_seconds);
    if (left <= 0) return std::chrono::nanoseconds::zero();
    if (left > kMaxTimerSeconds) return std::chrono::seconds(kMaxTimerSeconds);
    // Whole seconds left minus the part of the current second already gone:
    // positive, since at least one whole second was left.
    return std::chrono::seconds(left) - std::chrono::nanoseconds(into_second);
}

}  // namespace jobcast::time_bounds
