// What every store answers to each write op, as the lifecycle rules of
// domain/job_lifecycle.hpp decide it: create, lease, a worker's chunks,
// checkpoints and finish, requeue, cancel, and ops on an unknown job.
#include "contract_session.hpp"

namespace jobcast::contract {
namespace {

constexpr UnixUs kLeasedUs = kLeasedAt * 1000;
constexpr UnixUs kFinishedUs = kFinishedAt * 1000;

std::vector<std::string> described(const std::vector<Event>& events) {
    std::vector<std::string> out;
    for (const Event& event : events)
        out.push_back(describe(event));
    return out;
}

std::vector<std::string> acks(Session& s, const std::string& job) {
    std::vector<std::string> out;
    for (const store::WriteAck& ack : s.acks_of(job)) {
        out.push_back(std::to_string(ack.attempt) + " " + std::string(to_string(ack.status)) + " " +
                      std::to_string(ack.acked_wseq));
    }
    return out;
}

std::string state_event(std::uint64_t seq, UnixUs ts, const std::string& data) {
    return std::to_string(seq) + " state " + std::to_string(ts) + " " + data;
}

const std::string kQueued = state_event(1, kCreatedAt * 1000, R"({"state":"queued","attempt":0})");
const std::string kRunning =
    state_event(2, kLeasedUs, R"({"state":"running","attempt":1,"worker":"w1"})");

}  // namespace

TEST_CASE("CreateJob: queued at attempt 0 with one state event, idempotency keys per owner",
          "[contract]") {
    for_each_store([](Session& s) {
        const WriteResult created = s.expect(create("job-1"), WriteStatus::ok);
        CHECK(created.created);
        REQUIRE(created.job);
        CHECK(created.job->state == JobState::queued);
        CHECK(created.job->attempt == 0);
        CHECK(created.job->last_seq == 1);
        const Job stored = s.require_job("job-1");
        CHECK(stored.owner == "alice");
        CHECK(stored.type == "test");
        CHECK(stored.params == R"({"n":1})");
        CHECK(stored.max_attempts == 3);
        CHECK(stored.created_at == kCreatedAt);
        CHECK(described(s.log("job-1")) == std::vector<std::string>{kQueued});

        // With a key, then the same key again: the first job, nothing written.
        CHECK(s.expect(create("job-2", "key-1"), WriteStatus::ok).created);
        const WriteResult again = s.expect(create("job-3", "key-1"), WriteStatus::ok);
        CHECK_FALSE(again.created);
        REQUIRE(again.job);
        CHECK(again.job->id == "job-2");
        CHECK_FALSE(s.get("job-3"));
        CHECK(s.log("job-2").size() == 1);

        // Keys are per owner.
        const WriteResult bobs = s.expect(create("job-4", "key-1", "bob"), WriteStatus::ok);
        CHECK(bobs.created);
        REQUIRE(bobs.job);
        CHECK(bobs.job->id == "job-4");
        CHECK(bobs.job->owner == "bob");

        // An id another owner's job holds is refused, and that job is untouched.
        s.expect(create("job-1", "", "bob"), WriteStatus::conflict);
        CHECK(s.require_job("job-1").owner == "alice");
        CHECK(s.log("job-1").size() == 1);
    });
}

TEST_CASE("LeaseJob: attempt + 1, running, a state event, and a lease outcome", "[contract]") {
    for_each_store([](Session& s) {
        s.expect(create("job-1"), WriteStatus::ok);
        const WriteResult leased = s.expect(lease("job-1"), WriteStatus::ok);
        REQUIRE(leased.job);
        CHECK(leased.job->state == JobState::running);
        CHECK(leased.job->attempt == 1);
        CHECK(leased.job->worker == "w1");
        CHECK(leased.job->started_at == kLeasedAt);
        CHECK(leased.job->last_seq == 2);
        CHECK(described(s.log("job-1")) == std::vector<std::string>{kQueued, kRunning});

        // Taken: another worker is refused; an unknown job is not found.
        s.expect(lease("job-1", "w2", kLeasedAt + 5), WriteStatus::conflict);
        s.expect(lease("nope"), WriteStatus::not_found);
        CHECK(s.require_job("job-1").worker == "w1");

        const auto outcomes = s.leases_of("job-1");
        REQUIRE(outcomes.size() == 2);
        CHECK(outcomes[0].status == WriteStatus::ok);
        REQUIRE(outcomes[0].leased);
        CHECK(outcomes[0].leased->attempt == 1);
        CHECK(outcomes[1].status == WriteStatus::conflict);
        CHECK_FALSE(outcomes[1].leased);
        const auto unknown = s.leases_of("nope");
        REQUIRE(unknown.size() == 1);
        CHECK(unknown[0].status == WriteStatus::not_found);
    });
}

TEST_CASE("AppendChunk: wseq order is kept, duplicates, gaps, stale attempts are refused",
          "[contract]") {
    for_each_store([](Session& s) {
        s.create_running("job-1");
        const WriteResult first = s.expect(chunk("job-1", 1, 1), WriteStatus::ok);
        CHECK(first.acked_wseq == 1);
        REQUIRE(first.job);
        CHECK(first.job->last_seq == 3);
        CHECK(s.expect(chunk("job-1", 1, 2), WriteStatus::ok).acked_wseq == 2);

        // Already committed: acked with the committed wseq, no event.
        CHECK(s.expect(chunk("job-1", 1, 1), WriteStatus::duplicate).acked_wseq == 2);
        // Skips one: refused with the committed wseq.
        CHECK(s.expect(chunk("job-1", 1, 4), WriteStatus::gap).acked_wseq == 2);
        // Another attempt does not hold the lease: nothing acked.
        const WriteResult stale = s.expect(chunk("job-1", 2, 3), WriteStatus::conflict);
        CHECK(stale.acked_wseq == 0);
        CHECK_THAT(stale.message, Catch::Contains("lease lost"));
        // State events are the broker's alone.
        s.expect(chunk("job-1", 1, 3, EventKind::state, R"({"state":"succeeded"})"),
                 WriteStatus::conflict);
        // A progress event sets the job's progress.
        s.expect(chunk("job-1", 1, 3, EventKind::progress, R"({"stage":"x","fraction":0.25})"),
                 WriteStatus::ok);
        CHECK(s.require_job("job-1").progress == Approx(0.25));
        s.expect(chunk("job-1", 1, 4), WriteStatus::ok);

        CHECK(described(s.log("job-1")) ==
              std::vector<std::string>{
                  kQueued, kRunning, "3 token " + std::to_string(kLeasedUs + 1001) + R"( {"w":1})",
                  "4 token " + std::to_string(kLeasedUs + 1002) + R"( {"w":2})",
                  "5 progress " + std::to_string(kLeasedUs + 1003) +
                      R"( {"stage":"x","fraction":0.25})",
                  "6 token " + std::to_string(kLeasedUs + 1004) + R"( {"w":4})"});
        // One ack per chunk op, in op order.
        CHECK(acks(s, "job-1") == std::vector<std::string>{"1 ok 1", "1 ok 2", "1 duplicate 2",
                                                           "1 gap 2", "2 conflict 0",
                                                           "1 conflict 2", "1 ok 3", "1 ok 4"});
    });
}

TEST_CASE("a finished job's worker: duplicates still acked, new messages refused", "[contract]") {
    for_each_store([](Session& s) {
        s.create_running("job-1");
        s.expect(chunk("job-1", 1, 1), WriteStatus::ok);
        s.expect(chunk("job-1", 1, 2), WriteStatus::ok);
        s.expect(done("job-1", 1, 3), WriteStatus::ok);
        // The duplicate check comes before the state check.
        CHECK(s.expect(chunk("job-1", 1, 2), WriteStatus::duplicate).acked_wseq == 3);
        CHECK(s.expect(done("job-1", 1, 3), WriteStatus::duplicate).acked_wseq == 3);
        const WriteResult late = s.expect(chunk("job-1", 1, 4), WriteStatus::conflict);
        CHECK(late.acked_wseq == 3);
        CHECK_THAT(late.message, Catch::Contains("not running"));
        s.expect(checkpoint("job-1", 1, 4, "ck"), WriteStatus::conflict);
        CHECK(s.log("job-1").size() == 6);
        CHECK(acks(s, "job-1") == std::vector<std::string>{"1 ok 1", "1 ok 2", "1 ok 3",
                                                           "1 duplicate 3", "1 duplicate 3",
                                                           "1 conflict 3", "1 conflict 3"});
    });
}

TEST_CASE("SaveCheckpoint: kept without an event, handed to the next attempt's lease",
          "[contract]") {
    for_each_store([](Session& s) {
        s.create_running("job-1");
        const std::string first("stage\0one\xff", 10);
        CHECK(s.expect(checkpoint("job-1", 1, 1, first), WriteStatus::ok).acked_wseq == 1);
        CHECK(s.require_job("job-1").checkpoint == first);
        CHECK(s.expect(checkpoint("job-1", 1, 2, "stage two"), WriteStatus::ok).acked_wseq == 2);
        CHECK(s.expect(checkpoint("job-1", 1, 4, "ahead"), WriteStatus::gap).acked_wseq == 2);
        CHECK(s.require_job("job-1").checkpoint == "stage two");
        CHECK(s.last_seq("job-1") == 2);

        // A retryable failure: queued again, attempt kept, checkpoint kept.
        s.expect(fail("job-1", 1, 3, "boom", true), WriteStatus::ok);
        const Job queued = s.require_job("job-1");
        CHECK(queued.state == JobState::queued);
        CHECK(queued.attempt == 1);
        CHECK(queued.worker.empty());
        CHECK(queued.checkpoint == "stage two");
        CHECK(queued.finished_at == 0);

        const WriteResult next = s.expect(lease("job-1", "w2", kLeasedAt + 10), WriteStatus::ok);
        REQUIRE(next.job);
        CHECK(next.job->attempt == 2);
        CHECK(next.job->checkpoint == "stage two");
        const auto outcomes = s.leases_of("job-1");
        REQUIRE(outcomes.size() == 2);
        REQUIRE(outcomes[1].leased);
        CHECK(outcomes[1].leased->checkpoint == "stage two");
        // The new attempt numbers its messages from 1; the old one is out.
        s.expect(chunk("job-1", 1, 4), WriteStatus::conflict);
        CHECK(s.expect(chunk("job-1", 2, 1), WriteStatus::ok).acked_wseq == 1);
    });
}

TEST_CASE("a resumed attempt's running event names the seq its checkpoint covers", "[contract]") {
    for_each_store([](Session& s) {
        s.create_running("job-1");  // seq 1 queued, 2 running
        s.expect(chunk("job-1", 1, 1), WriteStatus::ok);
        s.expect(chunk("job-1", 1, 2), WriteStatus::ok);
        s.expect(checkpoint("job-1", 1, 3, "two tokens"), WriteStatus::ok);
        CHECK(s.require_job("job-1").checkpoint_seq == 4);
        s.expect(chunk("job-1", 1, 4), WriteStatus::ok);  // seq 5: past the checkpoint
        s.expect(requeue("job-1", 1), WriteStatus::ok);   // seq 6
        s.expect(lease("job-1", "w2", kLeasedAt + 10), WriteStatus::ok);
        CHECK(described(s.log("job-1")).back() ==
              state_event(7, kLeasedUs + 10'000,
                          R"({"state":"running","attempt":2,"worker":"w2","resume_seq":4})"));

        // No checkpoint: the next attempt starts over, and its event says nothing more.
        s.create_running("job-2");
        s.expect(chunk("job-2", 1, 1), WriteStatus::ok);
        s.expect(requeue("job-2", 1), WriteStatus::ok);
        s.expect(lease("job-2", "w2", kLeasedAt + 10), WriteStatus::ok);
        CHECK(s.require_job("job-2").checkpoint_seq == 0);
        CHECK(
            described(s.log("job-2")).back() ==
            state_event(5, kLeasedUs + 10'000, R"({"state":"running","attempt":2,"worker":"w2"})"));
    });
}

TEST_CASE("FinishJob success: a result event, then succeeded, the job takes nothing more",
          "[contract]") {
    for_each_store([](Session& s) {
        s.create_running("job-1");
        s.expect(chunk("job-1", 1, 1), WriteStatus::ok);
        const WriteResult finished = s.expect(done("job-1", 1, 2), WriteStatus::ok);
        CHECK(finished.acked_wseq == 2);
        REQUIRE(finished.job);
        CHECK(finished.job->state == JobState::succeeded);
        const Job job = s.require_job("job-1");
        CHECK(job.state == JobState::succeeded);
        CHECK(job.result == R"({"answer":42})");
        CHECK(job.progress == 1.0);
        CHECK(job.worker == "w1");  // who ran it stays on record
        CHECK(job.finished_at == kFinishedAt);
        const auto log = described(s.log("job-1"));
        REQUIRE(log.size() == 5);
        CHECK(log[3] == "4 result " + std::to_string(kFinishedUs) + R"( {"answer":42})");
        CHECK(log[4] == state_event(5, kFinishedUs, R"({"state":"succeeded","attempt":1})"));

        s.expect(lease("job-1", "w2", kLeasedAt + 10), WriteStatus::conflict);
        s.expect(requeue("job-1", 1), WriteStatus::conflict);
        CHECK_THAT(s.expect(cancel("job-1"), WriteStatus::conflict).message,
                   Catch::Contains("already finished"));
        CHECK(s.log("job-1").size() == 5);
        CHECK(s.require_job("job-1").state == JobState::succeeded);
    });
}

TEST_CASE("FinishJob failure: retried while attempts are left, else failed", "[contract]") {
    for_each_store([](Session& s) {
        // Retryable, attempts left: queued again with the reason (see also the checkpoint case).
        s.create_running("retry", /*max_attempts=*/2);
        s.expect(fail("retry", 1, 1, "boom", true), WriteStatus::ok);
        CHECK(described(s.log("retry")).back() ==
              state_event(4, kFinishedUs,
                          R"({"state":"queued","attempt":1,"reason":"retry: boom"})"));
        // Its second and last attempt fails for good, retryable or not.
        s.expect(lease("retry", "w1", kLeasedAt + 10), WriteStatus::ok);
        s.expect(fail("retry", 2, 1, "boom again", true), WriteStatus::ok);
        const Job retried = s.require_job("retry");
        CHECK(retried.state == JobState::failed);
        CHECK(retried.attempt == 2);
        CHECK(retried.error == "boom again");
        CHECK(retried.finished_at == kFinishedAt);

        // Not retryable: failed at once; the error event, then the state.
        s.create_running("fatal");
        s.expect(fail("fatal", 1, 1, "bad \"input\"", false), WriteStatus::ok);
        const auto log = described(s.log("fatal"));
        REQUIRE(log.size() == 4);
        CHECK(log[2] ==
              "3 error " + std::to_string(kFinishedUs) + R"( {"message":"bad \"input\""})");
        CHECK(log[3] == state_event(4, kFinishedUs,
                                    R"({"state":"failed","attempt":1,"reason":"bad \"input\""})"));
        CHECK(s.require_job("fatal").state == JobState::failed);

        // Retryable on a job of one attempt: failed.
        s.create_running("once", /*max_attempts=*/1);
        s.expect(fail("once", 1, 1, "boom", true), WriteStatus::ok);
        CHECK(s.require_job("once").state == JobState::failed);
    });
}

TEST_CASE("RequeueJob: fenced by attempt, queued again, failed, or cancelled", "[contract]") {
    for_each_store([](Session& s) {
        s.create_running("job-1");
        s.expect(checkpoint("job-1", 1, 1, "ck"), WriteStatus::ok);
        CHECK_THAT(s.expect(requeue("job-1", 2), WriteStatus::conflict).message,
                   Catch::Contains("lease lost"));
        const WriteResult requeued = s.expect(requeue("job-1", 1), WriteStatus::ok);
        REQUIRE(requeued.job);
        CHECK(requeued.job->state == JobState::queued);
        CHECK(requeued.job->attempt == 1);
        CHECK(requeued.job->worker.empty());
        CHECK(requeued.job->checkpoint == "ck");
        CHECK(described(s.log("job-1")).back() ==
              state_event(3, kFinishedUs,
                          R"({"state":"queued","attempt":1,"reason":"worker gone"})"));
        // The old worker's late message is refused, its committed ones still acked.
        s.expect(chunk("job-1", 1, 2), WriteStatus::conflict);
        s.expect(checkpoint("job-1", 1, 1, "ck"), WriteStatus::duplicate);
        // Only a running job can lose its lease.
        s.expect(requeue("job-1", 1), WriteStatus::conflict);

        s.create_running("last", /*max_attempts=*/1);
        s.expect(requeue("last", 1), WriteStatus::ok);
        const Job failed = s.require_job("last");
        CHECK(failed.state == JobState::failed);
        CHECK(failed.error == "worker gone; gave up after 1 attempts");

        s.create_running("asked");
        s.expect(cancel("asked"), WriteStatus::ok);
        s.expect(requeue("asked", 1), WriteStatus::ok);
        CHECK(s.require_job("asked").state == JobState::cancelled);
    });
}

TEST_CASE("CancelJob: queued now, running asked (the worker's answer decides) or forced",
          "[contract]") {
    for_each_store([](Session& s) {
        s.expect(create("queued"), WriteStatus::ok);
        const WriteResult cancelled = s.expect(cancel("queued"), WriteStatus::ok);
        REQUIRE(cancelled.job);
        CHECK(cancelled.job->state == JobState::cancelled);
        CHECK(s.require_job("queued").finished_at == kFinishedAt);
        CHECK(described(s.log("queued")).back() ==
              state_event(2, kFinishedUs,
                          R"({"state":"cancelled","attempt":0,"reason":"cancelled"})"));
        s.expect(lease("queued"), WriteStatus::conflict);
        CHECK_THAT(s.expect(cancel("queued"), WriteStatus::conflict).message,
                   Catch::Contains("already finished"));

        // Running, not forced: flagged, no event; the worker's fail cancels it...
        s.create_running("asked");
        const WriteResult asked = s.expect(cancel("asked"), WriteStatus::ok);
        REQUIRE(asked.job);
        CHECK(asked.job->state == JobState::running);
        CHECK(asked.job->cancel_requested);
        CHECK(s.last_seq("asked") == 2);
        s.expect(fail("asked", 1, 1, "stopped", true), WriteStatus::ok);
        CHECK(s.require_job("asked").state == JobState::cancelled);
        CHECK(described(s.log("asked")).back() ==
              state_event(4, kFinishedUs,
                          R"({"state":"cancelled","attempt":1,"reason":"cancelled"})"));
        // ... while its done still succeeds.
        s.create_running("finishes");
        s.expect(cancel("finishes"), WriteStatus::ok);
        s.expect(done("finishes", 1, 1), WriteStatus::ok);
        CHECK(s.require_job("finishes").state == JobState::succeeded);

        // Forced: cancelled now; the worker's next message is refused.
        s.create_running("forced");
        const WriteResult forced = s.expect(cancel("forced", true), WriteStatus::ok);
        REQUIRE(forced.job);
        CHECK(forced.job->state == JobState::cancelled);
        CHECK(s.expect(chunk("forced", 1, 1), WriteStatus::conflict).acked_wseq == 0);
        CHECK(s.log("forced").size() == 3);
    });
}

TEST_CASE("every op on an unknown job is not_found, and nothing is written", "[contract]") {
    for_each_store([](Session& s) {
        s.expect(lease("nope"), WriteStatus::not_found);
        s.expect(chunk("nope", 1, 1), WriteStatus::not_found);
        s.expect(checkpoint("nope", 1, 1, "ck"), WriteStatus::not_found);
        s.expect(done("nope", 1, 1), WriteStatus::not_found);
        s.expect(fail("nope", 1, 1, "x", true), WriteStatus::not_found);
        s.expect(requeue("nope", 1), WriteStatus::not_found);
        s.expect(cancel("nope"), WriteStatus::not_found);
        s.expect(cancel("nope", true), WriteStatus::not_found);
        CHECK_FALSE(s.get("nope"));
        CHECK_FALSE(s.last_seq("nope"));
        CHECK(s.read("nope", 0, 100, 1 << 20).empty());
        // Worker ops are still answered to their worker.
        CHECK(acks(s, "nope") == std::vector<std::string>{"1 not_found 0", "1 not_found 0",
                                                          "1 not_found 0", "1 not_found 0"});
        CHECK(s.events_of("nope").empty());
    });
}

}  // namespace jobcast::contract
