#include "persistence/writer.hpp"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <variant>

#include "common/thread_name.hpp"
#include "persistence/log.hpp"

namespace jobcast::store {

namespace {

WriteResult closed_result() {
    WriteResult result;
    result.status = WriteStatus::conflict;
    result.message = "store is closed";
    return result;
}

}  // namespace

Writer::Writer(db::Connection connection, const StoreConfig& config, Store::CommitListener listener,
               CheckpointPolicy policy)
    : config_(config),
      policy_(policy),
      listener_(std::move(listener)),
      connection_(std::move(connection)),
      applier_(std::make_unique<BatchApplier>(connection_, config.block_max_events)),
      checkpointer_(config.path, policy) {
    // The hook replaces SQLite's auto-checkpoint: the checkpointer decides when.
    sqlite3_wal_hook(connection_.handle(), &Writer::on_wal_commit, this);
    thread_ = std::thread([this] {
        name_this_thread("jc-writer");
        run();
    });
    writer_id_ = thread_.get_id();
}

Writer::~Writer() {
    stop();
}

int Writer::on_wal_commit(void* self, sqlite3*, const char*, int pages) {
    auto* writer = static_cast<Writer*>(self);
    writer->wal_pages_ = pages;
    writer->checkpointer_.note(pages);
    return SQLITE_OK;
}

// ---- submitting ------------------------------------------------------------

void Writer::submit(WriteOp op, Completion done) {
    const auto now = std::chrono::steady_clock::now();
    {
        std::unique_lock lock(mutex_);
        // The writer thread itself (a completion that submits) must never wait
        // for room it alone can make.
        if (!on_writer_thread()) {
            space_ready_.wait(lock,
                              [&] { return queue_.size() < config_.max_queue_ops || stopped_; });
        }
        if (!stopped_) {
            const bool was_empty = queue_.empty();
            queue_.push(Entry{std::move(op), std::move(done), false, now});
            ++submitted_;
            lock.unlock();
            if (was_empty) work_ready_.notify_one();
            return;
        }
    }
    if (done) done(closed_result());
}

void Writer::submit_many(std::vector<WriteOp>&& ops) {
    if (ops.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    if (!on_writer_thread()) {
        space_ready_.wait(lock, [&] { return queue_.size() < config_.max_queue_ops || stopped_; });
    }
    if (stopped_) {
        lock.unlock();
        // Nobody to tell otherwise: these ops have no completions.
        logger().warn("ops submitted after close were dropped ops={}", ops.size());
        ops.clear();
        return;
    }
    const bool was_empty = queue_.empty();
    for (std::size_t i = 0; i < ops.size(); ++i) {
        queue_.push(Entry{std::move(ops[i]), {}, i + 1 < ops.size(), now});
    }
    submitted_ += ops.size();
    lock.unlock();
    ops.clear();  // the ops are moved out; the caller keeps the capacity
    if (was_empty) work_ready_.notify_one();
}

void Writer::flush() {
    if (on_writer_thread()) return;  // it would wait for itself
    std::unique_lock lock(mutex_);
    const std::uint64_t target = submitted_;
    progress_.wait(lock, [&] { return completed_ >= target || stopped_; });
}

void Writer::run_task(Task task, bool touches_jobs) {
    if (on_writer_thread()) throw std::logic_error("Writer::run_task called on the writer thread");
    PendingTask pending{std::move(task), touches_jobs, {}};
    std::future<void> done = pending.done.get_future();
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || stopped_) throw StoreError("store is closed");
        tasks_.push_back(&pending);
    }
    work_ready_.notify_one();
    done.get();
}

void Writer::stop() {
    // From a completion or the listener, join() would wait for itself.
    if (on_writer_thread()) throw std::logic_error("the store cannot be closed from its callbacks");
    std::call_once(stop_once_, [this] {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        work_ready_.notify_one();
        if (thread_.joinable()) thread_.join();
    });
}

// ---- the queue -------------------------------------------------------------

void Writer::OpQueue::take(std::vector<Entry>& batch, std::size_t cap) {
    // Whole submit_many groups only, even past the cap.
    while (head_ < items_.size() &&
           (batch.size() < cap || (!batch.empty() && batch.back().joins_next))) {
        batch.push_back(std::move(items_[head_++]));
    }
    if (head_ == items_.size()) {
        items_.clear();  // keeps the capacity
        head_ = 0;
    } else if (head_ >= 1024 && head_ * 2 >= items_.size()) {
        items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
    }
}

// ---- the thread ------------------------------------------------------------

