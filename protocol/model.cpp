#include "protocol/model.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <mutex>
#include <random>

namespace jobcast {

std::string_view to_string(JobState state) {
    switch (state) {
        case JobState::queued:
            return "queued";
        case JobState::running:
            return "running";
        case JobState::succeeded:
            return "succeeded";
        case JobState::failed:
            return "failed";
        case JobState::cancelled:
            return "cancelled";
    }
    return "unknown";
}

std::optional<JobState> parse_job_state(std::string_view text) {
    if (text == "queued") return JobState::queued;
    if (text == "running") return JobState::running;
    if (text == "succeeded") return JobState::succeeded;
    if (text == "failed") return JobState::failed;
    if (text == "cancelled") return JobState::cancelled;
    return std::nullopt;
}

bool is_terminal(JobState state) {
    return state == JobState::succeeded || state == JobState::failed ||
           state == JobState::cancelled;
}

bool can_transition(JobState from, JobState to) {
    switch (from) {
        case JobState::queued:
            // Cancelled before it ran, or failed without running (e.g. no worker
            // type will ever take it, or attempts exhausted while queued).
            return to == JobState::running || to == JobState::cancelled || to == JobState::failed;
        case JobState::running:
            // queued again = a retry after a lost lease or a retryable failure.
            return to == JobState::succeeded || to == JobState::failed ||
                   to == JobState::cancelled || to == JobState::queued;
        case JobState::succeeded:
        case JobState::failed:
        case JobState::cancelled:
            return false;
    }
    return false;
}

std::string_view to_string(EventKind kind) {
    switch (kind) {
        case EventKind::state:
            return "state";
        case EventKind::progress:
            return "progress";
        case EventKind::token:
            return "token";
        case EventKind::log:
            return "log";
        case EventKind::result:
            return "result";
        case EventKind::error:
            return "error";
    }
    return "unknown";
}

std::optional<EventKind> parse_event_kind(std::string_view text) {
    if (text == "state") return EventKind::state;
    if (text == "progress") return EventKind::progress;
    if (text == "token") return EventKind::token;
    if (text == "log") return EventKind::log;
    if (text == "result") return EventKind::result;
    if (text == "error") return EventKind::error;
    return std::nullopt;
}

namespace {

constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr std::uint64_t kMaxTime = (std::uint64_t{1} << 48) - 1;

// The generator state of one process. Within one millisecond the 80-bit random
// part is incremented instead of redrawn, so ids made in the same millisecond by
// this process still sort in creation order (the ULID "monotonic" variant). A
// different millisecond, earlier or later, draws afresh: the time part always
// says when the caller's clock created the job (tests inject clocks that jump).
struct UlidState {
    std::mutex mutex;
    std::random_device entropy;  // getrandom()-backed: no state to duplicate on fork
    std::uint64_t last_time = 0;
    std::uint16_t random_high = 0;  // bits 79..64 of the random part
    std::uint64_t random_low = 0;   // bits 63..0
    bool started = false;
};

UlidState& ulid_state() {
    static UlidState state;
    return state;
}

}  // namespace

std::string new_job_id(UnixMs now) {
    std::uint64_t time = now < 0 ? 0 : static_cast<std::uint64_t>(now);
    if (time > kMaxTime) time = kMaxTime;

    std::uint64_t high;
    std::uint64_t low;
    {
        UlidState& state = ulid_state();
        std::lock_guard lock(state.mutex);
        if (state.started && time == state.last_time) {
            if (++state.random_low == 0 && ++state.random_high == 0) {
                // 2^80 ids in one millisecond: borrow the next millisecond.
                time = state.last_time = std::min(time + 1, kMaxTime);
            }
        } else {
            auto draw32 = [&] { return static_cast<std::uint64_t>(state.entropy()); };
            state.last_time = time;
            state.random_low = (draw32() << 32) | draw32();
            state.random_high = static_cast<std::uint16_t>(draw32());
            state.started = true;
        }
        high = state.random_high;
        low = state.random_low;
    }

    // 128 bits: 48-bit time, 80-bit random; 26 base32 digits carry 130 bits, so
    // the first digit holds only the top 3 bits (always 0-7).
    std::array<char, 26> out;
    std::uint64_t bits_hi = (time << 16) | high;  // top 64 bits of the 128
    std::uint64_t bits_lo = low;
    for (int i = 25; i >= 0; --i) {
        out[i] = kCrockford[bits_lo & 0x1f];
        bits_lo = (bits_lo >> 5) | (bits_hi << 59);
        bits_hi >>= 5;
    }
    return std::string(out.data(), out.size());
}

}  // namespace jobcast
