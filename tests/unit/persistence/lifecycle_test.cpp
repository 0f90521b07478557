// The job lifecycle as the writer applies it: each op's happy path and each
// rejection, and what a commit tells its listener.
#include <catch2/catch.hpp>

#include <mutex>

#include "common/clock.hpp"
#include "persistence/batch_applier.hpp"
#include "persistence/migrations.hpp"
#include "store_test_support.hpp"

namespace jobcast::store {
namespace {

using testing::chunk;
using testing::create_running;
using testing::new_job;
using testing::submit_sync;

struct Fixture {
    testing::TempDir dir;
    std::mutex mutex;
    std::vector<CommittedBatch> batches;
    std::unique_ptr<Store> store;

    Fixture() { open(); }

    void open() {
        store = Store::open(testing::test_config(dir), [this](CommittedBatch& batch) {
            std::lock_guard lock(mutex);
            batches.push_back(batch);
        });
    }
    void reopen() {
        store->close();
        store.reset();
        open();
    }
    WriteResult run(WriteOp op) { return submit_sync(*store, std::move(op)); }
    std::vector<Event> events(const std::string& id) { return testing::read_all(*store, id); }
    Job job(const std::string& id) {
        auto found = store->jobs().get(id);
        REQUIRE(found);
        return *found;
    }
    std::vector<CommittedBatch> committed() {
        store->flush();
        std::lock_guard lock(mutex);
        return batches;
    }
};

FinishJob finish_op(const std::string& job, int attempt, std::uint64_t wseq, bool success) {
    FinishJob op;
    op.job = job;
    op.attempt = attempt;
    op.wseq = wseq;
    op.success = success;
    op.now = 1'700'000'003'000;
    return op;
}

FinishJob done(const std::string& job, int attempt, std::uint64_t wseq,
               std::string result = R"({"text":"hi"})") {
    FinishJob op = finish_op(job, attempt, wseq, true);
    op.result = std::move(result);
    return op;
}

FinishJob fail(const std::string& job, int attempt, std::uint64_t wseq, std::string error,
               bool retryable) {
    FinishJob op = finish_op(job, attempt, wseq, false);
    op.error = std::move(error);
    op.retryable = retryable;
    return op;
}

}  // namespace

TEST_CASE("CreateJob queues the job and logs a queued state event", "[lifecycle]") {
    Fixture f;
    const WriteResult result = f.run(CreateJob{new_job("job-1"), ""});
    REQUIRE(result.status == WriteStatus::ok);
    CHECK(result.created);
    REQUIRE(result.job);
    CHECK(result.job->state == JobState::queued);
    CHECK(result.job->attempt == 0);
    CHECK(result.job->last_seq == 1);

    const Job stored = f.job("job-1");
    CHECK(stored.type == "test");
    CHECK(stored.owner == "alice");
    CHECK(stored.params == R"({"n":1})");
    CHECK(stored.created_at == 1'700'000'000'000);
    CHECK(stored.last_seq == 1);

    const auto events = f.events("job-1");
    REQUIRE(events.size() == 1);
    CHECK(events[0].seq == 1);
    CHECK(events[0].kind == EventKind::state);
    CHECK(events[0].data == R"({"state":"queued","attempt":0})");
    CHECK(events[0].ts == 1'700'000'000'000'000);
}

TEST_CASE("CreateJob without an id gets a fresh time-sortable id", "[lifecycle]") {
    Fixture f;
    const WriteResult result = f.run(CreateJob{new_job(""), ""});
    REQUIRE(result.status == WriteStatus::ok);
    CHECK(result.job->id.size() == 26);
    CHECK(f.store->jobs().get(result.job->id));
}

TEST_CASE("CreateJob with an id that exists is a conflict", "[lifecycle]") {
    Fixture f;
    REQUIRE(f.run(CreateJob{new_job("job-1"), ""}).status == WriteStatus::ok);
    const WriteResult again = f.run(CreateJob{new_job("job-1", "bob"), ""});
    CHECK(again.status == WriteStatus::conflict);
    CHECK(f.job("job-1").owner == "alice");
    CHECK(f.events("job-1").size() == 1);
}

TEST_CASE("an idempotency key returns the existing job and writes nothing", "[lifecycle]") {
    Fixture f;
    const WriteResult first = f.run(CreateJob{new_job("job-1"), "key-1"});
    REQUIRE(first.created);

    const WriteResult second = f.run(CreateJob{new_job("job-2"), "key-1"});
    REQUIRE(second.status == WriteStatus::ok);
    CHECK_FALSE(second.created);
    REQUIRE(second.job);
    CHECK(second.job->id == "job-1");
    CHECK_FALSE(f.store->jobs().get("job-2"));
    CHECK(f.events("job-1").size() == 1);

    SECTION("the key is per owner") {
        const WriteResult other = f.run(CreateJob{new_job("job-3", "bob"), "key-1"});
        CHECK(other.created);
        CHECK(other.job->id == "job-3");
    }
    SECTION("the existing job is returned as it is now") {
        REQUIRE(f.run(LeaseJob{"job-1", "w1", 5}).status == WriteStatus::ok);
        const WriteResult third = f.run(CreateJob{new_job("job-4"), "key-1"});
        CHECK_FALSE(third.created);
        CHECK(third.job->state == JobState::running);
    }
    SECTION("two creates with one key in one transaction make one job") {
        std::vector<WriteOp> ops;
        ops.emplace_back(CreateJob{new_job("job-5"), "key-2"});
        ops.emplace_back(CreateJob{new_job("job-6"), "key-2"});
        f.store->submit_many(std::move(ops));
        f.store->flush();
        CHECK(f.store->jobs().get("job-5"));
        CHECK_FALSE(f.store->jobs().get("job-6"));
    }
}

TEST_CASE("LeaseJob starts an attempt, and only on a queued job", "[lifecycle]") {
    Fixture f;
    REQUIRE(f.run(CreateJob{new_job("job-1"), ""}).status == WriteStatus::ok);
    const WriteResult leased = f.run(LeaseJob{"job-1", "worker-7", 1'700'000'001'000});
    REQUIRE(leased.status == WriteStatus::ok);
    REQUIRE(leased.job);
    CHECK(leased.job->state == JobState::running);
    CHECK(leased.job->attempt == 1);
    CHECK(leased.job->worker == "worker-7");
    CHECK(leased.job->started_at == 1'700'000'001'000);

    const auto events = f.events("job-1");
    REQUIRE(events.size() == 2);
    CHECK(events[1].data == R"({"state":"running","attempt":1,"worker":"worker-7"})");

    CHECK(f.run(LeaseJob{"job-1", "worker-8", 0}).status == WriteStatus::conflict);
    CHECK(f.run(LeaseJob{"nope", "worker-8", 0}).status == WriteStatus::not_found);
    CHECK(f.job("job-1").worker == "worker-7");
}

TEST_CASE("AppendChunk appends in wseq order, and duplicates or gaps write nothing",
          "[lifecycle]") {
    Fixture f;
    create_running(*f.store, "job-1");

    const WriteResult first = f.run(chunk("job-1", 1, 1, R"({"text":"a"})"));
    REQUIRE(first.status == WriteStatus::ok);
    CHECK(first.acked_wseq == 1);
    REQUIRE(first.job);
    CHECK(first.job->last_seq == 3);

    SECTION("a duplicate is acknowledged, not stored") {
        const WriteResult again = f.run(chunk("job-1", 1, 1, R"({"text":"a"})"));
        CHECK(again.status == WriteStatus::duplicate);
        CHECK(again.acked_wseq == 1);
        CHECK(f.job("job-1").last_seq == 3);
    }
    SECTION("a gap is refused with the committed wseq") {
        const WriteResult gap = f.run(chunk("job-1", 1, 3));
        CHECK(gap.status == WriteStatus::gap);
        CHECK(gap.acked_wseq == 1);
        CHECK(f.job("job-1").last_seq == 3);
        CHECK(f.run(chunk("job-1", 1, 2)).status == WriteStatus::ok);
        CHECK(f.run(chunk("job-1", 1, 3)).status == WriteStatus::ok);
    }
    SECTION("another attempt does not hold the lease") {
        const WriteResult stale = f.run(chunk("job-1", 2, 2));
        CHECK(stale.status == WriteStatus::conflict);
        CHECK_THAT(stale.message, Catch::Contains("lease lost"));
    }
    SECTION("workers cannot write state events") {
        CHECK(f.run(chunk("job-1", 1, 2, R"({"state":"succeeded"})", EventKind::state)).status ==
              WriteStatus::conflict);
        CHECK(f.run(chunk("job-1", 1, 2)).status == WriteStatus::ok);
    }
    SECTION("a progress event sets the job's progress") {
        REQUIRE(
            f.run(chunk("job-1", 1, 2, R"({"stage":"x", "fraction" : 0.25})", EventKind::progress))
                .status == WriteStatus::ok);
        CHECK(f.job("job-1").progress == Approx(0.25));
    }
    SECTION("an unknown job") {
        CHECK(f.run(chunk("nope", 1, 1)).status == WriteStatus::not_found);
    }

    const auto events = f.events("job-1");
    REQUIRE(events.size() >= 3);
    CHECK(events[2].kind == EventKind::token);
    CHECK(events[2].data == R"({"text":"a"})");
    CHECK(events[2].ts == 1'700'000'002'000'001);
    for (std::size_t i = 0; i < events.size(); ++i)
        CHECK(events[i].seq == i + 1);
}

TEST_CASE("SaveCheckpoint stores the bytes and takes a wseq, without an event", "[lifecycle]") {
    Fixture f;
    create_running(*f.store, "job-1");
    const std::string bytes("stage\0two\xff", 10);
    const WriteResult saved = f.run(SaveCheckpoint{"job-1", 1, 1, bytes});
    REQUIRE(saved.status == WriteStatus::ok);
    CHECK(saved.acked_wseq == 1);
    CHECK(f.job("job-1").checkpoint == bytes);
    CHECK(f.job("job-1").last_seq == 2);
    CHECK(f.run(SaveCheckpoint{"job-1", 1, 1, "other"}).status == WriteStatus::duplicate);
    CHECK(f.run(SaveCheckpoint{"job-1", 1, 3, "other"}).status == WriteStatus::gap);
    CHECK(f.run(chunk("job-1", 1, 2)).status == WriteStatus::ok);
    CHECK(f.job("job-1").checkpoint == bytes);  // a later row write keeps it
}

TEST_CASE("FinishJob success stores the result and ends the job", "[lifecycle]") {
    Fixture f;
    create_running(*f.store, "job-1");
    const WriteResult finished = f.run(done("job-1", 1, 1));
    REQUIRE(finished.status == WriteStatus::ok);
    CHECK(finished.job->state == JobState::succeeded);
    CHECK_FALSE(finished.job->worker.empty());  // who ran it stays on record
    CHECK(finished.job->progress == 1.0);

    const Job job = f.job("job-1");
    CHECK(job.state == JobState::succeeded);
    CHECK(job.result == R"({"text":"hi"})");
    CHECK(job.finished_at == 1'700'000'003'000);

    const auto events = f.events("job-1");
    REQUIRE(events.size() == 4);
    CHECK(events[2].kind == EventKind::result);
    CHECK(events[2].data == R"({"text":"hi"})");
    CHECK(events[3].kind == EventKind::state);
    CHECK(events[3].data == R"({"state":"succeeded","attempt":1})");

    SECTION("a finished job cannot run again") {
        const WriteResult lease = f.run(LeaseJob{"job-1", "w2", 0});
        CHECK(lease.status == WriteStatus::conflict);
        CHECK(f.job("job-1").state == JobState::succeeded);
    }
    SECTION("a resent done is acknowledged as a duplicate") {
        const WriteResult again = f.run(done("job-1", 1, 1));
        CHECK(again.status == WriteStatus::duplicate);
        CHECK(again.acked_wseq == 1);
    }
    SECTION("later chunks are refused") {
        CHECK(f.run(chunk("job-1", 1, 2)).status == WriteStatus::conflict);
    }
    SECTION("cancel is refused") {
        const WriteResult cancel = f.run(CancelJob{"job-1", false, 0});
        CHECK(cancel.status == WriteStatus::conflict);
        CHECK_THAT(cancel.message, Catch::Contains("already finished"));
    }
    CHECK(f.events("job-1").size() == 4);
}

TEST_CASE("FinishJob failure: retry, fail or cancel", "[lifecycle]") {
    Fixture f;

    SECTION("retryable with attempts left goes back to the queue with its checkpoint") {
        create_running(*f.store, "job-1");
        REQUIRE(f.run(SaveCheckpoint{"job-1", 1, 1, "ck"}).status == WriteStatus::ok);
        const WriteResult failed = f.run(fail("job-1", 1, 2, "boom", true));
        REQUIRE(failed.status == WriteStatus::ok);
        const Job job = f.job("job-1");
        CHECK(job.state == JobState::queued);
        CHECK(job.worker.empty());
        CHECK(job.checkpoint == "ck");
        CHECK(job.finished_at == 0);
        const auto events = f.events("job-1");
        REQUIRE(events.size() == 4);
        CHECK(events[2].kind == EventKind::error);
        CHECK(events[2].data == R"({"message":"boom"})");
        CHECK(events[3].data == R"({"state":"queued","attempt":1,"reason":"retry: boom"})");

        // The next attempt numbers its messages from 1 again; the old one is out.
        const WriteResult leased = f.run(LeaseJob{"job-1", "w2", 0});
        REQUIRE(leased.status == WriteStatus::ok);
        CHECK(leased.job->attempt == 2);
        CHECK(leased.job->checkpoint == "ck");
        CHECK(f.run(chunk("job-1", 1, 3)).status == WriteStatus::conflict);
        CHECK(f.run(chunk("job-1", 2, 1)).status == WriteStatus::ok);
    }
    SECTION("not retryable fails the job") {
        create_running(*f.store, "job-1");
        REQUIRE(f.run(fail("job-1", 1, 1, "bad \"input\"", false)).status == WriteStatus::ok);
        const Job job = f.job("job-1");
        CHECK(job.state == JobState::failed);
        CHECK(job.error == "bad \"input\"");
        CHECK(job.finished_at == 1'700'000'003'000);
        CHECK(f.events("job-1").back().data ==
              R"({"state":"failed","attempt":1,"reason":"bad \"input\""})");
    }
    SECTION("retryable without attempts left fails the job") {
        create_running(*f.store, "job-1", /*max_attempts=*/1);
        REQUIRE(f.run(fail("job-1", 1, 1, "boom", true)).status == WriteStatus::ok);
        CHECK(f.job("job-1").state == JobState::failed);
    }
    SECTION("a failure after a cancel request cancels the job") {
        create_running(*f.store, "job-1");
        REQUIRE(f.run(CancelJob{"job-1", false, 0}).status == WriteStatus::ok);
        REQUIRE(f.run(fail("job-1", 1, 1, "stopped", true)).status == WriteStatus::ok);
        CHECK(f.job("job-1").state == JobState::cancelled);
        CHECK(f.events("job-1").back().data ==
              R"({"state":"cancelled","attempt":1,"reason":"cancelled"})");
    }
}

TEST_CASE("RequeueJob returns a lost lease to the queue, or gives up", "[lifecycle]") {
    Fixture f;

    SECTION("attempts left: queued, worker cleared, checkpoint kept") {
        create_running(*f.store, "job-1");
        REQUIRE(f.run(SaveCheckpoint{"job-1", 1, 1, "ck"}).status == WriteStatus::ok);
        const WriteResult requeued = f.run(RequeueJob{"job-1", 1, "worker gone", 0});
        REQUIRE(requeued.status == WriteStatus::ok);
        CHECK(requeued.job->state == JobState::queued);
        CHECK(requeued.job->worker.empty());
        CHECK(requeued.job->checkpoint == "ck");
        CHECK(f.events("job-1").back().data ==
              R"({"state":"queued","attempt":1,"reason":"worker gone"})");
        // The old worker's late chunk is refused, its committed ones still acked.
        CHECK(f.run(chunk("job-1", 1, 2)).status == WriteStatus::conflict);
        CHECK(f.run(SaveCheckpoint{"job-1", 1, 1, "ck"}).status == WriteStatus::duplicate);
    }
    SECTION("no attempts left: failed") {
        create_running(*f.store, "job-1", /*max_attempts=*/1);
        REQUIRE(f.run(RequeueJob{"job-1", 1, "worker gone", 0}).status == WriteStatus::ok);
        const Job job = f.job("job-1");
        CHECK(job.state == JobState::failed);
        CHECK(job.error == "worker gone; gave up after 1 attempts");
        CHECK(f.events("job-1").back().data ==
              R"({"state":"failed","attempt":1,"reason":"worker gone; gave up after 1 attempts"})");
    }
    SECTION("cancel requested: cancelled") {
        create_running(*f.store, "job-1");
        REQUIRE(f.run(CancelJob{"job-1", false, 0}).status == WriteStatus::ok);
        REQUIRE(f.run(RequeueJob{"job-1", 1, "worker gone", 0}).status == WriteStatus::ok);
        CHECK(f.job("job-1").state == JobState::cancelled);
    }
    SECTION("rejections") {
        create_running(*f.store, "job-1");
        CHECK(f.run(RequeueJob{"job-1", 2, "x", 0}).status == WriteStatus::conflict);
        REQUIRE(f.run(RequeueJob{"job-1", 1, "x", 0}).status == WriteStatus::ok);
        CHECK(f.run(RequeueJob{"job-1", 1, "x", 0}).status == WriteStatus::conflict);  // queued
        CHECK(f.run(RequeueJob{"nope", 1, "x", 0}).status == WriteStatus::not_found);
    }
}

TEST_CASE("CancelJob", "[lifecycle]") {
    Fixture f;

    SECTION("a queued job is cancelled at once") {
        REQUIRE(f.run(CreateJob{new_job("job-1"), ""}).status == WriteStatus::ok);
        const WriteResult cancelled = f.run(CancelJob{"job-1", false, 1'700'000'009'000});
        REQUIRE(cancelled.status == WriteStatus::ok);
        CHECK(cancelled.job->state == JobState::cancelled);
        CHECK(f.job("job-1").finished_at == 1'700'000'009'000);
        CHECK(f.events("job-1").back().data ==
              R"({"state":"cancelled","attempt":0,"reason":"cancelled"})");
        CHECK(f.run(LeaseJob{"job-1", "w1", 0}).status == WriteStatus::conflict);
    }
    SECTION("a running job is asked to stop: flag, no event") {
        create_running(*f.store, "job-1");
        const WriteResult requested = f.run(CancelJob{"job-1", false, 0});
        REQUIRE(requested.status == WriteStatus::ok);
        CHECK(requested.job->state == JobState::running);
        CHECK(requested.job->cancel_requested);
        CHECK(f.job("job-1").cancel_requested);
        CHECK(f.job("job-1").last_seq == 2);
        // Its worker may still finish successfully.
        REQUIRE(f.run(done("job-1", 1, 1)).status == WriteStatus::ok);
        CHECK(f.job("job-1").state == JobState::succeeded);
    }
    SECTION("force ends a running job now") {
        create_running(*f.store, "job-1");
        const WriteResult forced = f.run(CancelJob{"job-1", true, 0});
        REQUIRE(forced.status == WriteStatus::ok);
        CHECK(forced.job->state == JobState::cancelled);
        CHECK(f.run(chunk("job-1", 1, 1)).status == WriteStatus::conflict);
    }
    SECTION("unknown and finished jobs") {
        CHECK(f.run(CancelJob{"nope", false, 0}).status == WriteStatus::not_found);
        create_running(*f.store, "job-1");
        REQUIRE(f.run(CancelJob{"job-1", true, 0}).status == WriteStatus::ok);
        CHECK(f.run(CancelJob{"job-1", true, 0}).status == WriteStatus::conflict);
    }
}

TEST_CASE("state events escape worker names and reasons as JSON", "[lifecycle]") {
    Fixture f;
    REQUIRE(f.run(CreateJob{new_job("job-1"), ""}).status == WriteStatus::ok);
    REQUIRE(f.run(LeaseJob{"job-1", "w\"1\\", 0}).status == WriteStatus::ok);
    REQUIRE(f.run(RequeueJob{"job-1", 1, "line\nbreak\x01", 0}).status == WriteStatus::ok);
    const auto events = f.events("job-1");
    CHECK(events[1].data == R"({"state":"running","attempt":1,"worker":"w\"1\\"})");
    CHECK(events[2].data == R"({"state":"queued","attempt":1,"reason":"line\nbreak\u0001"})");
}

TEST_CASE("one transaction: events in seq order, acks in op order, one snapshot per job",
          "[lifecycle]") {
    Fixture f;
    std::vector<WriteOp> ops;
    ops.emplace_back(CreateJob{new_job("job-1"), ""});
    ops.emplace_back(LeaseJob{"job-1", "w1", 0});
    ops.emplace_back(chunk("job-1", 1, 1));
    ops.emplace_back(chunk("job-1", 1, 2));
    ops.emplace_back(chunk("job-1", 1, 2));  // duplicate
    ops.emplace_back(SaveCheckpoint{"job-1", 1, 3, "ck"});
    ops.emplace_back(done("job-1", 1, 4));
    f.store->submit_many(std::move(ops));

    const auto batches = f.committed();
    REQUIRE(batches.size() == 1);
    const CommittedBatch& batch = batches[0];
    CHECK(batch.ops == 7);
    CHECK(batch.event_count == 6);
    CHECK(batch.commit_seconds > 0);
    REQUIRE(batch.events.size() == 1);
    CHECK(batch.events[0].job == "job-1");
    CHECK(batch.events[0].owner == "alice");
    REQUIRE(batch.events[0].events.size() == 6);
    for (std::size_t i = 0; i < 6; ++i)
        CHECK(batch.events[0].events[i].seq == i + 1);
    CHECK(batch.events[0].events[5].data == R"({"state":"succeeded","attempt":1})");

    REQUIRE(batch.acks.size() == 5);
    const std::uint64_t wseqs[] = {1, 2, 2, 3, 4};
    const WriteStatus statuses[] = {WriteStatus::ok, WriteStatus::ok, WriteStatus::duplicate,
                                    WriteStatus::ok, WriteStatus::ok};
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(batch.acks[i].job == "job-1");
        CHECK(batch.acks[i].attempt == 1);
        CHECK(batch.acks[i].acked_wseq == wseqs[i]);
        CHECK(batch.acks[i].status == statuses[i]);
    }
    REQUIRE(batch.job_changes.size() == 1);
    CHECK(batch.job_changes[0].state == JobState::succeeded);
    CHECK(batch.job_changes[0].checkpoint.empty());
    CHECK(f.job("job-1").checkpoint == "ck");
}