void Writer::run() {
    std::vector<Entry> batch;
    batch.reserve(std::min<std::size_t>(config_.max_batch_ops, 1 << 16));
    for (;;) {
        PendingTask* task = nullptr;
        {
            std::unique_lock lock(mutex_);
            work_ready_.wait(lock, [&] { return !queue_.empty() || !tasks_.empty() || stopping_; });
            if (queue_.empty() && tasks_.empty()) {  // stopping, and all is done
                stopped_ = true;
                break;
            }
            if (!tasks_.empty()) {
                task = tasks_.front();
                tasks_.pop_front();
            }
            queue_.take(batch, config_.max_batch_ops);
        }
        space_ready_.notify_all();
        if (task != nullptr) run_pending_task(*task);
        if (!batch.empty()) commit_batch(batch);
    }
    space_ready_.notify_all();
    progress_.notify_all();

    // Leave a small file behind: everything into the database, WAL emptied.
    checkpointer_.stop();
    checkpoint(connection_.handle(), SQLITE_CHECKPOINT_TRUNCATE, "close");
    applier_.reset();  // its statements before the connection
    sqlite3_wal_hook(connection_.handle(), nullptr, nullptr);
    connection_.close();
    logger().debug("writer stopped path={}", config_.path);
}

void Writer::commit_batch(std::vector<Entry>& batch) {
    const auto started = std::chrono::steady_clock::now();
    CommittedBatch committed;
    results_.clear();
    std::string failure;
    // Lease outcomes go back in the batch; the job ids are taken first, since
    // applying an op moves its strings.
    for (const Entry& entry : batch) {
        if (const auto* lease = std::get_if<LeaseJob>(&entry.op))
            committed.leases.push_back({lease->job, WriteStatus::conflict, std::nullopt});
    }
    std::size_t next_lease = 0;
    try {
        db::Transaction transaction(connection_);
        for (std::size_t i = 0; i < batch.size(); ++i) {
            Entry& entry = batch[i];
            if (std::holds_alternative<LeaseJob>(entry.op)) {
                LeaseOutcome& outcome = committed.leases[next_lease++];
                WriteResult result = applier_->apply(entry.op, true, committed);
                outcome.status = result.status;
                if (entry.done) {
                    outcome.leased = result.job;
                    results_.emplace_back(i, std::move(result));
                } else {
                    outcome.leased = std::move(result.job);
                }
            } else if (entry.done) {
                results_.emplace_back(i, applier_->apply(entry.op, true, committed));
            } else {
                applier_->apply(entry.op, false, committed);
            }
        }
        applier_->write_pending();
        transaction.commit();
    } catch (const std::exception& error) {
        failure = error.what();
        if (failure.empty()) failure = "unknown error";
    }

    if (!failure.empty()) {
        // Nothing of this batch is durable: no listener, no acks, and the cache
        // (which already holds the batch's changes) must reload from the database.
        applier_->forget_all();
        logger().error("commit failed ops={} error=\"{}\"", batch.size(), failure);
        WriteResult result;
        result.status = WriteStatus::conflict;
        result.message = "store write failed: " + failure;
        for (Entry& entry : batch) {
            if (!entry.done) continue;
            try {
                entry.done(result);
            } catch (const std::exception& error) {
                logger().error("completion threw error=\"{}\"", error.what());
            }
        }
        // Whoever reserved a job for a lease op hears that it got none.
        if (listener_ && !committed.leases.empty()) {
            CommittedBatch refused;
            refused.committed = false;
            refused.leases = std::move(committed.leases);
            for (LeaseOutcome& outcome : refused.leases) {
                outcome.status = WriteStatus::conflict;
                outcome.leased.reset();
            }
            try {
                listener_(refused);
            } catch (const std::exception& error) {
                logger().error("commit listener threw error=\"{}\"", error.what());
            }
        }
    } else {
        applier_->committed(committed);
        committed.ops = batch.size();
        committed.started = started;
        committed.finished = std::chrono::steady_clock::now();
        committed.commit_seconds =
            std::chrono::duration<double>(committed.finished - started).count();
        for (const Entry& entry : batch) {  // runs of ops submitted together
            if (committed.submitted.empty() || committed.submitted.back().first != entry.submitted)
                committed.submitted.emplace_back(entry.submitted, 0);
            ++committed.submitted.back().second;
        }
        // The listener first: by the time a completion (the API's answer) runs,
        // the hub has the events.
        if (listener_) {
            try {
                listener_(committed);
            } catch (const std::exception& error) {
                logger().error("commit listener threw error=\"{}\"", error.what());
            }
        }
        for (const auto& [index, result] : results_) {
            try {
                batch[index].done(result);
            } catch (const std::exception& error) {
                logger().error("completion threw error=\"{}\"", error.what());
            }
        }
    }

    const std::size_t count = batch.size();
    batch.clear();
    {
        std::lock_guard lock(mutex_);
        completed_ += count;
    }
    progress_.notify_all();
    if (failure.empty()) restart_large_wal();
}

void Writer::run_pending_task(PendingTask& task) {
    try {
        {
            db::Transaction transaction(connection_);
            task.task(connection_);
            transaction.commit();
        }
        if (task.touches_jobs) applier_->forget_all();
        task.done.set_value();
        restart_large_wal();
    } catch (...) {
        applier_->forget_all();
        task.done.set_exception(std::current_exception());
    }
}

void Writer::restart_large_wal() {
    if (wal_pages_ < policy_.restart_pages) return;
    // A reader kept an old snapshot at every passive checkpoint: wait for the
    // readers (busy_timeout) so the log starts over and stops growing.
    checkpoint(connection_.handle(), SQLITE_CHECKPOINT_RESTART, "wal_large");
}

}  // namespace jobcast::store
