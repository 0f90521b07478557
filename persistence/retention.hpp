// Retention: deletes jobs (and their events) finished longer ago than
// config.retention. Deletions run on the writer thread, in small transactions
// between its batches: there is one writer connection, never a second one
// fighting it for the lock. Internal.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>

#include "persistence/database.hpp"
#include "persistence/store.hpp"
#include "persistence/writer.hpp"

namespace jobcast::store {

// Inside an open transaction: deletes up to `max_jobs` jobs with
// 0 < finished_at < cutoff, and their event blocks. Returns how many.
std::size_t delete_finished_before(db::Connection& connection, UnixMs cutoff, std::size_t max_jobs);

class Retention {
  public:
    // Starts the background thread when config.retention > 0.
    Retention(Writer& writer, const StoreConfig& config);
    ~Retention() { stop(); }
    Retention(const Retention&) = delete;
    Retention& operator=(const Retention&) = delete;

    // One full pass for `now`, batch after batch; returns the jobs deleted.
    // 0 when retention is off.
    std::size_t run_once(UnixMs now);
    void stop();

  private:
    void run();

    Writer& writer_;
    const StoreConfig config_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace jobcast::store
