// Where a job's next state is decided: every lifecycle rule (create, lease, a
// worker's chunk/checkpoint/done/fail, retry and max_attempts, cancel, requeue
// after a lost lease) as a function over the job's record. No storage, no
// clock, no I/O: a store loads the record, calls the rule for the op, and
// keeps what the rule left in the record plus the events it returns. The
// SQLite applier (persistence/batch_applier.*) follows these rules; any other
// store follows the same ones.
//
// Every rule either refuses the op (status other than ok, `message` says why,
// the record is left exactly as it was) or moves the record to its next state
// and lists the events to append to the job's log.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/model.hpp"

namespace jobcast::domain {

enum class WriteStatus {
    ok,
    duplicate,  // wseq already committed: nothing written, safe to ack
    gap,        // wseq skips ahead: nothing written; the worker must resend from wseq+1
    not_found,  // unknown job
    conflict,   // illegal transition, or the attempt does not hold the lease
};
std::string_view to_string(WriteStatus status);

// A job as a store keeps it: the shared record plus the worker's message
// counter of the current attempt, which clients never see.
struct JobRecord {
    Job job;
    std::uint64_t wseq = 0;  // last committed worker message of the current attempt
};

// What a rule decided.
struct Decision {
    WriteStatus status = WriteStatus::ok;
    std::string message;  // why the op was refused
    // The committed wseq after the op, acknowledged to the worker. A refused
    // worker message of the attempt holding the lease reports the committed
    // one (a duplicate is acked with it); any other refusal reports 0.
    std::uint64_t acked_wseq = 0;
    // The state, attempt or cancel flag moved: the whole record is to be
    // written and the change announced.
    bool lifecycle_changed = false;
    // Appended to the job's log in this order; the store assigns their seqs.
    std::vector<Event> events;

    bool ok() const { return status == WriteStatus::ok; }
};

// The record of a new job, as submitted: queued, attempt 0, no run yet.
// `record.job` brings id, type, owner, params, priority and max_attempts (at
// least 1 is kept); the rest is reset. Never refused.
Decision create(JobRecord& record, UnixMs now);

// A create whose job id is taken by `existing`. The same submission again
// (`submitted` as create() left it: same owner, type, params, priority,
// max_attempts and creation time) is a retry whose first outcome was unknown:
// accepted without a change, and the store answers with the job as it is now.
// Anything else under that id is refused.
Decision create_again(const JobRecord& existing, const Job& submitted);

// A worker takes the job: queued -> running, attempt + 1, wseq back to 0.
// With a checkpoint, the running event's `resume_seq` is its checkpoint_seq:
// the new attempt resumes after that point of the log (absent: from the start).
// Refused while not queued, once a cancel is requested, or with no attempt left.
// The same lease again (the job runs for that worker since `now`: a retry whose
// first outcome was unknown) is accepted without a change.
Decision lease(JobRecord& record, std::string worker, UnixMs now);

// The lease and wseq rules every message of a worker's attempt passes (chunk,
// checkpoint, done, fail): the attempt must hold the lease, a wseq already
// committed is a duplicate (even after the job finished, so that its worker
// stops resending), the job must be running, and a wseq past the next one is
// a gap. Ok when `wseq` is the next one.
Decision check_worker_message(const JobRecord& record, int attempt, std::uint64_t wseq);

// A worker's progress/token/log event. On ok the store appends the event as
// the worker sent it (not listed in `events`); a progress event's fraction
// becomes the job's progress. State events are the broker's alone.
Decision accept_chunk(JobRecord& record, int attempt, std::uint64_t wseq, EventKind kind,
                      std::string_view data);

// A worker's checkpoint: its bytes replace the job's, without an event; the
// job's last_seq becomes its checkpoint_seq (what the checkpoint covers).
Decision accept_checkpoint(JobRecord& record, int attempt, std::uint64_t wseq, std::string bytes);

// A worker's done: a result event ("{}" when `result` is empty), then succeeded.
Decision finish(JobRecord& record, int attempt, std::uint64_t wseq, std::string result, UnixMs now);

// A worker's fail: an error event, then cancelled (a cancel was requested),
// queued again (retryable, and attempts left) or failed.
Decision fail(JobRecord& record, int attempt, std::uint64_t wseq, std::string error, bool retryable,
              UnixMs now);

// The lease of `attempt` was lost (worker gone, broker restart): cancelled (a
// cancel was requested), queued again (attempts left) or failed. `reason`
// defaults to "lease lost". Refused unless that attempt is running.
Decision requeue(JobRecord& record, int attempt, std::string_view reason, UnixMs now);

// A client's cancel. A queued job is cancelled now; a running one is flagged
// and its worker asked to stop (its fail or done, or its lease expiring, ends
// the job), unless `force` ends it now. Refused once the job has finished.
Decision cancel(JobRecord& record, bool force, UnixMs now);

// The fraction of a progress event: the number after the "fraction" key of a
// (validated) JSON object, clamped to [0, 1]. A cheap scan, not a parse.
std::optional<double> find_fraction(std::string_view json);

}  // namespace jobcast::domain
