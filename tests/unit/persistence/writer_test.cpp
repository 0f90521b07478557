// The writer thread: failed transactions, backpressure, groups, flush.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "persistence/database.hpp"
#include "persistence/migrations.hpp"
#include "persistence/writer.hpp"
#include "store_test_support.hpp"

namespace jobcast::store {
namespace {

using testing::chunk;
using testing::submit_sync;

struct CountingListener {
    std::mutex mutex;
    std::vector<std::size_t> batch_ops;
    std::size_t events = 0;

    Store::CommitListener listener() {
        return [this](CommittedBatch& batch) {
            std::lock_guard lock(mutex);
            batch_ops.push_back(batch.ops);
            events += batch.event_count;
        };
    }
    std::size_t batches() {
        std::lock_guard lock(mutex);
        return batch_ops.size();
    }
};

}  // namespace

TEST_CASE("a batch that cannot commit gets errors and acknowledges nothing", "[writer]") {
    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    config.busy_timeout = std::chrono::milliseconds(100);
    CountingListener counted;
    auto store = Store::open(config, counted.listener());
    testing::create_running(*store, "job-1");
    const std::size_t batches_before = counted.batches();

    // Another process holds the write lock for longer than the busy timeout.
    db::Connection other = db::Connection::open(config.path, SQLITE_OPEN_READWRITE);
    other.exec("BEGIN IMMEDIATE");
    const WriteResult failed = submit_sync(*store, chunk("job-1", 1, 1));
    CHECK(failed.status == WriteStatus::conflict);
    CHECK_THAT(failed.message, Catch::Contains("store write failed"));
    CHECK(counted.batches() == batches_before);
    other.exec("ROLLBACK");

    // Not committed, so not a duplicate now.
    const WriteResult retried = submit_sync(*store, chunk("job-1", 1, 1));
    REQUIRE(retried.status == WriteStatus::ok);
    CHECK(retried.job->last_seq == 3);
    CHECK(testing::read_all(*store, "job-1").size() == 3);
}

TEST_CASE("each lease op's outcome comes back in its commit batch", "[writer]") {
    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    config.busy_timeout = std::chrono::milliseconds(100);
    std::mutex mutex;
    std::vector<CommittedBatch> batches;
    auto store = Store::open(config, [&](CommittedBatch& batch) {
        std::lock_guard lock(mutex);
        batches.push_back(batch);
    });
    auto last_batch = [&] {
        store->flush();
        std::lock_guard lock(mutex);
        return batches.back();
    };
    REQUIRE(submit_sync(*store, CreateJob{testing::new_job("job-1"), ""}).status ==
            WriteStatus::ok);
    REQUIRE(submit_sync(*store, CreateJob{testing::new_job("job-2"), ""}).status ==
            WriteStatus::ok);

    std::vector<WriteOp> ops;
    ops.emplace_back(LeaseJob{"job-1", "w1", 1'700'000'001'000});
    ops.emplace_back(LeaseJob{"job-1", "w2", 1'700'000'001'000});  // leased already
    ops.emplace_back(LeaseJob{"nope", "w1", 1'700'000'001'000});
    store->submit_many(std::move(ops));
    const CommittedBatch leased = last_batch();
    CHECK(leased.committed);
    REQUIRE(leased.leases.size() == 3);
    CHECK(leased.leases[0].job == "job-1");
    CHECK(leased.leases[0].status == WriteStatus::ok);
    REQUIRE(leased.leases[0].leased);
    CHECK(leased.leases[0].leased->attempt == 1);
    CHECK(leased.leases[0].leased->worker == "w1");
    CHECK(leased.leases[1].status == WriteStatus::conflict);
    CHECK_FALSE(leased.leases[1].leased);
    CHECK(leased.leases[2].job == "nope");
    CHECK(leased.leases[2].status == WriteStatus::not_found);

    // A batch that cannot commit hands its lease ops back refused, and nothing else.
    db::Connection other = db::Connection::open(config.path, SQLITE_OPEN_READWRITE);
    other.exec("BEGIN IMMEDIATE");
    store->submit(LeaseJob{"job-2", "w1", 1'700'000'002'000});
    const CommittedBatch failed = last_batch();
    other.exec("ROLLBACK");
    CHECK_FALSE(failed.committed);
    REQUIRE(failed.leases.size() == 1);
    CHECK(failed.leases[0].job == "job-2");
    CHECK(failed.leases[0].status == WriteStatus::conflict);
    CHECK_FALSE(failed.leases[0].leased);
    CHECK(failed.acks.empty());
    CHECK(failed.job_changes.empty());
    CHECK(failed.events.empty());
    CHECK(store->jobs().get("job-2")->state == JobState::queued);
}

TEST_CASE("after a transaction fails midway the writer reloads its jobs", "[writer]") {
    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    db::Connection connection =
        db::Connection::open(config.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    connection.exec("PRAGMA journal_mode = WAL");
    migrate(connection, config.path);
    CountingListener counted;
    Writer writer(std::move(connection), config, counted.listener());

    auto run = [&](WriteOp op) {
        std::promise<WriteResult> promise;
        writer.submit(std::move(op), [&](const WriteResult& r) { promise.set_value(r); });
        return promise.get_future().get();
    };
    REQUIRE(run(CreateJob{testing::new_job("job-1"), ""}).status == WriteStatus::ok);
    REQUIRE(run(LeaseJob{"job-1", "w1", 0}).status == WriteStatus::ok);

    // A full disk, as SQLite sees it: no room for the batch's blocks. The task
    // holds the writer until the chunks are queued, so they share one transaction.
    std::promise<void> started;
    std::promise<void> release;
    std::thread blocker([&] {
        writer.run_task([&](db::Connection& c) {
            db::Statement pages(c, "PRAGMA page_count", false);
            REQUIRE(pages.step());
            const std::string limit = std::to_string(pages.column_int64(0) + 1);
            pages.reset();
            c.exec(("PRAGMA max_page_count = " + limit).c_str());
            started.set_value();
            release.get_future().wait();
        });
    });
    started.get_future().wait();
    std::vector<std::promise<WriteResult>> results(5);
    for (int w = 1; w <= 5; ++w) {
        writer.submit(chunk("job-1", 1, w, "{\"blob\":\"" + std::string(100'000, 'x') + "\"}"),
                      [&results, w](const WriteResult& r) { results[w - 1].set_value(r); });
    }
    release.set_value();
    blocker.join();
    for (auto& result : results) {
        const WriteResult r = result.get_future().get();
        CHECK(r.status == WriteStatus::conflict);
        CHECK_THAT(r.message, Catch::Contains("full"));
    }

    writer.run_task([](db::Connection& c) { c.exec("PRAGMA max_page_count = 1073741823"); });
    const WriteResult ok = run(chunk("job-1", 1, 1));
    REQUIRE(ok.status == WriteStatus::ok);
    CHECK(ok.job->last_seq == 3);  // not 8: the failed batch's seqs were forgotten
    writer.stop();

    db::Connection reader = db::Connection::open(config.path, SQLITE_OPEN_READONLY);
    db::Statement check(reader, "SELECT last_seq, wseq FROM jobs WHERE id = 'job-1'", false);
    REQUIRE(check.step());
    CHECK(check.column_int64(0) == 3);
    CHECK(check.column_int64(1) == 1);
}

TEST_CASE("submit blocks while the queue is full, and loses nothing", "[writer]") {
    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    config.max_queue_ops = 8;
    config.max_batch_ops = 4;
    auto store = Store::open(config);
    constexpr int kThreads = 4;
    constexpr int kChunks = 300;
    for (int t = 0; t < kThreads; ++t)
        testing::create_running(*store, "job-" + std::to_string(t));

    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int w = 1; w <= kChunks; ++w) {
                store->submit(chunk("job-" + std::to_string(t), 1, w), [&](const WriteResult& r) {
                    if (r.status == WriteStatus::ok) ++ok;
                });
            }
        });
    }
    for (auto& thread : threads)
        thread.join();
    store->flush();
    CHECK(ok == kThreads * kChunks);
    for (int t = 0; t < kThreads; ++t) {
        CHECK(store->events().last_seq("job-" + std::to_string(t)) == 2 + kChunks);
    }
}