TEST_CASE("the commit listener runs before the completions", "[lifecycle]") {
    testing::TempDir dir;
    std::vector<std::string> order;  // touched by the writer thread only until flush()
    auto store = Store::open(testing::test_config(dir),
                             [&](CommittedBatch&) { order.push_back("listener"); });
    store->submit(CreateJob{new_job("job-1"), ""},
                  [&](const WriteResult&) { order.push_back("completion"); });
    store->flush();
    REQUIRE(order == std::vector<std::string>{"listener", "completion"});
}

TEST_CASE("committed wseqs survive a restart: resent messages are duplicates", "[lifecycle]") {
    Fixture f;
    create_running(*f.store, "job-1");
    for (std::uint64_t w = 1; w <= 3; ++w) {
        REQUIRE(f.run(chunk("job-1", 1, w)).status == WriteStatus::ok);
    }
    f.reopen();
    const WriteResult resent = f.run(chunk("job-1", 1, 3));
    CHECK(resent.status == WriteStatus::duplicate);
    CHECK(resent.acked_wseq == 3);
    const WriteResult next = f.run(chunk("job-1", 1, 4));
    REQUIRE(next.status == WriteStatus::ok);
    CHECK(next.job->last_seq == 6);
    CHECK(f.events("job-1").size() == 6);
}

