#include "persistence/checkpointer.hpp"

#include "common/thread_name.hpp"
#include "persistence/log.hpp"

namespace jobcast::store {

namespace {

const char* mode_name(int mode) {
    switch (mode) {
        case SQLITE_CHECKPOINT_PASSIVE:
            return "passive";
        case SQLITE_CHECKPOINT_RESTART:
            return "restart";
        case SQLITE_CHECKPOINT_TRUNCATE:
            return "truncate";
    }
    return "?";
}

}  // namespace

Checkpointer::Checkpointer(const std::string& path, CheckpointPolicy policy)
    : policy_(policy), connection_(db::Connection::open(path, SQLITE_OPEN_READWRITE)) {
    sqlite3_wal_autocheckpoint(connection_.handle(), 0);
    // A connection knows the database is in WAL mode once it read its header.
    sqlite3_busy_timeout(connection_.handle(), 5000);
    connection_.exec("PRAGMA journal_mode=WAL");
    // Never wait for readers or the writer: busy now means another try later.
    sqlite3_busy_timeout(connection_.handle(), 0);
    thread_ = std::thread([this] {
        name_this_thread("jc-checkpoint");
        run();
    });
}

Checkpointer::~Checkpointer() {
    stop();
}

bool Checkpointer::passive_range(int pages) const {
    // At restart_pages the writer runs a RESTART after its commit; a passive
    // checkpoint here would hold the one checkpoint lock and make it fail.
    return pages >= policy_.passive_pages && pages < policy_.restart_pages;
}

void Checkpointer::note(int pages) {
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        // Past the passive threshold (below the restart one the writer owns),
        // or the first commit after an idle truncate (the idle clock starts now).
        wake = passive_range(pages) || pages_ == 0;
        pages_ = pages;
        ++commits_;
    }
    if (wake) wake_.notify_one();
}

void Checkpointer::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
    connection_.close();
}

void Checkpointer::run() {
    std::unique_lock lock(mutex_);
    std::uint64_t seen = 0;  // commits_ when the WAL size was last looked at
    auto committed = [&] { return stopping_ || commits_ != seen; };
    while (!stopping_) {
        if (commits_ == seen) {
            if (pages_ == 0) {
                wake_.wait(lock, committed);
                continue;
            }
            // Something is in the log: truncate it once no commit came for idle_after.
            if (wake_.wait_for(lock, policy_.idle_after, committed)) continue;
            lock.unlock();
            // TRUNCATE holds the writer's lock for as long as it copies: copy
            // first with a PASSIVE (which never blocks the writer), and truncate
            // only a log that has nothing left to copy.
            const bool emptied =
                checkpoint(connection_.handle(), SQLITE_CHECKPOINT_PASSIVE, "idle") &&
                checkpoint(connection_.handle(), SQLITE_CHECKPOINT_TRUNCATE, "idle");
            lock.lock();
            if (emptied && commits_ == seen) pages_ = 0;
            continue;
        }
        seen = commits_;
        const int pages = pages_;
        if (!passive_range(pages)) continue;
        lock.unlock();
        checkpoint(connection_.handle(), SQLITE_CHECKPOINT_PASSIVE, "wal_pages");
        lock.lock();
    }
}

bool checkpoint(sqlite3* connection, int mode, const char* why) {
    int log_frames = 0;
    int checkpointed = 0;
    const int rc = sqlite3_wal_checkpoint_v2(connection, nullptr, mode, &log_frames, &checkpointed);
    if (rc == SQLITE_OK) {
        logger().debug("checkpoint mode={} why={} wal_frames={} checkpointed={}", mode_name(mode),
                       why, log_frames, checkpointed);
        return log_frames >= 0 && log_frames == checkpointed;  // -1: not in WAL mode
    }
    if ((rc & 0xff) == SQLITE_BUSY) {
        logger().debug("checkpoint busy mode={} why={}", mode_name(mode), why);
    } else {
        logger().warn("checkpoint failed mode={} why={} error=\"{}\"", mode_name(mode), why,
                      sqlite3_errmsg(connection));
    }
    return false;
}

}  // namespace jobcast::store