TEST_CASE("submit_many lands in one transaction, even past max_batch_ops", "[writer]") {
    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    config.max_batch_ops = 2;
    CountingListener counted;
    auto store = Store::open(config, counted.listener());
    testing::create_running(*store, "job-1");
    store->flush();
    std::vector<WriteOp> ops;
    for (int w = 1; w <= 10; ++w)
        ops.emplace_back(chunk("job-1", 1, w));
    const auto capacity = ops.capacity();
    store->submit_many(std::move(ops));
    // The ops are taken; the vector stays the caller's, to fill again.
    CHECK(ops.empty());
    CHECK(ops.capacity() == capacity);
    store->flush();
    std::lock_guard lock(counted.mutex);
    CHECK(counted.batch_ops.back() == 10);
}

TEST_CASE("flush waits for every op submitted before it", "[writer]") {
    testing::TempDir dir;
    auto store = Store::open(testing::test_config(dir));
    testing::create_running(*store, "job-1");
    for (int w = 1; w <= 2000; ++w)
        store->submit(chunk("job-1", 1, w));
    store->flush();
    CHECK(store->events().last_seq("job-1") == 2002);
}

TEST_CASE("a completion may submit more ops, even with a full queue", "[writer]") {
    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    config.max_queue_ops = 1;
    auto store = Store::open(config);
    testing::create_running(*store, "job-1");
    std::promise<WriteResult> second;
    store->submit(chunk("job-1", 1, 1), [&](const WriteResult&) {
        store->submit(chunk("job-1", 1, 2), [&](const WriteResult& r) { second.set_value(r); });
        store->submit(chunk("job-1", 1, 3));
    });
    CHECK(second.get_future().get().status == WriteStatus::ok);
    store->flush();
    CHECK(store->events().last_seq("job-1") == 5);
}

