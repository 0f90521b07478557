// common/time_bounds.hpp: the bounds and the overflow-free arithmetic every
// reader of an outside time uses (token claims, worker timestamps, expiry
// timers, stream latency). Built with UBSan: an overflow here aborts the test.
#include "common/time_bounds.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

using namespace jobcast::time_bounds;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::uint64_t kUMax = std::numeric_limits<std::uint64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr std::chrono::nanoseconds kTenYears = std::chrono::seconds(kMaxTimerSeconds);

}  // namespace

TEST_CASE("the bounds are year 9999 in seconds and microseconds") {
    CHECK(kMaxUnixSeconds == 253'402'300'799);  // 9999-12-31T23:59:59Z
    CHECK(kMaxUnixMicros == 253'402'300'799'999'999);
    CHECK(kMaxTimerSeconds == 3650 * 86'400);
}

TEST_CASE("saturating add and sub clamp at the int64 limits") {
    CHECK(saturating_add(1, 2) == 3);
    CHECK(saturating_add(kMax, 30) == kMax);
    CHECK(saturating_add(kMax, kMax) == kMax);
    CHECK(saturating_add(kMin, -1) == kMin);
    CHECK(saturating_add(kMin, kMin) == kMin);
    CHECK(saturating_add(kMax, kMin) == -1);
    CHECK(saturating_sub(5, 7) == -2);
    CHECK(saturating_sub(kMin, 30) == kMin);
    CHECK(saturating_sub(kMin, kMax) == kMin);
    CHECK(saturating_sub(kMax, -1) == kMax);
    CHECK(saturating_sub(kMax, kMin) == kMax);
    CHECK(saturating_sub(0, kMin) == kMax);
    CHECK(saturating_sub(-1, kMin) == kMax);
    CHECK(saturating_sub(kMin, kMin) == 0);
}

TEST_CASE("a NumericDate becomes a unix second only from 1970 to year 9999") {
    CHECK(unix_seconds_from_int(0) == 0);
    CHECK(unix_seconds_from_int(1'800'000'000) == 1'800'000'000);
    CHECK(unix_seconds_from_int(9'999'999'999) == 9'999'999'999);
    CHECK(unix_seconds_from_int(kMaxUnixSeconds) == kMaxUnixSeconds);
    CHECK_FALSE(unix_seconds_from_int(kMaxUnixSeconds + 1));
    CHECK_FALSE(unix_seconds_from_int(-1));
    CHECK_FALSE(unix_seconds_from_int(kMin));
    CHECK_FALSE(unix_seconds_from_int(kMax));

    CHECK(unix_seconds_from_uint(0) == 0);
    CHECK(unix_seconds_from_uint(kMaxUnixSeconds) == kMaxUnixSeconds);
    CHECK_FALSE(unix_seconds_from_uint(kMaxUnixSeconds + 1));
    CHECK_FALSE(unix_seconds_from_uint(static_cast<std::uint64_t>(kMax)));
    CHECK_FALSE(unix_seconds_from_uint(static_cast<std::uint64_t>(kMax) + 1));
    CHECK_FALSE(unix_seconds_from_uint(kUMax));

    CHECK(unix_seconds_from_double(0.0) == 0);
    CHECK(unix_seconds_from_double(-0.0) == 0);
    CHECK(unix_seconds_from_double(1'800'000'000.75) == 1'800'000'000);
    CHECK(unix_seconds_from_double(253'402'300'799.0) == kMaxUnixSeconds);
    CHECK_FALSE(unix_seconds_from_double(253'402'300'799.5));
    CHECK_FALSE(unix_seconds_from_double(-0.5));
    CHECK_FALSE(unix_seconds_from_double(1e300));
    CHECK_FALSE(unix_seconds_from_double(-1e300));
    CHECK_FALSE(unix_seconds_from_double(9.3e18));  // beyond int64: no cast is attempted
    CHECK_FALSE(unix_seconds_from_double(kInf));
    CHECK_FALSE(unix_seconds_from_double(-kInf));
    CHECK_FALSE(unix_seconds_from_double(std::nan("")));
    CHECK_FALSE(unix_seconds_from_double(std::numeric_limits<double>::denorm_min() * -1));
}

TEST_CASE("a worker timestamp is plausible only after 1970 and before year 10000") {
    CHECK(plausible_unix_micros(1));
    CHECK(plausible_unix_micros(1'700'000'000'123'456));
    CHECK(plausible_unix_micros(kMaxUnixMicros));
    CHECK_FALSE(plausible_unix_micros(kMaxUnixMicros + 1));
    CHECK_FALSE(plausible_unix_micros(0));
    CHECK_FALSE(plausible_unix_micros(-1));
    CHECK_FALSE(plausible_unix_micros(kMin));
    CHECK_FALSE(plausible_unix_micros(kMax));
}

TEST_CASE("elapsed time is measured only from a timestamp after 0 and not after now") {
    CHECK(elapsed_since(100, 250) == 150);
    CHECK(elapsed_since(250, 250) == 0);
    CHECK_FALSE(elapsed_since(251, 250));  // a clock ahead of ours
    CHECK_FALSE(elapsed_since(0, 250));
    CHECK_FALSE(elapsed_since(kMin, 1'796'405'949'788'699));  // the audit's C3 values
    CHECK_FALSE(elapsed_since(kMax, 1'796'405'949'788'699));
    CHECK(elapsed_since(1, kMax) == kMax - 1);
    CHECK_FALSE(elapsed_since(1, kMin));
}

TEST_CASE("the duration until a unix second is exact, never negative, and capped") {
    const std::chrono::nanoseconds now = 1'800'000'000s + 250ms;
    CHECK(duration_until(1'800'000'100, now) == 99s + 750ms);
    CHECK(duration_until(1'800'000'001, now) == 750ms);
    CHECK(duration_until(1'800'000'000, now) == 0ns);
    CHECK(duration_until(1'799'999'000, now) == 0ns);
    CHECK(duration_until(1'800'000'000 + kMaxTimerSeconds, now) == kTenYears - 250ms);
    // exp 9999999999 (year 2286) and the audit's 2^64-1 and INT64_MAX: ten years.
    CHECK(duration_until(9'999'999'999, now) == kTenYears);
    CHECK(duration_until(18'446'744'074, now) == kTenYears);
    CHECK(duration_until(kMax, now) == kTenYears);
    CHECK(duration_until(kMin, now) == 0ns);
    CHECK(duration_until(0, now) == 0ns);
    // Clocks at the ends of their range.
    CHECK(duration_until(kMax, std::chrono::nanoseconds(kMin)) == kTenYears);
    CHECK(duration_until(kMin, std::chrono::nanoseconds(kMin)) == 0ns);
    CHECK(duration_until(kMax, std::chrono::nanoseconds(kMax)) == kTenYears);
    CHECK(duration_until(kMin, std::chrono::nanoseconds(kMax)) == 0ns);
    // Before 1970: the part of the second already gone still counts.
    CHECK(duration_until(0, std::chrono::nanoseconds(-1)) == 1ns);
    CHECK(duration_until(-1, -1500ms) == 500ms);
}
