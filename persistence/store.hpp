// The persistence module's public face: the write operations the single
// writer thread applies (group commit), and the read interfaces (JobStore,
// EventLog) served by a pool of read-only connections. Nothing here knows
// about sockets. A second implementation (another engine) slots in behind
// the same interfaces.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "domain/job_lifecycle.hpp"
#include "protocol/model.hpp"

namespace jobcast::store {

class StreamLog;

// ---- configuration ---------------------------------------------------------

enum class Durability { normal, full };  // synchronous=NORMAL (process crash) / FULL (power loss)

struct StoreConfig {
    std::string path = "./jobcast.db";  // ":memory:" is not supported (readers need the file)
    Durability durability = Durability::normal;
    std::size_t max_batch_ops = 8192;    // group-commit cap: ops per transaction
    std::size_t max_queue_ops = 65536;   // submit() blocks beyond this (backpressure)
    std::size_t block_max_events = 256;  // events packed per stored block
    std::size_t read_connections = 4;
    std::chrono::milliseconds retention{0};  // 0 = keep forever
    std::chrono::milliseconds retention_interval{60'000};
    std::size_t retention_batch_jobs = 500;
    std::chrono::milliseconds busy_timeout{5000};  // how long a connection waits for a lock
};

// Thrown at open: unreadable file, a database written by a newer jobcast, ...
struct StoreError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---- write operations (applied in order by the writer thread) --------------

struct CreateJob {
    Job job;                      // id, type, owner, params, priority, max_attempts, created_at
    std::string idempotency_key;  // empty = none; unique per owner
};
struct LeaseJob {  // queued -> running, attempt + 1
    std::string job;
    std::string worker;
    UnixMs now = 0;
};
struct AppendChunk {  // a worker's progress/token/log event
    std::string job;
    int attempt = 0;
    std::uint64_t wseq = 0;
    EventKind kind = EventKind::token;
    UnixUs ts = 0;
    std::string data = "{}";  // JSON object text, already validated
};
struct SaveCheckpoint {
    std::string job;
    int attempt = 0;
    std::uint64_t wseq = 0;
    std::string bytes;
};
struct FinishJob {  // a worker's done or fail
    std::string job;
    int attempt = 0;
    std::uint64_t wseq = 0;
    bool success = true;
    std::string result = "{}";  // JSON object text (success)
    std::string error;          // failure message
    bool retryable = false;
    UnixMs now = 0;
};
struct RequeueJob {  // the lease was lost (worker gone, broker restart)
    std::string job;
    int attempt = 0;
    std::string reason;
    UnixMs now = 0;
    // Cluster mode: only if no broker renewed the lease for this long (by
    // the engine's clock), else refused. Zero: the caller holds the lease.
    // The single-node store keeps leases in the broker alone and ignores it.
    std::chrono::milliseconds unrenewed_for{0};
};
struct CancelJob {
    std::string job;
    bool force = false;  // end a running job now instead of asking its worker
    UnixMs now = 0;
};

using WriteOp = std::variant<CreateJob, LeaseJob, AppendChunk, SaveCheckpoint, FinishJob,
                             RequeueJob, CancelJob>;

// The outcome of an op, as the lifecycle rules decide it.
using domain::to_string;
using domain::WriteStatus;

struct WriteResult {
    WriteStatus status = WriteStatus::ok;
    std::string message;           // why, for conflict/gap/not_found
    std::optional<Job> job;        // the job after the op (lifecycle ops; chunk ops on ok)
    bool created = false;          // CreateJob: false when the idempotency key matched
    std::uint64_t acked_wseq = 0;  // the job's committed wseq for this attempt, after the op
};

// The events one commit appended to one job, in seq order.
struct JobEvents {
    std::string job;
    std::string owner;
    std::vector<Event> events;
};

// A cumulative acknowledgement owed to the worker that sent a chunk, checkpoint
// or finish op (status ok or duplicate: acked_wseq is committed).
struct WriteAck {
    std::string job;
    int attempt = 0;
    std::uint64_t acked_wseq = 0;
    WriteStatus status = WriteStatus::ok;
    std::string message;
};

// What became of one LeaseJob op: the job is leased (ok, `leased` holds it
// as it now is), or it is not (any other status; also every lease op of a
// batch that failed to commit).
struct LeaseOutcome {
    std::string job;
    WriteStatus status = WriteStatus::ok;
    std::optional<Job> leased;
};

struct CommittedBatch {
    std::vector<JobEvents> events;     // only events that are durable now
    std::vector<WriteAck> acks;        // one per chunk/checkpoint/finish op, in op order
    std::vector<LeaseOutcome> leases;  // one per LeaseJob op, in op order
    std::vector<Job> job_changes;      // jobs whose state/attempt changed in this batch
    // False for a batch that failed to commit: it reaches the listener only
    // when it held LeaseJob ops, with their outcomes (conflict) and nothing else.
    bool committed = true;
    std::size_t ops = 0;
    std::size_t event_count = 0;
    double commit_seconds = 0;
    // Stage timing (steady clock; left empty by a store that does not time
    // it): when each run of ops submitted together was submitted (time, ops),
    // when the transaction started and when it had committed.
    std::vector<std::pair<std::chrono::steady_clock::time_point, std::size_t>> submitted;
    std::chrono::steady_clock::time_point started{}, finished{};
};

using Completion = std::function<void(const WriteResult&)>;  // runs on the writer thread

// ---- read interfaces -------------------------------------------------------

struct ListQuery {
    std::string owner;
    std::optional<JobState> state;
    std::optional<std::string> type;
    std::size_t limit = 50;  // clamped to [1, 1000]
    std::string cursor;      // opaque; from the previous page's next
};
struct ListPage {
    std::vector<Job> jobs;  // newest first
    std::string next;       // empty when there is no further page
};

class JobStore {
  public:
    virtual ~JobStore() = default;
    virtual std::optional<Job> get(std::string_view id) = 0;
    virtual ListPage list(const ListQuery& query) = 0;
    // Queued and running jobs, oldest first: what a restarting broker reloads.
    virtual std::vector<Job> unfinished() = 0;
    virtual std::vector<std::pair<JobState, std::int64_t>> count_by_state() = 0;
};

// What EventLog::read_into handed over: how many events, and their data's bytes.
struct ReadTotals {
    std::size_t events = 0;
    std::size_t bytes = 0;
};
// Receives a read's events in seq order, a run at a time. The views (their
// data) are valid only during the call.
using EventVisitor = std::function<void(std::span<const EventView>)>;

// The bytes of event data in `events`, as EventLog::read counts them.
inline std::size_t page_bytes(const std::vector<Event>& events) {
    std::size_t bytes = 0;
    for (const auto& event : events)
        bytes += event.data.size();
    return bytes;
}

class EventLog {
  public:
    virtual ~EventLog() = default;
    // Events with seq > after, in seq order, at most `limit`, and no more once
    // their data adds up to `max_bytes` or more: a page always holds at least
    // one event (when there is one), and goes past max_bytes by at most its
    // last event. So a page stopped early by either bound is recognisable:
    // it has `limit` events, or data of max_bytes or more (page_bytes).
    virtual std::vector<Event> read(std::string_view job, std::uint64_t after, std::size_t limit,
                                    std::size_t max_bytes) = 0;
    std::vector<Event> read(std::string_view job, std::uint64_t after, std::size_t limit) {
        return read(job, after, limit, std::numeric_limits<std::size_t>::max());
    }
    // The same page handed to `visit` as views into what the store read, with
    // no copy of any event: what a replay writes straight into its frames. This
    // default adapts read() (for an engine whose read makes Events anyway).
    virtual ReadTotals read_into(std::string_view job, std::uint64_t after, std::size_t limit,
                                 std::size_t max_bytes, const EventVisitor& visit) {
        const std::vector<Event> events = read(job, after, limit, max_bytes);
        std::vector<EventView> views;
        views.reserve(events.size());
        for (const Event& event : events)
            views.push_back(view_of(event));
        if (!views.empty()) visit(views);
        return {events.size(), page_bytes(events)};
    }
    // nullopt for an unknown job.
    virtual std::optional<std::uint64_t> last_seq(std::string_view job) = 0;
};

// ---- the store -------------------------------------------------------------

class Store {
  public:
    // Writer thread, after COMMIT (and after a failed batch that held lease ops).
    using CommitListener = std::function<void(CommittedBatch&)>;