TEST_CASE("ops that carry no time take it from the applier's clock", "[lifecycle]") {
    testing::TempDir dir;
    const std::string path = dir.file("jobcast.db");
    db::Connection connection =
        db::Connection::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    migrate(connection, path);
    ManualClock clock;
    BatchApplier applier(connection, 256, clock);
    CommittedBatch batch;
    {
        db::Transaction transaction(connection);
        Job job = new_job("job-1");
        job.created_at = 0;
        WriteOp create = CreateJob{std::move(job), ""};
        REQUIRE(applier.apply(create, false, batch).status == WriteStatus::ok);
        clock.advance(std::chrono::seconds(1));
        WriteOp lease = LeaseJob{"job-1", "w1", 0};
        REQUIRE(applier.apply(lease, false, batch).status == WriteStatus::ok);
        clock.advance(std::chrono::microseconds(5));
        AppendChunk untimed = chunk("job-1", 1, 1);
        untimed.ts = 0;
        WriteOp append = std::move(untimed);
        REQUIRE(applier.apply(append, false, batch).status == WriteStatus::ok);
        applier.write_pending();
        transaction.commit();
    }
    applier.committed(batch);

    REQUIRE(batch.events.size() == 1);
    const std::vector<Event>& events = batch.events[0].events;
    REQUIRE(events.size() == 3);
    CHECK(events[0].ts == 1'700'000'000'000'000);  // created: the clock's ms
    CHECK(events[1].ts == 1'700'000'001'000'000);  // leased a second later
    CHECK(events[2].ts == 1'700'000'001'000'005);  // the chunk: the clock's µs
    REQUIRE(batch.job_changes.size() == 1);
    CHECK(batch.job_changes[0].created_at == 1'700'000'000'000);
    CHECK(batch.job_changes[0].started_at == 1'700'000'001'000);
}

TEST_CASE("ops after close are refused, not lost silently", "[lifecycle]") {
    Fixture f;
    f.store->close();
    f.store->close();  // idempotent
    const WriteResult result = submit_sync(*f.store, CreateJob{new_job("job-1"), ""});
    CHECK(result.status == WriteStatus::conflict);
    CHECK_THAT(result.message, Catch::Contains("closed"));
    CHECK_THROWS_AS(f.store->jobs().get("job-1"), StoreError);
}

}  // namespace jobcast::store
