// A job's log folded into what a page shows: the one definition of "the state
// of a job at seq N" behind GET /v1/jobs/{id}/snapshot, written so that a
// client can mirror it event by event (web/client does the same fold). Pure:
// no store, no clock.
//
// The rules, per event kind:
//   state    state and attempt; a new attempt (`running`) clears the error and
//            cuts `text` back to what the log held at its `resume_seq` (the
//            seq its checkpoint covers; none or 0: it starts over, text ""), so
//            what a failed attempt emitted past its checkpoint is not shown
//            twice; `failed` sets the error to its reason; `succeeded` sets
//            progress 1
//   token    its text is appended to `text`
//   progress fraction -> progress when it is higher (progress never goes
//            back, not even on a retry), stage -> stage (when present)
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
#include <utility>
#include <vector>

#include "protocol/event_data.hpp"
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
    // (seq, text size after it) from the current attempt's resume point on,
    // one per token since: where a next attempt's resume_seq cuts the text.
    std::vector<std::pair<std::uint64_t, std::size_t>> marks{{0, 0}};
};

// Folds one event into `fold` (nothing when its seq is not above fold.seq);
// `data` is read_event_data(event) (unused for logs and results).
void fold_event(JobFold& fold, const Event& event, const EventData& data,
                std::size_t max_logs = kSnapshotLogs);

// Folds the events of `events` with seq > fold.seq, in order, into `fold`.
void fold_events(JobFold& fold, const std::vector<Event>& events,
                 std::size_t max_logs = kSnapshotLogs);

// The body of GET /v1/jobs/{id}/snapshot:
// {"job":{...},"seq":N,"state":S|null,"attempt":A,"text":T,"progress":P,
//  "stage":S|null,"logs":[{...},...][,"result":{...}][,"error":E]
//  [,"resume":{"seq":C,"text_length":L}]}
// `job` is the job as read with the log up to fold.seq (its last_seq); its
// result is given once, as the snapshot's own `result` (the job's is null).
// `resume`, for an unfinished job with a checkpoint: its checkpoint_seq and
// the length of `text` at that seq in UTF-16 code units (JavaScript's
// String length). A next attempt resumes there or after fold.seq, so with it
// a client folding on from the snapshot cuts the text as the whole log would.
std::string snapshot_body(Job job, const JobFold& fold);

}  // namespace jobcast::client_api