    // Opens (creating if needed) and migrates the database, starts the writer
    // and retention threads. Throws StoreError.
    static std::unique_ptr<Store> open(const StoreConfig& config, CommitListener on_commit = {});
    virtual ~Store() = default;

    // Thread-safe. Blocks while the writer's queue is full.
    virtual void submit(WriteOp op, Completion done = {}) = 0;
    // Several ops that land in the same transaction, in order. Each op is
    // moved out and `ops` is left empty with its capacity, so a caller that
    // fills one vector batch after batch allocates it once.
    virtual void submit_many(std::vector<WriteOp>&& ops) = 0;
    // Blocks until everything submitted before the call is committed.
    virtual void flush() = 0;
    // Commits what is queued, then stops the writer and retention threads. Idempotent.
    virtual void close() = 0;

    virtual JobStore& jobs() = 0;
    virtual EventLog& events() = 0;
    // The Durable Streams created over HTTP (stream_log.hpp); null for an
    // engine that does not keep them (yet).
    virtual StreamLog* streams() { return nullptr; }

    // 32 random bytes made once with the database and kept in it: the broker
    // derives the worker sessions it hands out from them, so a worker's
    // session still holds after a broker restart. Secret: never logged.
    virtual const std::string& worker_session_key() const = 0;

    // Runs one retention pass now; returns the number of jobs deleted.
    virtual std::size_t run_retention(UnixMs now) = 0;
};

}  // namespace jobcast::store