TEST_CASE("a commit says when its ops were submitted, started and committed", "[writer][stages]") {
    testing::TempDir dir;
    std::mutex mutex;
    std::vector<CommittedBatch> batches;
    auto store = Store::open(testing::test_config(dir), [&](CommittedBatch& batch) {
        std::lock_guard lock(mutex);
        batches.push_back(batch);
    });
    testing::create_running(*store, "job-1");
    store->flush();
    {
        std::lock_guard lock(mutex);
        batches.clear();
    }

    // The writer is held in a completion while two runs of ops queue behind
    // it: a submit_many of three and, a little later, one submit.
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::promise<void> holding;
    store->submit(chunk("job-1", 1, 1), [&](const WriteResult&) {
        holding.set_value();
        released.wait();
    });
    holding.get_future().wait();
    const auto before_many = std::chrono::steady_clock::now();
    std::vector<WriteOp> ops;
    for (int w = 2; w <= 4; ++w)
        ops.emplace_back(chunk("job-1", 1, w));
    store->submit_many(std::move(ops));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a later submit time
    const auto before_one = std::chrono::steady_clock::now();
    store->submit(chunk("job-1", 1, 5));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // time spent in the queue
    release.set_value();
    store->flush();

    std::lock_guard lock(mutex);
    REQUIRE(batches.size() == 2);
    const CommittedBatch& held = batches[1];
    CHECK(held.ops == 4);
    REQUIRE(held.submitted.size() == 2);
    CHECK(held.submitted[0].second == 3);
    CHECK(held.submitted[1].second == 1);
    CHECK(held.submitted[0].first >= before_many);
    CHECK(held.submitted[1].first >= before_one);
    // The queue stage (submitted -> started) holds the wait behind the held commit.
    CHECK(held.started - held.submitted[0].first >= std::chrono::milliseconds(22));
    CHECK(held.started - held.submitted[1].first >= std::chrono::milliseconds(20));
    CHECK(held.finished >= held.started);
    CHECK(held.commit_seconds ==
          Approx(std::chrono::duration<double>(held.finished - held.started).count()));
}

}  // namespace jobcast::store
