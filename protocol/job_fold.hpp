// A job's log folded into what a page shows: the one definition of "the state
// of a job at seq N" behind GET /v1/jobs/{id}/snapshot, written so that a
// client can mirror it event by event (web/client does the same fold). Pure:
// no store, no clock.
//
// The rules, per event kind:
//   state    state and attempt; a new attempt (`running`) clears the error;
//            `failed` sets the error to its reason; `succeeded` sets progress 1
//   token    its text is appended to `text` (every attempt's tokens, in order)
//   progress fraction -> progress, stage -> stage (each only when present)
//   log      its data joins `logs`, of which only the last `max_logs` are kept
//   result   its data becomes `result`
//   error    its message becomes `error`
// Folding events one at a time or in any split gives the same state, so a
// snapshot at seq N followed by the events after N equals the whole log folded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "protocol/model.hpp"

namespace jobcast::client_api {

// How many log lines a snapshot keeps (the newest ones).
inline constexpr std::size_t kSnapshotLogs = 100;

struct JobFold {
    std::uint64_t seq = 0;  // the last event folded in
    std::optional<JobState> state;
    int attempt = 0;
    std::string text;
    double progress = 0;
    std::optional<std::string> stage;
    std::deque<std::string> logs;  // each a log event's data (JSON object text)
    std::string result;            // JSON text; empty until a result event
    std::string error;             // empty: none
};

// Folds the events of `events` with seq > fold.seq, in order, into `fold`.
void fold_events(JobFold& fold, const std::vector<Event>& events,
                 std::size_t max_logs = kSnapshotLogs);

// The body of GET /v1/jobs/{id}/snapshot:
// {"job":{...},"seq":N,"state":S|null,"attempt":A,"text":T,"progress":P,
//  "stage":S|null,"logs":[{...},...][,"result":{...}][,"error":E]}
// `job` is the job as read with the log up to fold.seq (its last_seq); its
// result is given once, as the snapshot's own `result` (the job's is null).
std::string snapshot_body(Job job, const JobFold& fold);

}  // namespace jobcast::client_api
