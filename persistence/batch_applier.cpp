#include "persistence/batch_applier.hpp"

#include "protocol/json.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <span>

#include "persistence/event_block.hpp"
#include "persistence/log.hpp"

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
constexpr const char* kUpdateCheckpoint = "UPDATE jobs SET checkpoint = ?2 WHERE pk = ?1";
constexpr const char* kInsertBlock =
    "INSERT INTO events(job_pk, first_seq, last_seq, body) VALUES(?1, ?2, ?3, ?4)";

// Beyond this many cached jobs, the ones not running are dropped after a commit.
constexpr std::size_t kMaxCachedJobs = 100'000;

UnixMs resolve_now(UnixMs now) {
    if (now != 0) return now;
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

UnixUs now_us() {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

// {"state":S,"attempt":A[,"worker":W][,"reason":R]}
std::string state_event_data(JobState state, int attempt, std::string_view worker,
                             std::string_view reason) {
    std::string data = "{\"state\":\"";
    data += to_string(state);
    data += "\",\"attempt\":";
    data += std::to_string(attempt);
    if (!worker.empty()) {
        data += ",\"worker\":";
        json::append_quoted(data, worker);
    }
    if (!reason.empty()) {
        data += ",\"reason\":";
        json::append_quoted(data, reason);
    }
    data += '}';
    return data;
}

WriteResult failure(WriteStatus status, std::string message) {
    WriteResult result;
    result.status = status;
    result.message = std::move(message);
    return result;
}

}  // namespace

std::optional<double> find_fraction(std::string_view json) {
    constexpr std::string_view kKey = "\"fraction\"";
    for (std::size_t at = json.find(kKey); at != std::string_view::npos;
         at = json.find(kKey, at + 1)) {
        std::size_t i = at + kKey.size();
        auto skip_space = [&] {
            while (i < json.size() &&
                   (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) {
                ++i;
            }
        };
        skip_space();
        if (i >= json.size() || json[i] != ':') continue;  // "fraction" was a value
        ++i;
        skip_space();
        double value = 0;
        const auto [end, ec] = std::from_chars(json.data() + i, json.data() + json.size(), value);
        if (ec != std::errc() || std::isnan(value)) return std::nullopt;
        return std::clamp(value, 0.0, 1.0);
    }
    return std::nullopt;
}

BatchApplier::BatchApplier(db::Connection& connection, std::size_t block_max_events)
    : connection_(connection),
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

void BatchApplier::append_event(CachedJob& job, EventKind kind, UnixUs ts, std::string data) {
    touch(job);
    Event& event = job.pending.emplace_back();
    event.seq = ++job.row.job.last_seq;
    event.kind = kind;
    event.ts = ts;
    event.data = std::move(data);
}

void BatchApplier::change_state(CachedJob& job, JobState state, UnixMs now, std::string_view reason,
                                bool with_worker) {
    Job& j = job.row.job;
    if (!can_transition(j.state, state)) {
        // The rules below only make legal moves; say so loudly if the model disagrees.
        logger().error("unexpected transition job={} from={} to={}", j.id, to_string(j.state),
                       to_string(state));
    }
    j.state = state;
    // A finished job keeps the worker that ran it last; a requeued one has none.
    if (state == JobState::queued) j.worker.clear();
    if (state == JobState::succeeded) j.progress = 1.0;
    if (is_terminal(state)) j.finished_at = now;
    job.changed = true;
    append_event(job, EventKind::state, now * 1000,
                 state_event_data(state, j.attempt, with_worker ? j.worker : "", reason));
}

WriteResult BatchApplier::ok_result(const CachedJob& job, bool want_job) const {
    WriteResult result;
    result.acked_wseq = job.row.wseq;
    if (want_job) result.job = job.row.job;
    return result;
}

// ---- lifecycle ops ---------------------------------------------------------

WriteResult BatchApplier::create(CreateJob& op, bool want_job) {
    Job& job = op.job;
    if (!op.idempotency_key.empty()) {
        std::string existing_id;
        {
            db::ResetOnExit reset(select_by_key_);
            select_by_key_.bind_text(1, job.owner);
            select_by_key_.bind_text(2, op.idempotency_key);
            if (select_by_key_.step()) existing_id = select_by_key_.column_text(0);
        }
        if (!existing_id.empty()) {
            // The cache, not the row: the job may have changed earlier in this batch.
            CachedJob* existing = find(existing_id);
            if (existing == nullptr) {
                return failure(WriteStatus::not_found, "idempotency key of a vanished job");
            }
            WriteResult result = ok_result(*existing, true);
            result.created = false;
            return result;
        }
    }

    const UnixMs now = resolve_now(job.created_at);
    if (job.id.empty()) job.id = new_job_id(now);
    if (job.params.empty()) job.params = "{}";
    job.created_at = now;
    job.state = JobState::queued;
    job.attempt = 0;
    job.max_attempts = std::max(1, job.max_attempts);
    job.worker.clear();
    job.progress = 0;
    job.last_seq = 0;
    job.checkpoint.clear();
    job.result.clear();
    job.error.clear();
    job.cancel_requested = false;
    job.started_at = 0;
    job.finished_at = 0;

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
        return failure(WriteStatus::conflict, "job id " + job.id + " already exists");
    }

    CachedJob cached;
    cached.row.pk = connection_.last_insert_rowid();
    cached.row.job = std::move(job);
    std::string key = cached.row.job.id;
    CachedJob& created = cache_.emplace(std::move(key), std::move(cached)).first->second;
    created.changed = true;
    append_event(created, EventKind::state, now * 1000,
                 state_event_data(JobState::queued, 0, "", ""));

    WriteResult result = ok_result(created, want_job);
    result.created = true;
    return result;
}

WriteResult BatchApplier::lease(LeaseJob& op, bool want_job) {
    CachedJob* job = find(op.job);
    if (job == nullptr) return failure(WriteStatus::not_found, "unknown job");
    Job& j = job->row.job;
    if (j.state != JobState::queued) {
        return failure(WriteStatus::conflict,
                       "job is " + std::string(to_string(j.state)) + ", not queued");
    }
    if (j.cancel_requested) return failure(WriteStatus::conflict, "cancel requested");
    if (j.attempt >= j.max_attempts) {
        return failure(WriteStatus::conflict, "no attempts left");
    }
    const UnixMs now = resolve_now(op.now);
    j.attempt += 1;
    j.worker = std::move(op.worker);
    j.started_at = now;
    job->row.wseq = 0;
    change_state(*job, JobState::running, now, "", /*with_worker=*/true);
    return ok_result(*job, want_job);
}

WriteStatus BatchApplier::check_lease(const CachedJob* job, int attempt, std::uint64_t wseq,
                                      WriteResult& result) const {
    auto reject = [&](WriteStatus status, std::string message) {
        result.status = status;
        result.message = std::move(message);
        return status;
    };
    if (job == nullptr) return reject(WriteStatus::not_found, "unknown job");
    const Job& j = job->row.job;
    if (attempt != j.attempt) {
        return reject(WriteStatus::conflict, "lease lost: attempt " + std::to_string(attempt) +
                                                 " is not the current attempt " +
                                                 std::to_string(j.attempt));
    }
    result.acked_wseq = job->row.wseq;
    // Before the state check: a resent message of a finished attempt is still
    // acknowledged, so its worker stops resending it.
    if (wseq <= job->row.wseq) return reject(WriteStatus::duplicate, "already committed");
    if (j.state != JobState::running) {
        return reject(WriteStatus::conflict,
                      "not running: job is " + std::string(to_string(j.state)));
    }
    if (wseq > job->row.wseq + 1) {
        return reject(WriteStatus::gap, "expected wseq " + std::to_string(job->row.wseq + 1) +
                                            ", got " + std::to_string(wseq));
    }
    return WriteStatus::ok;
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

WriteResult BatchApplier::append(AppendChunk& op, bool want_job, CommittedBatch& batch) {
    CachedJob* job = find(op.job);
    WriteResult result;
    if (check_lease(job, op.attempt, op.wseq, result) == WriteStatus::ok) {
        if (op.kind == EventKind::state) {
            result.status = WriteStatus::conflict;
            result.message = "state events are written by the broker only";
        } else {
            if (op.kind == EventKind::progress) {
                if (auto fraction = find_fraction(op.data)) job->row.job.progress = *fraction;
            }
            job->row.wseq = op.wseq;
            append_event(*job, op.kind, op.ts != 0 ? op.ts : now_us(), std::move(op.data));
            result = ok_result(*job, want_job);
        }
    }
    add_ack(batch, op.job, op.attempt, result);
    return result;
}

WriteResult BatchApplier::save_checkpoint(SaveCheckpoint& op, bool want_job,
                                          CommittedBatch& batch) {
    CachedJob* job = find(op.job);
    WriteResult result;
    if (check_lease(job, op.attempt, op.wseq, result) == WriteStatus::ok) {
        job->row.job.checkpoint = std::move(op.bytes);
        job->row.wseq = op.wseq;
        job->checkpoint_dirty = true;
        touch(*job);
        result = ok_result(*job, want_job);
    }
    add_ack(batch, op.job, op.attempt, result);
    return result;
}

WriteResult BatchApplier::finish(FinishJob& op, bool want_job, CommittedBatch& batch) {
    CachedJob* job = find(op.job);
    WriteResult result;
    if (check_lease(job, op.attempt, op.wseq, result) == WriteStatus::ok) {
        Job& j = job->row.job;
        const UnixMs now = resolve_now(op.now);
        job->row.wseq = op.wseq;
        if (op.success) {
            std::string data = op.result.empty() ? std::string("{}") : std::move(op.result);
            j.result = data;
            append_event(*job, EventKind::result, now * 1000, std::move(data));
            change_state(*job, JobState::succeeded, now, "");
        } else {
            std::string data = "{\"message\":";
            json::append_quoted(data, op.error);
            data += '}';
            append_event(*job, EventKind::error, now * 1000, std::move(data));
            j.error = op.error;
            if (j.cancel_requested) {
                change_state(*job, JobState::cancelled, now, "cancelled");
            } else if (op.retryable && j.attempt < j.max_attempts) {
                change_state(*job, JobState::queued, now, "retry: " + op.error);
            } else {
                change_state(*job, JobState::failed, now, op.error);
            }
        }
        result = ok_result(*job, want_job);
    }
    add_ack(batch, op.job, op.attempt, result);
    return result;
}

WriteResult BatchApplier::requeue(RequeueJob& op, bool want_job) {
    CachedJob* job = find(op.job);
    if (job == nullptr) return failure(WriteStatus::not_found, "unknown job");
    Job& j = job->row.job;
    if (j.state != JobState::running) {
        return failure(WriteStatus::conflict,
                       "not running: job is " + std::string(to_string(j.state)));
    }
    if (op.attempt != j.attempt) {
        return failure(WriteStatus::conflict, "lease lost: attempt " + std::to_string(op.attempt) +
                                                  " is not the current attempt " +
                                                  std::to_string(j.attempt));
    }
    const UnixMs now = resolve_now(op.now);
    const std::string reason = op.reason.empty() ? "lease lost" : op.reason;
    if (j.cancel_requested) {
        change_state(*job, JobState::cancelled, now, "cancelled");
    } else if (j.attempt >= j.max_attempts) {
        j.error = reason + "; gave up after " + std::to_string(j.attempt) + " attempts";
        change_state(*job, JobState::failed, now, j.error);
    } else {
        change_state(*job, JobState::queued, now, reason);
    }
    return ok_result(*job, want_job);
}

WriteResult BatchApplier::cancel(CancelJob& op, bool want_job) {
    CachedJob* job = find(op.job);
    if (job == nullptr) return failure(WriteStatus::not_found, "unknown job");
    Job& j = job->row.job;
    if (is_terminal(j.state)) return failure(WriteStatus::conflict, "already finished");
    const UnixMs now = resolve_now(op.now);
    j.cancel_requested = true;
    if (j.state == JobState::queued || op.force) {
        change_state(*job, JobState::cancelled, now, "cancelled");
    } else {
        // Running: the broker tells the worker; its fail/done (or the lease
        // expiring) ends the job.
        job->changed = true;
        touch(*job);
    }
    return ok_result(*job, want_job);
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
