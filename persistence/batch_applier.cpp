#include "persistence/batch_applier.hpp"

#include <algorithm>
#include <span>

#include "persistence/event_block.hpp"

namespace jobcast::store {

namespace {

const std::string kSelectJob = select_jobs("WHERE id = ?1");
constexpr const char* kSelectIdByKey =
    "SELECT id FROM jobs WHERE owner = ?1 AND idempotency_key = ?2";
constexpr const char* kInsertJob =
    "INSERT INTO jobs(id, type, owner, params, priority, state, attempt, max_attempts, "
    "created_at, idempotency_key) VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9)";
// The mutable fields, written once per touched job at the end of a batch: all
// of them after a lifecycle change, else only what chunks move (so the indexes
// on state and finished_at are left alone).
constexpr const char* kUpdateJob =
    "UPDATE jobs SET state = ?2, attempt = ?3, worker = ?4, progress = ?5, last_seq = ?6, "
    "wseq = ?7, result = ?8, error = ?9, cancel_requested = ?10, started_at = ?11, "
    "finished_at = ?12 WHERE pk = ?1";
constexpr const char* kUpdateJobProgress =
    "UPDATE jobs SET progress = ?2, last_seq = ?3, wseq = ?4 WHERE pk = ?1";
constexpr const char* kUpdateCheckpoint =
    "UPDATE jobs SET checkpoint = ?2, checkpoint_seq = ?3 WHERE pk = ?1";
constexpr const char* kInsertBlock =
    "INSERT INTO events(job_pk, first_seq, last_seq, body) VALUES(?1, ?2, ?3, ?4)";

// Beyond this many cached jobs, the ones not running are dropped after a commit.
constexpr std::size_t kMaxCachedJobs = 100'000;

WriteResult failure(WriteStatus status, std::string message) {
    WriteResult result;
    result.status = status;
    result.message = std::move(message);
    return result;
}

}  // namespace

BatchApplier::BatchApplier(db::Connection& connection, std::size_t block_max_events,
                           const Clock& clock)
    : connection_(connection),
      clock_(clock),
      block_max_events_(std::max<std::size_t>(1, block_max_events)),
      select_job_(connection, kSelectJob),
      select_by_key_(connection, kSelectIdByKey),
      insert_job_(connection, kInsertJob),
      update_job_(connection, kUpdateJob),
      update_progress_(connection, kUpdateJobProgress),
      update_checkpoint_(connection, kUpdateCheckpoint),
      insert_block_(connection, kInsertBlock) {}

WriteResult BatchApplier::apply(WriteOp& op, bool want_job, CommittedBatch& batch) {
    return std::visit(
        [&](auto& o) -> WriteResult {
            using Op = std::decay_t<decltype(o)>;
            if constexpr (std::is_same_v<Op, CreateJob>) return create(o, want_job);
            if constexpr (std::is_same_v<Op, LeaseJob>) return lease(o, want_job);
            if constexpr (std::is_same_v<Op, AppendChunk>) return append(o, want_job, batch);
            if constexpr (std::is_same_v<Op, SaveCheckpoint>) {
                return save_checkpoint(o, want_job, batch);
            }
            if constexpr (std::is_same_v<Op, FinishJob>) return finish(o, want_job, batch);
            if constexpr (std::is_same_v<Op, RequeueJob>) return requeue(o, want_job);
            if constexpr (std::is_same_v<Op, CancelJob>) return cancel(o, want_job);
        },
        op);
}

// ---- the cache -------------------------------------------------------------

BatchApplier::CachedJob* BatchApplier::find(std::string_view id) {
    if (auto it = cache_.find(id); it != cache_.end()) return &it->second;
    db::ResetOnExit reset(select_job_);
    select_job_.bind_text(1, id);
    if (!select_job_.step()) return nullptr;
    CachedJob loaded;
    loaded.row = read_job_row(select_job_);
    std::string key = loaded.row.job.id;
    return &cache_.emplace(std::move(key), std::move(loaded)).first->second;
}

void BatchApplier::touch(CachedJob& job) {
    if (!job.touched) {
        job.touched = true;
        touched_.push_back(&job);
    }
}

void BatchApplier::append_event(CachedJob& job, Event event) {
    touch(job);
    event.seq = ++job.row.job.last_seq;
    job.pending.push_back(std::move(event));
}

UnixMs BatchApplier::now_ms(UnixMs from_op) const {
    return from_op != 0 ? from_op : clock_.unix_ms();
}

WriteResult BatchApplier::keep(CachedJob& job, domain::Decision& decision, bool want_job) {
    WriteResult result;
    result.status = decision.status;
    result.message = std::move(decision.message);
    result.acked_wseq = decision.acked_wseq;
    if (!decision.ok()) return result;
    touch(job);
    for (Event& event : decision.events)
        append_event(job, std::move(event));
    if (decision.lifecycle_changed) job.changed = true;
    if (want_job) result.job = job.row.job;
    return result;
}

template <class Rule>
WriteResult BatchApplier::decide(std::string_view id, bool want_job, Rule&& rule) {
    CachedJob* job = find(id);
    if (job == nullptr) return failure(WriteStatus::not_found, "unknown job");
    domain::Decision decision = rule(*job);
    return keep(*job, decision, want_job);
}

void BatchApplier::add_ack(CommittedBatch& batch, std::string_view job, int attempt,
                           const WriteResult& result) const {
    WriteAck& ack = batch.acks.emplace_back();
    ack.job = job;
    ack.attempt = attempt;
    ack.acked_wseq = result.acked_wseq;
    ack.status = result.status;
    ack.message = result.message;
}

// ---- ops: load the job, let the lifecycle rules decide, keep the outcome ----

WriteResult BatchApplier::create(CreateJob& op, bool want_job) {
    if (!op.idempotency_key.empty()) {
        std::string existing_id;
        {
            db::ResetOnExit reset(select_by_key_);
            select_by_key_.bind_text(1, op.job.owner);
            select_by_key_.bind_text(2, op.idempotency_key);
            if (select_by_key_.step()) existing_id = select_by_key_.column_text(0);
        }
        if (!existing_id.empty()) {
            // The cache, not the row: the job may have changed earlier in this batch.
            CachedJob* existing = find(existing_id);
            if (existing == nullptr) {
                return failure(WriteStatus::not_found, "idempotency key of a vanished job");
            }
            WriteResult result;
            result.acked_wseq = existing->row.wseq;
            result.job = existing->row.job;
            result.created = false;
            return result;
        }
    }

    const UnixMs now = now_ms(op.job.created_at);
    CachedJob created;
    created.row.job = std::move(op.job);
    domain::Decision decision = domain::create(created.row, now);
    const Job& job = created.row.job;
    if (job.id.empty()) created.row.job.id = new_job_id(now);

    try {
        db::ResetOnExit reset(insert_job_);
        insert_job_.bind_text(1, job.id);
        insert_job_.bind_text(2, job.type);
        insert_job_.bind_text(3, job.owner);
        insert_job_.bind_text(4, job.params);
        insert_job_.bind(5, job.priority);
        insert_job_.bind_text(6, state_column(job.state));
        insert_job_.bind(7, job.max_attempts);
        insert_job_.bind(8, static_cast<std::int64_t>(job.created_at));
        if (op.idempotency_key.empty()) {
            insert_job_.bind_null(9);
        } else {
            insert_job_.bind_text(9, op.idempotency_key);
        }
        insert_job_.step();
    } catch (const db::Error& error) {
        // A constraint only undoes this statement; the transaction goes on.
        if (!error.is_constraint()) throw;
        // The id is taken: by this very job when the create is a retry.
        CachedJob* existing = find(job.id);
        if (existing == nullptr) {
            return failure(WriteStatus::conflict, "job id " + job.id + " already exists");
        }
        domain::Decision again = domain::create_again(existing->row, job);
        if (!again.ok()) return failure(again.status, std::move(again.message));
        WriteResult result;
        result.acked_wseq = again.acked_wseq;
        result.job = existing->row.job;
        result.created = false;
        return result;
    }

    created.row.pk = connection_.last_insert_rowid();
    std::string key = job.id;
    CachedJob& cached = cache_.emplace(std::move(key), std::move(created)).first->second;
    WriteResult result = keep(cached, decision, want_job);
    result.created = true;
    return result;
}

WriteResult BatchApplier::lease(LeaseJob& op, bool want_job) {
    return decide(op.job, want_job, [&](CachedJob& job) {
        return domain::lease(job.row, std::move(op.worker), now_ms(op.now));
    });
}

WriteResult BatchApplier::append(AppendChunk& op, bool want_job, CommittedBatch& batch) {
    WriteResult result = decide(op.job, want_job, [&](CachedJob& job) {
        domain::Decision decision =
            domain::accept_chunk(job.row, op.attempt, op.wseq, op.kind, op.data);
        if (decision.ok()) {
            // The worker's event, as sent.
            const UnixUs ts = op.ts != 0 ? op.ts : clock_.unix_us();
            append_event(job, Event{0, op.kind, ts, std::move(op.data)});
        }
        return decision;
    });
    add_ack(batch, op.job, op.attempt, result);
    return result;
}

WriteResult BatchApplier::save_checkpoint(SaveCheckpoint& op, bool want_job,
                                          CommittedBatch& batch) {
    WriteResult result = decide(op.job, want_job, [&](CachedJob& job) {
        domain::Decision decision =
            domain::accept_checkpoint(job.row, op.attempt, op.wseq, std::move(op.bytes));
        if (decision.ok()) job.checkpoint_dirty = true;
        return decision;
    });
    add_ack(batch, op.job, op.attempt, result);
    return result;
}

WriteResult BatchApplier::finish(FinishJob& op, bool want_job, CommittedBatch& batch) {
    WriteResult result = decide(op.job, want_job, [&](CachedJob& job) {
        const UnixMs now = now_ms(op.now);
        return op.success ? domain::finish(job.row, op.attempt, op.wseq, std::move(op.result), now)
                          : domain::fail(job.row, op.attempt, op.wseq, std::move(op.error),
                                         op.retryable, now);
    });
    add_ack(batch, op.job, op.attempt, result);
    return result;
}

WriteResult BatchApplier::requeue(RequeueJob& op, bool want_job) {
    return decide(op.job, want_job, [&](CachedJob& job) {
        return domain::requeue(job.row, op.attempt, op.reason, now_ms(op.now));
    });
}

WriteResult BatchApplier::cancel(CancelJob& op, bool want_job) {
    return decide(op.job, want_job, [&](CachedJob& job) {
        return domain::cancel(job.row, op.force, now_ms(op.now));
    });
}

// ---- end of batch ----------------------------------------------------------

void BatchApplier::write_pending() {
    for (CachedJob* job : touched_) {
        const std::vector<Event>& events = job->pending;
        for (std::size_t i = 0; i < events.size(); i += block_max_events_) {
            const std::size_t n = std::min(block_max_events_, events.size() - i);
            encode_block(std::span<const Event>(events.data() + i, n), block_);
            insert_block_.bind(1, job->row.pk);
            insert_block_.bind(2, events[i].seq);
            insert_block_.bind(3, events[i + n - 1].seq);
            insert_block_.bind_blob(4, block_);
            insert_block_.run();
        }
        const Job& j = job->row.job;
        if (job->changed) {
            update_job_.bind(1, job->row.pk);
            update_job_.bind_text(2, state_column(j.state));
            update_job_.bind(3, j.attempt);
            update_job_.bind_text(4, j.worker);
            update_job_.bind(5, j.progress);
            update_job_.bind(6, j.last_seq);
            update_job_.bind(7, job->row.wseq);
            update_job_.bind_text(8, j.result);
            update_job_.bind_text(9, j.error);
            update_job_.bind(10, j.cancel_requested);
            update_job_.bind(11, static_cast<std::int64_t>(j.started_at));
            update_job_.bind(12, static_cast<std::int64_t>(j.finished_at));
            update_job_.run();
        } else {
            update_progress_.bind(1, job->row.pk);
            update_progress_.bind(2, j.progress);
            update_progress_.bind(3, j.last_seq);
            update_progress_.bind(4, job->row.wseq);
            update_progress_.run();
        }
        if (job->checkpoint_dirty) {
            update_checkpoint_.bind(1, job->row.pk);
            update_checkpoint_.bind_blob(2, j.checkpoint);
            update_checkpoint_.bind(3, j.checkpoint_seq);
            update_checkpoint_.run();
        }
    }
}

void BatchApplier::committed(CommittedBatch& batch) {
    for (CachedJob* job : touched_) {
        Job& j = job->row.job;
        if (!job->pending.empty()) {
            batch.event_count += job->pending.size();
            JobEvents& events = batch.events.emplace_back();
            events.job = j.id;
            events.owner = j.owner;
            events.events = std::move(job->pending);
            job->pending.clear();  // moved-from: make it a valid empty vector
        }
        if (job->changed) {
            // A snapshot without the checkpoint (opaque, possibly large bytes).
            std::string checkpoint = std::move(j.checkpoint);
            batch.job_changes.push_back(j);
            j.checkpoint = std::move(checkpoint);
        }
        job->touched = false;
        job->changed = false;
        job->checkpoint_dirty = false;
        // A finished job takes no more writes but a late duplicate, which reloads it.
        if (is_terminal(j.state)) cache_.erase(cache_.find(j.id));  // `job` dangles now
    }
    touched_.clear();

    if (cache_.size() > kMaxCachedJobs) {
        std::erase_if(cache_, [](const auto& entry) {
            return entry.second.row.job.state != JobState::running;
        });
    }
}

void BatchApplier::forget_all() {
    touched_.clear();
    cache_.clear();
}

}  // namespace jobcast::store
