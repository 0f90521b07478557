// The writer thread: owns the one write connection, applies queued ops in
// group-committed transactions, tells the commit listener (lease outcomes
// included) and each op's completion only after COMMIT, and reports the WAL's
// size to the checkpointer, which keeps it bounded from its own thread.
// Internal to persistence/.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "persistence/batch_applier.hpp"
#include "persistence/checkpointer.hpp"
#include "persistence/database.hpp"
#include "persistence/store.hpp"

namespace jobcast::store {

class Writer {
  public:
    using Task = std::function<void(db::Connection&)>;

    // Takes the migrated, configured write connection and starts the thread.
    Writer(db::Connection connection, const StoreConfig& config, Store::CommitListener listener,
           CheckpointPolicy policy = {});
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    // Blocks while the queue holds max_queue_ops (not on the writer thread itself).
    // After stop(), completes `done` at once with a conflict "store is closed".
    void submit(WriteOp op, Completion done);
    void submit_many(std::vector<WriteOp>&& ops);  // Store::submit_many
    // Waits until every op submitted before the call has been completed.
    void flush();
    // Runs `task` on the writer thread, in its own transaction, between two
    // batches; blocks until it is done and rethrows what it threw. The op
    // cache is dropped afterwards (the task may have changed any row), unless
    // `touches_jobs` is false (the task writes no jobs or events rows).
    void run_task(Task task, bool touches_jobs = true);
    // Commits what is queued, stops the thread, TRUNCATE-checkpoints and closes
    // the connection. Idempotent.
    void stop();

    bool on_writer_thread() const { return std::this_thread::get_id() == writer_id_; }

  private:
    struct Entry {
        WriteOp op;
        Completion done;
        bool joins_next = false;  // the next entry belongs to the same transaction
        std::chrono::steady_clock::time_point submitted{};  // for the queue's stage timing
    };
    struct PendingTask {
        Task task;
        bool touches_jobs = true;
        std::promise<void> done;
    };
    // FIFO of entries in one vector: no allocation per op (a deque allocates a
    // node per entry this large), consumed from `head_`, compacted as it goes.
    class OpQueue {
      public:
        std::size_t size() const { return items_.size() - head_; }
        bool empty() const { return size() == 0; }
        void push(Entry entry) { items_.push_back(std::move(entry)); }
        // Moves up to `cap` entries into `batch`; a submit_many group is never split.
        void take(std::vector<Entry>& batch, std::size_t cap);

      private:
        std::vector<Entry> items_;
        std::size_t head_ = 0;
    };

    void run();
    void commit_batch(std::vector<Entry>& batch);
    void run_pending_task(PendingTask& task);
    // RESTART-checkpoints when the WAL reached policy_.restart_pages: passive
    // checkpoints did not let it start over.
    void restart_large_wal();
    static int on_wal_commit(void* self, sqlite3* db, const char* name, int pages);

    const StoreConfig config_;
    const CheckpointPolicy policy_;
    Store::CommitListener listener_;
    db::Connection connection_;
    std::unique_ptr<BatchApplier> applier_;
    Checkpointer checkpointer_;
    int wal_pages_ = 0;  // WAL size after the last commit (writer thread only)
    // The results owed to completions, reused from batch to batch.
    std::vector<std::pair<std::size_t, WriteResult>> results_;

    std::mutex mutex_;
    std::condition_variable work_ready_;   // the writer waits for ops or tasks
    std::condition_variable space_ready_;  // submitters wait for room in the queue
    std::condition_variable progress_;     // flush() waits for completions
    OpQueue queue_;
    std::deque<PendingTask*> tasks_;
    std::uint64_t submitted_ = 0;
    std::uint64_t completed_ = 0;
    bool stopping_ = false;
    bool stopped_ = false;

    std::thread thread_;
    std::thread::id writer_id_;
    std::once_flag stop_once_;
};

}  // namespace jobcast::store
