// The data model shared by every module: jobs, their states and their events.
// Plain values, no I/O. JSON payloads travel as JSON text (already validated)
// so the broker can store and fan them out without re-serializing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jobcast {

using UnixMs = std::int64_t;  // milliseconds since the epoch (job timestamps)
using UnixUs = std::int64_t;  // microseconds since the epoch (event timestamps)

enum class JobState : std::uint8_t { queued, running, succeeded, failed, cancelled };

std::string_view to_string(JobState state);
std::optional<JobState> parse_job_state(std::string_view text);
bool is_terminal(JobState state);
// The lifecycle: queued -> running -> {succeeded, failed, cancelled, queued (retry)};
// queued -> {cancelled, failed}. Terminal states never move again.
bool can_transition(JobState from, JobState to);

enum class EventKind : std::uint8_t { state, progress, token, log, result, error };

std::string_view to_string(EventKind kind);
std::optional<EventKind> parse_event_kind(std::string_view text);

struct Job {
    std::string id;             // time-sortable, unique forever (ULID)
    std::string type;           // "llm.generate", "research", "exec", ...
    std::string owner;          // token subject; "anonymous" when auth is off
    std::string params = "{}";  // JSON object text
    int priority = 0;           // higher runs first
    JobState state = JobState::queued;
    int attempt = 0;  // 0 until first leased; 1 for the first run
    int max_attempts = 3;
    std::string worker;  // worker holding the lease (empty unless running)
    double progress = 0.0;
    std::uint64_t last_seq = 0;  // seq of the newest event in the job's log
    std::string checkpoint;      // opaque bytes from the worker
    // The job's last_seq when its checkpoint was saved: the log up to here is
    // what a next attempt resuming from the checkpoint does not emit again.
    std::uint64_t checkpoint_seq = 0;
    std::string result;  // JSON text; empty until succeeded
    std::string error;
    bool cancel_requested = false;
    UnixMs created_at = 0;
    UnixMs started_at = 0;  // start of the current attempt
    UnixMs finished_at = 0;
};

struct Event {
    std::uint64_t seq = 0;
    EventKind kind = EventKind::log;
    UnixUs ts = 0;
    std::string data = "{}";  // JSON object text
};

// An event as a store read hands it over (store::EventLog::read_into): `data`
// points into the read's buffer and is valid only while it is handed over.
struct EventView {
    std::uint64_t seq = 0;
    EventKind kind = EventKind::log;
    UnixUs ts = 0;
    std::string_view data;
};

inline EventView view_of(const Event& event) {
    return {event.seq, event.kind, event.ts, event.data};
}

// A new, unique, time-sortable job id (26-character Crockford base32 ULID).
std::string new_job_id(UnixMs now);

}  // namespace jobcast
