// The contract suite's harness: a Session runs ops through one store and
// writes down everything the store answers (results, what its commit listener
// got, reads) as a Transcript; for_each_store runs one scenario through every
// store under test and checks that their transcripts agree with the first's.
//
// Every op carries its own time (created_at, now, ts), so even timestamps are
// the same from store to store.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "persistence/store.hpp"
#include "store_under_test.hpp"

namespace jobcast::contract {

using store::AppendChunk;
using store::CancelJob;
using store::CommittedBatch;
using store::CreateJob;
using store::FinishJob;
using store::LeaseJob;
using store::ListQuery;
using store::RequeueJob;
using store::SaveCheckpoint;
using store::WriteOp;
using store::WriteResult;
using store::WriteStatus;

// ---- ops, with fixed times ------------------------------------------------

constexpr UnixMs kCreatedAt = 1'700'000'000'000;
constexpr UnixMs kLeasedAt = 1'700'000'001'000;
constexpr UnixMs kFinishedAt = 1'700'000'003'000;

Job job_spec(const std::string& id, const std::string& owner = "alice",
             const std::string& type = "test", int max_attempts = 3);
CreateJob create(const std::string& id, const std::string& idempotency_key = "",
                 const std::string& owner = "alice", int max_attempts = 3);
LeaseJob lease(const std::string& job, const std::string& worker = "w1", UnixMs at = kLeasedAt);
// A token event {"w":<wseq>} with a ts derived from the wseq.
AppendChunk chunk(const std::string& job, int attempt, std::uint64_t wseq);
AppendChunk chunk(const std::string& job, int attempt, std::uint64_t wseq, EventKind kind,
                  std::string data);
SaveCheckpoint checkpoint(const std::string& job, int attempt, std::uint64_t wseq,
                          std::string bytes);
FinishJob done(const std::string& job, int attempt, std::uint64_t wseq,
               std::string result = R"({"answer":42})");
FinishJob fail(const std::string& job, int attempt, std::uint64_t wseq, std::string error,
               bool retryable);
RequeueJob requeue(const std::string& job, int attempt, std::string reason = "worker gone");
CancelJob cancel(const std::string& job, bool force = false);

// ---- what a store answered, comparable across stores -----------------------

std::string describe(const Job& job);
std::string describe(const Event& event);
std::string describe(const WriteResult& result);

struct Transcript {
    using PerJob = std::map<std::string, std::vector<std::string>>;
    std::vector<std::string> results;  // each run() op's WriteResult, in order
    std::vector<std::string> reads;    // what the scenario read back, in order
    // From the commit listener, per job in commit order (how ops are grouped
    // into commits is the store's business; each job's order is not).
    PerJob acks;
    PerJob leases;
    PerJob job_changes;
    PerJob events;
    PerJob logs;  // each job's whole log, read back at the end
};

// Checks that `actual` (store `name`) says what `reference` said.
void check_same(const Transcript& actual, const Transcript& reference);

// ---- one store, one scenario -----------------------------------------------

class Session {
  public:
    explicit Session(const StoreUnderTest& under_test);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    store::Store& store() { return *store_; }

    // Submits `op` and waits for its result (durable by then).
    WriteResult run(WriteOp op);
    // Runs `op`, requires `status` and returns the result.
    WriteResult expect(WriteOp op, WriteStatus status);
    // One submit_many, then flush().
    void run_many(std::vector<WriteOp> ops);

    // Reads, written down in the transcript.
    std::optional<Job> get(const std::string& id);
    Job require_job(const std::string& id);
    store::ListPage list(const ListQuery& query);
    std::vector<std::pair<JobState, std::int64_t>> count_by_state();
    std::vector<Event> read(const std::string& job, std::uint64_t after, std::size_t limit,
                            std::size_t max_bytes);
    std::optional<std::uint64_t> last_seq(const std::string& job);
    std::vector<Event> log(const std::string& job);  // every event, in pages of 1000

    // What the commit listener got so far (after a flush), and the same, per job.
    std::vector<CommittedBatch> batches();
    std::vector<store::WriteAck> acks_of(const std::string& job);
    std::vector<store::LeaseOutcome> leases_of(const std::string& job);
    // Whether the listener has been given event `seq` of `job` yet: no flush,
    // so it may be asked from a completion.
    bool listener_has(const std::string& job, std::uint64_t seq);
    std::vector<Event> events_of(const std::string& job);  // events the listener was given

    // Closes the store (it commits what is queued first); reads end here.
    void close();

    // Flushes, reads back each job's log, checks that the listener was given
    // exactly the log (every event once, in seq order, all committed) and
    // returns everything written down.
    Transcript transcript();

    // Creates `id` and leases it to w1 at kLeasedAt (attempt 1); the running job.
    Job create_running(const std::string& id, int max_attempts = 3);

  private:
    // A store may give a job created with an idempotency key another id than
    // the one proposed (the Redis store puts it in the key's partition); the
    // answer carries it. The session speaks the proposed ids: it sends ops and
    // reads under the store's id and writes the proposed one down.
    const std::string& store_id(const std::string& id) const;
    const std::string& proposed_id(const std::string& id) const;
    void to_store_ids(WriteOp& op) const;
    Job renamed(Job job) const;

    std::map<std::string, std::string> store_ids_;     // proposed -> the store's
    std::map<std::string, std::string> proposed_ids_;  // the store's -> proposed
    std::mutex mutex_;
    std::vector<CommittedBatch> batches_;  // guarded by mutex_
    Transcript transcript_;
    bool closed_ = false;
    std::unique_ptr<store::Store> store_;  // last: closed before the rest goes
};

// Runs `scenario(Session&)` once per store under test, each on a fresh store,
// and compares every store's transcript with the first one's.
template <class Scenario>
void for_each_store(Scenario&& scenario) {
    std::optional<Transcript> reference;
    for (const StoreUnderTest& under_test : stores_under_test()) {
        INFO("store: " << under_test.name);
        Session session(under_test);
        scenario(session);
        Transcript transcript = session.transcript();
        if (reference) {
            check_same(transcript, *reference);
        } else {
            reference = std::move(transcript);
        }
    }
}

}  // namespace jobcast::contract
