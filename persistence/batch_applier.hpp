// The SQLite side of the job lifecycle, as the writer applies it: loads each
// op's job, lets the rules of domain/job_lifecycle.hpp decide, and keeps what
// they decided: assigns seqs, and at the end of a batch writes each touched
// job's row once and its new events as packed blocks. Keeps the hot jobs' rows
// in memory so a chunk needs no SELECT. Used only on the writer thread, inside
// the writer's transaction. Internal.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "domain/job_lifecycle.hpp"
#include "persistence/database.hpp"
#include "persistence/job_row.hpp"
#include "persistence/store.hpp"

namespace jobcast::store {

class BatchApplier {
  public:
    // `clock` times the ops that do not carry their own time.
    BatchApplier(db::Connection& connection, std::size_t block_max_events,
                 const Clock& clock = Clock::system());

    // Applies `op` (its strings are moved from) inside the open transaction.
    // Chunk, checkpoint and finish ops add their WriteAck to `batch`. `want_job`:
    // fill WriteResult::job (a copy; skipped when nobody reads the result).
    WriteResult apply(WriteOp& op, bool want_job, CommittedBatch& batch);

    // Writes the rows and event blocks of the jobs touched since the last
    // committed()/forget_all(), still inside the transaction.
    void write_pending();

    // After COMMIT: moves the batch's events and job changes into `batch` and
    // evicts finished jobs from the cache.
    void committed(CommittedBatch& batch);

    // After a rollback, or when someone else changed the tables: the cache may
    // disagree with the database, so every job reloads on its next use.
    void forget_all();

    std::size_t cached_jobs() const { return cache_.size(); }

  private:
    struct CachedJob {
        JobRow row;
        bool touched = false;           // listed in touched_ (this batch)
        bool checkpoint_dirty = false;  // write the checkpoint column too
        bool changed = false;           // state, attempt or cancel flag changed: job_changes
        std::vector<Event> pending;     // appended this batch, seq order
    };
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const noexcept {
            return std::hash<std::string_view>{}(text);
        }
    };

    WriteResult create(CreateJob& op, bool want_job);
    WriteResult lease(LeaseJob& op, bool want_job);
    WriteResult append(AppendChunk& op, bool want_job, CommittedBatch& batch);
    WriteResult save_checkpoint(SaveCheckpoint& op, bool want_job, CommittedBatch& batch);
    WriteResult finish(FinishJob& op, bool want_job, CommittedBatch& batch);
    WriteResult requeue(RequeueJob& op, bool want_job);
    WriteResult cancel(CancelJob& op, bool want_job);

    CachedJob* find(std::string_view id);
    void touch(CachedJob& job);
    void append_event(CachedJob& job, Event event);  // assigns its seq
    UnixMs now_ms(UnixMs from_op) const;             // the op's time, else the clock's
    // Keeps what the rules decided for `job`: its events and whether its
    // lifecycle moved. Returns the op's result.
    WriteResult keep(CachedJob& job, domain::Decision& decision, bool want_job);
    // Lets `rule` (CachedJob& -> domain::Decision) decide for the job `id` and
    // keeps the outcome; not_found when there is no such job.
    template <class Rule>
    WriteResult decide(std::string_view id, bool want_job, Rule&& rule);
    void add_ack(CommittedBatch& batch, std::string_view job, int attempt,
                 const WriteResult& result) const;

    db::Connection& connection_;
    const Clock& clock_;
    std::size_t block_max_events_;
    db::Statement select_job_;
    db::Statement select_by_key_;
    db::Statement insert_job_;
    db::Statement update_job_;
    db::Statement update_progress_;
    db::Statement update_checkpoint_;
    db::Statement insert_block_;

    // unordered_map nodes keep their address: touched_ points into it.
    std::unordered_map<std::string, CachedJob, StringHash, std::equal_to<>> cache_;
    std::vector<CachedJob*> touched_;
    std::string block_;  // encode buffer, reused
};

}  // namespace jobcast::store
