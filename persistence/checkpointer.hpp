// Checkpoints the WAL from a thread and connection of its own, so that a
// checkpoint's copying and fsync do not stall the writer's commits behind it.
// The writer reports the WAL size after each commit (note); past
// passive_pages this thread runs a PASSIVE checkpoint (concurrent with the
// writer and the readers), and after idle_after without a commit a TRUNCATE
// that never waits. The RESTART that bounds the log while readers keep old
// snapshots needs the writer to pause, so the writer runs that one itself
// (restart_pages). Internal to persistence/.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "persistence/database.hpp"

namespace jobcast::store {

// WAL sizes (in pages) that start a checkpoint.
struct CheckpointPolicy {
    // PASSIVE (never waits) once the WAL holds this many pages.
    int passive_pages = 4096;  // 16 MiB of 4 KiB pages
    // RESTART (waits for the readers of old snapshots, briefly) when passive
    // checkpoints did not let the WAL start over, so that it stops growing.
    int restart_pages = 8192;  // 32 MiB
    // With nothing written for this long, TRUNCATE the WAL (if no reader is in).
    std::chrono::milliseconds idle_after{500};
};

// One checkpoint of `connection`'s database in `mode` (SQLITE_CHECKPOINT_*),
// logged with `why`. True when every WAL frame was checkpointed.
bool checkpoint(sqlite3* connection, int mode, const char* why);

class Checkpointer {
  public:
    // Opens its own connection to `path` (in WAL mode already) and starts the thread.
    Checkpointer(const std::string& path, CheckpointPolicy policy);
    ~Checkpointer();
    Checkpointer(const Checkpointer&) = delete;
    Checkpointer& operator=(const Checkpointer&) = delete;

    // The writer committed; the WAL now holds `pages` pages. Never blocks on a checkpoint.
    void note(int pages);
    // Stops the thread (a checkpoint under way completes first). Idempotent.
    void stop();

  private:
    void run();
    bool passive_range(int pages) const;

    const CheckpointPolicy policy_;
    db::Connection connection_;

    std::mutex mutex_;
    std::condition_variable wake_;
    int pages_ = 0;              // the WAL size after the last commit
    std::uint64_t commits_ = 0;  // commits noted, to tell idle from busy
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace jobcast::store
