#include "persistence/retention.hpp"

#include <chrono>
#include <vector>

#include "common/clock.hpp"
#include "common/thread_name.hpp"
#include "persistence/log.hpp"

namespace jobcast::store {

namespace {

constexpr const char* kSelectExpired =
    "SELECT pk FROM jobs WHERE finished_at > 0 AND finished_at < ?1 LIMIT ?2";
constexpr const char* kDeleteEvents = "DELETE FROM events WHERE job_pk = ?1";
constexpr const char* kDeleteJob = "DELETE FROM jobs WHERE pk = ?1";

}  // namespace

std::size_t delete_finished_before(db::Connection& connection, UnixMs cutoff,
                                   std::size_t max_jobs) {
    std::vector<std::int64_t> expired;
    {
        db::Statement select(connection, kSelectExpired, false);
        select.bind(1, static_cast<std::int64_t>(cutoff));
        select.bind(2, static_cast<std::int64_t>(max_jobs));
        while (select.step())
            expired.push_back(select.column_int64(0));
    }
    db::Statement delete_events(connection, kDeleteEvents, false);
    db::Statement delete_job(connection, kDeleteJob, false);
    for (const std::int64_t pk : expired) {
        delete_events.bind(1, pk);
        delete_events.run();
        delete_job.bind(1, pk);
        delete_job.run();
    }
    return expired.size();
}

Retention::Retention(Writer& writer, const StoreConfig& config) : writer_(writer), config_(config) {
    if (config_.retention.count() > 0)
        thread_ = std::thread([this] {
            name_this_thread("jc-retention");
            run();
        });
}

std::size_t Retention::run_once(UnixMs now) {
    if (config_.retention.count() <= 0) return 0;
    const UnixMs cutoff = now - config_.retention.count();
    const std::size_t batch = std::max<std::size_t>(1, config_.retention_batch_jobs);
    std::size_t total = 0;
    for (;;) {
        std::size_t deleted = 0;
        // Each batch is its own short transaction on the writer thread, so
        // group commits go on in between.
        writer_.run_task([&](db::Connection& connection) {
            deleted = delete_finished_before(connection, cutoff, batch);
        });
        total += deleted;
        if (deleted < batch) break;
        std::lock_guard lock(mutex_);
        if (stopping_) break;
    }
    if (total > 0) logger().info("retention deleted_jobs={} cutoff_ms={}", total, cutoff);
    return total;
}

void Retention::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        if (wake_.wait_for(lock, config_.retention_interval, [&] { return stopping_; })) return;
        lock.unlock();
        try {
            run_once(Clock::system().unix_ms());
        } catch (const std::exception& error) {
            logger().error("retention pass failed error=\"{}\"", error.what());
        }
        lock.lock();
    }
}

void Retention::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

}  // namespace jobcast::store
