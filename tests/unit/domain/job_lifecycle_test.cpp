// The lifecycle rules as pure calls: every transition and every refusal, with
// the record each leaves and the events each asks the store to append.
#include "domain/job_lifecycle.hpp"

#include <catch2/catch.hpp>

namespace jobcast::domain {
namespace {

constexpr UnixMs kCreated = 1'700'000'000'000;
constexpr UnixMs kLeased = 1'700'000'001'000;
constexpr UnixMs kNow = 1'700'000'003'000;

JobRecord submitted(int max_attempts = 3) {
    JobRecord record;
    record.job.id = "job-1";
    record.job.type = "test";
    record.job.owner = "alice";
    record.job.params = R"({"n":1})";
    record.job.priority = 2;
    record.job.max_attempts = max_attempts;
    return record;
}

JobRecord queued(int max_attempts = 3) {
    JobRecord record = submitted(max_attempts);
    REQUIRE(create(record, kCreated).ok());
    return record;
}

// Leased by w1, attempt 1, with `committed` worker messages already taken.
JobRecord running(int max_attempts = 3, std::uint64_t committed = 0) {
    JobRecord record = queued(max_attempts);
    REQUIRE(lease(record, "w1", kLeased).ok());
    record.wseq = committed;
    return record;
}

bool same(const JobRecord& a, const JobRecord& b) {
    const Job& x = a.job;
    const Job& y = b.job;
    return a.wseq == b.wseq && x.id == y.id && x.state == y.state && x.attempt == y.attempt &&
           x.max_attempts == y.max_attempts && x.worker == y.worker && x.progress == y.progress &&
           x.checkpoint == y.checkpoint && x.result == y.result && x.error == y.error &&
           x.cancel_requested == y.cancel_requested && x.started_at == y.started_at &&
           x.finished_at == y.finished_at;
}

// A refusal leaves the record exactly as it was and asks for no events.
void check_refused(const Decision& decision, const JobRecord& before, const JobRecord& after,
                   WriteStatus status) {
    CHECK(decision.status == status);
    CHECK_FALSE(decision.message.empty());
    CHECK(decision.events.empty());
    CHECK_FALSE(decision.lifecycle_changed);
    CHECK(same(before, after));
}

void check_state_event(const Event& event, UnixMs now, std::string_view data) {
    CHECK(event.kind == EventKind::state);
    CHECK(event.ts == now * 1000);
    CHECK(event.data == data);
}

}  // namespace

TEST_CASE("create queues the submitted job at attempt 0", "[domain]") {
    JobRecord record = submitted();
    record.job.params.clear();
    record.job.max_attempts = 0;
    record.job.state = JobState::failed;  // whatever the submitter said
    record.job.attempt = 4;
    record.job.worker = "w9";
    record.job.progress = 0.5;
    record.job.checkpoint = "ck";
    record.job.error = "e";
    record.job.cancel_requested = true;
    record.job.finished_at = 9;
    record.wseq = 7;

    const Decision decision = create(record, kCreated);
    REQUIRE(decision.ok());
    CHECK(decision.lifecycle_changed);
    CHECK(decision.acked_wseq == 0);
    const Job& job = record.job;
    CHECK(job.id == "job-1");
    CHECK(job.owner == "alice");
    CHECK(job.priority == 2);
    CHECK(job.params == "{}");
    CHECK(job.max_attempts == 1);
    CHECK(job.state == JobState::queued);
    CHECK(job.attempt == 0);
    CHECK(job.worker.empty());
    CHECK(job.progress == 0);
    CHECK(job.checkpoint.empty());
    CHECK(job.error.empty());
    CHECK_FALSE(job.cancel_requested);
    CHECK(job.created_at == kCreated);
    CHECK(job.finished_at == 0);
    CHECK(record.wseq == 0);
    REQUIRE(decision.events.size() == 1);
    check_state_event(decision.events[0], kCreated, R"({"state":"queued","attempt":0})");
}

TEST_CASE("create_again: the same submission is a retry, anything else under its id a conflict",
          "[domain]") {
    JobRecord existing = running();
    const JobRecord before = existing;
    JobRecord resubmitted = submitted();
    REQUIRE(create(resubmitted, kCreated).ok());

    const Decision again = create_again(existing, resubmitted.job);
    REQUIRE(again.ok());
    CHECK(again.events.empty());
    CHECK_FALSE(again.lifecycle_changed);
    CHECK(same(before, existing));

    SECTION("another owner, type, params or creation time") {
        JobRecord other = resubmitted;
        SECTION("owner") {
            other.job.owner = "bob";
        }
        SECTION("type") {
            other.job.type = "other";
        }
        SECTION("params") {
            other.job.params = R"({"n":2})";
        }
        SECTION("created_at") {
            other.job.created_at = kCreated + 1;
        }
        const Decision refused = create_again(existing, other.job);
        CHECK(refused.status == WriteStatus::conflict);
        CHECK(refused.message == "job id job-1 already exists");
        CHECK(refused.events.empty());
        CHECK_FALSE(refused.lifecycle_changed);
    }
}

TEST_CASE("lease starts the next attempt of a queued job", "[domain]") {
    JobRecord record = queued();
    record.wseq = 5;  // the last attempt's counter
    const Decision decision = lease(record, "w\"1\\", kLeased);
    REQUIRE(decision.ok());
    CHECK(decision.lifecycle_changed);
    CHECK(record.job.state == JobState::running);
    CHECK(record.job.attempt == 1);
    CHECK(record.job.worker == "w\"1\\");
    CHECK(record.job.started_at == kLeased);
    CHECK(record.wseq == 0);
    CHECK(decision.acked_wseq == 0);
    REQUIRE(decision.events.size() == 1);
    check_state_event(decision.events[0], kLeased,
                      R"({"state":"running","attempt":1,"worker":"w\"1\\"})");
}

TEST_CASE("the same lease again is accepted without a change", "[domain]") {
    JobRecord record = running(3, /*committed=*/0);
    const JobRecord before = record;
    const Decision again = lease(record, "w1", kLeased);
    REQUIRE(again.ok());
    CHECK(again.events.empty());
    CHECK_FALSE(again.lifecycle_changed);
    CHECK(same(before, record));
    SECTION("another worker or another time is not the same lease") {
        check_refused(lease(record, "w2", kLeased), before, record, WriteStatus::conflict);
        check_refused(lease(record, "w1", kLeased + 1), before, record, WriteStatus::conflict);
    }
}

TEST_CASE("lease refusals", "[domain]") {
    SECTION("not queued") {
        JobRecord record = running();
        const JobRecord before = record;
        const Decision decision = lease(record, "w2", kNow);
        check_refused(decision, before, record, WriteStatus::conflict);
        CHECK(decision.message == "job is running, not queued");
    }
    SECTION("finished") {
        JobRecord record = queued();
        REQUIRE(cancel(record, false, kNow).ok());
        const JobRecord before = record;
        check_refused(lease(record, "w2", kNow), before, record, WriteStatus::conflict);
    }
    SECTION("cancel requested") {
        JobRecord record = queued();
        record.job.cancel_requested = true;
        const JobRecord before = record;
        const Decision decision = lease(record, "w2", kNow);
        check_refused(decision, before, record, WriteStatus::conflict);
        CHECK(decision.message == "cancel requested");
    }
    SECTION("max_attempts used up") {
        JobRecord record = queued(/*max_attempts=*/2);
        record.job.attempt = 2;
        const JobRecord before = record;
        const Decision decision = lease(record, "w2", kNow);
        check_refused(decision, before, record, WriteStatus::conflict);
        CHECK(decision.message == "no attempts left");
    }
}

TEST_CASE("a worker's message: lease, duplicate, state and gap checks in that order", "[domain]") {
    JobRecord record = running(3, /*committed=*/4);
    const JobRecord before = record;

    SECTION("the next wseq of the current attempt is accepted") {
        const Decision decision = check_worker_message(record, 1, 5);
        CHECK(decision.ok());
        CHECK(decision.acked_wseq == 4);
    }
    // Checks that the message is refused with `status` and acks `acked`; returns
    // the decision for its message.
    auto refused = [&](int attempt, std::uint64_t wseq, WriteStatus status, std::uint64_t acked) {
        const Decision decision = check_worker_message(record, attempt, wseq);
        check_refused(decision, before, record, status);
        CHECK(decision.acked_wseq == acked);
        return decision;
    };
    SECTION("another attempt has lost the lease, and is not acked") {
        CHECK(refused(2, 5, WriteStatus::conflict, 0).message ==
              "lease lost: attempt 2 is not the current attempt 1");
    }
    SECTION("a committed wseq is a duplicate, acked with the committed one") {
        for (std::uint64_t wseq : {1, 4})
            refused(1, wseq, WriteStatus::duplicate, 4);
    }
    SECTION("a wseq past the next one is a gap") {
        CHECK(refused(1, 6, WriteStatus::gap, 4).message == "expected wseq 5, got 6");
    }
    SECTION("after the attempt ended, a resent message is still a duplicate") {
        REQUIRE(finish(record, 1, 5, "{}", kNow).ok());
        const JobRecord done = record;
        check_refused(check_worker_message(record, 1, 5), done, record, WriteStatus::duplicate);
        const Decision late = check_worker_message(record, 1, 6);
        check_refused(late, done, record, WriteStatus::conflict);
        CHECK(late.message == "not running: job is succeeded");
        CHECK(late.acked_wseq == 5);
    }
    SECTION("a requeued job refuses the old attempt") {
        REQUIRE(requeue(record, 1, "", kNow).ok());
        const JobRecord requeued = record;
        check_refused(check_worker_message(record, 1, 5), requeued, record, WriteStatus::conflict);
        check_refused(check_worker_message(record, 1, 4), requeued, record, WriteStatus::duplicate);
    }
}

TEST_CASE("accept_chunk takes the wseq and the progress, not the event", "[domain]") {
    JobRecord record = running();

    const Decision token = accept_chunk(record, 1, 1, EventKind::token, R"({"text":"a"})");
    REQUIRE(token.ok());
    CHECK(token.acked_wseq == 1);
    CHECK(token.events.empty());  // the store appends the worker's event itself
    CHECK_FALSE(token.lifecycle_changed);
    CHECK(record.wseq == 1);
    CHECK(record.job.progress == 0);

    const Decision progress =
        accept_chunk(record, 1, 2, EventKind::progress, R"({"stage":"x", "fraction" : 0.25})");
    REQUIRE(progress.ok());
    CHECK(record.job.progress == Approx(0.25));
    CHECK(record.wseq == 2);

    SECTION("a progress event without a fraction keeps the progress") {
        REQUIRE(accept_chunk(record, 1, 3, EventKind::progress, R"({"stage":"y"})").ok());
        CHECK(record.job.progress == Approx(0.25));
    }
    SECTION("state events are the broker's alone") {
        const JobRecord before = record;
        const Decision decision =
            accept_chunk(record, 1, 3, EventKind::state, R"({"state":"succeeded"})");
        check_refused(decision, before, record, WriteStatus::conflict);
        CHECK(decision.message == "state events are written by the broker only");
        CHECK(decision.acked_wseq == 2);
    }
    SECTION("refused like any worker message") {
        const JobRecord before = record;
        check_refused(accept_chunk(record, 1, 2, EventKind::log, "{}"), before, record,
                      WriteStatus::duplicate);
        check_refused(accept_chunk(record, 1, 4, EventKind::log, "{}"), before, record,
                      WriteStatus::gap);
        check_refused(accept_chunk(record, 3, 3, EventKind::progress, R"({"fraction":1})"), before,
                      record, WriteStatus::conflict);
    }
}

TEST_CASE("accept_checkpoint replaces the bytes without an event", "[domain]") {
    JobRecord record = running();
    const std::string bytes("stage\0two\xff", 10);
    const Decision decision = accept_checkpoint(record, 1, 1, bytes);
    REQUIRE(decision.ok());
    CHECK(decision.events.empty());
    CHECK_FALSE(decision.lifecycle_changed);
    CHECK(decision.acked_wseq == 1);
    CHECK(record.job.checkpoint == bytes);
    CHECK(record.wseq == 1);

    const JobRecord before = record;
    check_refused(accept_checkpoint(record, 1, 1, "other"), before, record, WriteStatus::duplicate);
    check_refused(accept_checkpoint(record, 1, 3, "other"), before, record, WriteStatus::gap);
    check_refused(accept_checkpoint(record, 2, 2, "other"), before, record, WriteStatus::conflict);
}

TEST_CASE("finish: a result event, then succeeded", "[domain]") {
    JobRecord record = running();
    const Decision decision = finish(record, 1, 1, R"({"text":"hi"})", kNow);
    REQUIRE(decision.ok());
    CHECK(decision.lifecycle_changed);
    CHECK(decision.acked_wseq == 1);
    const Job& job = record.job;
    CHECK(job.state == JobState::succeeded);
    CHECK(job.result == R"({"text":"hi"})");
    CHECK(job.progress == 1.0);
    CHECK(job.worker == "w1");  // who ran it stays on record
    CHECK(job.finished_at == kNow);
    CHECK(record.wseq == 1);
    REQUIRE(decision.events.size() == 2);
    CHECK(decision.events[0].kind == EventKind::result);
    CHECK(decision.events[0].ts == kNow * 1000);
    CHECK(decision.events[0].data == R"({"text":"hi"})");
    check_state_event(decision.events[1], kNow, R"({"state":"succeeded","attempt":1})");

    SECTION("an empty result is an empty object") {
        JobRecord other = running();
        const Decision empty = finish(other, 1, 1, "", kNow);
        REQUIRE(empty.ok());
        CHECK(other.job.result == "{}");
        CHECK(empty.events[0].data == "{}");
    }
    SECTION("a finished job takes no more messages") {
        const JobRecord before = record;
        check_refused(finish(record, 1, 2, "{}", kNow), before, record, WriteStatus::conflict);
        check_refused(fail(record, 1, 2, "x", true, kNow), before, record, WriteStatus::conflict);
        check_refused(finish(record, 1, 1, "{}", kNow), before, record, WriteStatus::duplicate);
    }
    SECTION("a cancel request does not stop a worker that succeeds") {
        JobRecord other = running();
        REQUIRE(cancel(other, false, kNow).ok());
        REQUIRE(finish(other, 1, 1, "{}", kNow).ok());
        CHECK(other.job.state == JobState::succeeded);
    }
}

TEST_CASE("fail: an error event, then retry, failed or cancelled", "[domain]") {
    SECTION("retryable with attempts left: queued again, worker cleared, checkpoint kept") {
        JobRecord record = running();
        REQUIRE(accept_checkpoint(record, 1, 1, "ck").ok());
        const Decision decision = fail(record, 1, 2, "boom", true, kNow);
        REQUIRE(decision.ok());
        CHECK(decision.lifecycle_changed);
        CHECK(decision.acked_wseq == 2);
        const Job& job = record.job;
        CHECK(job.state == JobState::queued);
        CHECK(job.worker.empty());
        CHECK(job.checkpoint == "ck");
        CHECK(job.error == "boom");
        CHECK(job.finished_at == 0);
        REQUIRE(decision.events.size() == 2);
        CHECK(decision.events[0].kind == EventKind::error);
        CHECK(decision.events[0].ts == kNow * 1000);
        CHECK(decision.events[0].data == R"({"message":"boom"})");
        check_state_event(decision.events[1], kNow,
                          R"({"state":"queued","attempt":1,"reason":"retry: boom"})");

        // The next attempt numbers its messages from 1 again.
        REQUIRE(lease(record, "w2", kNow).ok());
        CHECK(record.job.attempt == 2);
        CHECK(record.wseq == 0);
        CHECK(record.job.checkpoint == "ck");
        CHECK(check_worker_message(record, 2, 1).ok());
    }
    SECTION("not retryable: failed") {
        JobRecord record = running();
        const Decision decision = fail(record, 1, 1, "bad \"input\"", false, kNow);
        REQUIRE(decision.ok());
        CHECK(record.job.state == JobState::failed);
        CHECK(record.job.error == "bad \"input\"");
        CHECK(record.job.finished_at == kNow);
        CHECK(decision.events[0].data == R"({"message":"bad \"input\""})");
        check_state_event(decision.events[1], kNow,
                          R"({"state":"failed","attempt":1,"reason":"bad \"input\""})");
    }
    SECTION("retryable on the last attempt (max_attempts): failed") {
        JobRecord record = running(/*max_attempts=*/1);
        REQUIRE(fail(record, 1, 1, "boom", true, kNow).ok());
        CHECK(record.job.state == JobState::failed);
    }
    SECTION("retryable on the third of three attempts: failed") {
        JobRecord record = running(/*max_attempts=*/3);
        for (int attempt = 1; attempt <= 3; ++attempt) {
            if (attempt > 1) REQUIRE(lease(record, "w1", kNow).ok());
            REQUIRE(fail(record, attempt, 1, "boom", true, kNow).ok());
        }
        CHECK(record.job.state == JobState::failed);
        CHECK(record.job.attempt == 3);
        const JobRecord before = record;
        check_refused(lease(record, "w1", kNow), before, record, WriteStatus::conflict);
    }
    SECTION("after a cancel request: cancelled") {
        JobRecord record = running();
        REQUIRE(cancel(record, false, kNow).ok());
        const Decision decision = fail(record, 1, 1, "stopped", true, kNow);
        REQUIRE(decision.ok());
        CHECK(record.job.state == JobState::cancelled);
        CHECK(record.job.finished_at == kNow);
        check_state_event(decision.events[1], kNow,
                          R"({"state":"cancelled","attempt":1,"reason":"cancelled"})");
    }
    SECTION("refused like any worker message") {
        JobRecord record = running(3, /*committed=*/1);
        const JobRecord before = record;
        check_refused(fail(record, 1, 1, "x", true, kNow), before, record, WriteStatus::duplicate);
        check_refused(fail(record, 1, 3, "x", true, kNow), before, record, WriteStatus::gap);
        check_refused(fail(record, 2, 2, "x", true, kNow), before, record, WriteStatus::conflict);
    }
}

TEST_CASE("requeue after a lost lease: queued again, failed or cancelled", "[domain]") {
    SECTION("attempts left: queued, worker cleared, checkpoint kept") {
        JobRecord record = running(3, /*committed=*/2);
        record.job.checkpoint = "ck";
        const Decision decision = requeue(record, 1, "worker gone", kNow);
        REQUIRE(decision.ok());
        CHECK(decision.lifecycle_changed);
        CHECK(decision.acked_wseq == 2);
        CHECK(record.job.state == JobState::queued);
        CHECK(record.job.worker.empty());
        CHECK(record.job.checkpoint == "ck");
        CHECK(record.job.finished_at == 0);
        REQUIRE(decision.events.size() == 1);
        check_state_event(decision.events[0], kNow,
                          R"({"state":"queued","attempt":1,"reason":"worker gone"})");
    }
    SECTION("no reason given: lease lost") {
        JobRecord record = running();
        const Decision decision = requeue(record, 1, "", kNow);
        REQUIRE(decision.ok());
        check_state_event(decision.events[0], kNow,
                          R"({"state":"queued","attempt":1,"reason":"lease lost"})");
    }
    SECTION("no attempts left: failed, and the error says why") {
        JobRecord record = running(/*max_attempts=*/1);
        const Decision decision = requeue(record, 1, "worker gone", kNow);
        REQUIRE(decision.ok());
        CHECK(record.job.state == JobState::failed);
        CHECK(record.job.error == "worker gone; gave up after 1 attempts");
        CHECK(record.job.finished_at == kNow);
        check_state_event(
            decision.events[0], kNow,
            R"({"state":"failed","attempt":1,"reason":"worker gone; gave up after 1 attempts"})");
    }
    SECTION("cancel requested: cancelled") {
        JobRecord record = running();
        REQUIRE(cancel(record, false, kNow).ok());
        const Decision decision = requeue(record, 1, "worker gone", kNow);
        REQUIRE(decision.ok());
        CHECK(record.job.state == JobState::cancelled);
        check_state_event(decision.events[0], kNow,
                          R"({"state":"cancelled","attempt":1,"reason":"cancelled"})");
    }
    SECTION("reasons are escaped as JSON") {
        JobRecord record = running();
        const Decision decision = requeue(record, 1, "line\nbreak\x01", kNow);
        check_state_event(decision.events[0], kNow,
                          R"({"state":"queued","attempt":1,"reason":"line\nbreak\u0001"})");
    }
    SECTION("refusals: not running, another attempt") {
        JobRecord record = queued();
        JobRecord before = record;
        Decision decision = requeue(record, 0, "x", kNow);
        check_refused(decision, before, record, WriteStatus::conflict);
        CHECK(decision.message == "not running: job is queued");

        record = running();
        before = record;
        decision = requeue(record, 2, "x", kNow);
        check_refused(decision, before, record, WriteStatus::conflict);
        CHECK(decision.message == "lease lost: attempt 2 is not the current attempt 1");
    }
}

TEST_CASE("cancel: queued now, running asked or forced, finished refused", "[domain]") {
    SECTION("a queued job is cancelled now") {
        JobRecord record = queued();
        const Decision decision = cancel(record, false, kNow);
        REQUIRE(decision.ok());
        CHECK(decision.lifecycle_changed);
        CHECK(record.job.state == JobState::cancelled);
        CHECK(record.job.cancel_requested);
        CHECK(record.job.finished_at == kNow);
        REQUIRE(decision.events.size() == 1);
        check_state_event(decision.events[0], kNow,
                          R"({"state":"cancelled","attempt":0,"reason":"cancelled"})");
    }
    SECTION("a running job is flagged, without an event: its worker is asked") {
        JobRecord record = running();
        const Decision decision = cancel(record, false, kNow);
        REQUIRE(decision.ok());
        CHECK(decision.lifecycle_changed);
        CHECK(decision.events.empty());
        CHECK(record.job.state == JobState::running);
        CHECK(record.job.cancel_requested);
        CHECK(record.job.finished_at == 0);
        CHECK(record.job.worker == "w1");

        SECTION("asking again changes nothing more") {
            const Decision again = cancel(record, false, kNow);
            REQUIRE(again.ok());
            CHECK(again.events.empty());
        }
        SECTION("then forced: cancelled now") {
            REQUIRE(cancel(record, true, kNow).ok());
            CHECK(record.job.state == JobState::cancelled);
        }
    }
    SECTION("force ends a running job now") {
        JobRecord record = running(3, /*committed=*/2);
        const Decision decision = cancel(record, true, kNow);
        REQUIRE(decision.ok());
        CHECK(decision.acked_wseq == 2);
        CHECK(record.job.state == JobState::cancelled);
        CHECK(record.job.worker == "w1");
        CHECK(record.job.finished_at == kNow);
        check_state_event(decision.events[0], kNow,
                          R"({"state":"cancelled","attempt":1,"reason":"cancelled"})");
        const JobRecord before = record;
        check_refused(accept_chunk(record, 1, 3, EventKind::token, "{}"), before, record,
                      WriteStatus::conflict);
    }
    SECTION("a finished job is refused") {
        for (const bool force : {false, true}) {
            JobRecord record = running();
            REQUIRE(finish(record, 1, 1, "{}", kNow).ok());
            const JobRecord before = record;
            const Decision decision = cancel(record, force, kNow);
            check_refused(decision, before, record, WriteStatus::conflict);
            CHECK(decision.message == "already finished");
        }
    }
}

TEST_CASE("find_fraction reads the fraction of a progress event", "[domain]") {
    CHECK(find_fraction(R"({"fraction":0.5})") == Approx(0.5));
    CHECK(find_fraction(R"({"stage":"fraction","fraction": 1e-1})") == Approx(0.1));
    CHECK(find_fraction(R"({"fraction":7})") == Approx(1.0));
    CHECK(find_fraction(R"({"fraction":-2})") == Approx(0.0));
    CHECK_FALSE(find_fraction(R"({"stage":"x"})"));
    CHECK_FALSE(find_fraction(R"({"fraction":"half"})"));
    CHECK_FALSE(find_fraction(R"({"fraction":)"));
}

TEST_CASE("WriteStatus names", "[domain]") {
    CHECK(to_string(WriteStatus::ok) == "ok");
    CHECK(to_string(WriteStatus::duplicate) == "duplicate");
    CHECK(to_string(WriteStatus::gap) == "gap");
    CHECK(to_string(WriteStatus::not_found) == "not_found");
    CHECK(to_string(WriteStatus::conflict) == "conflict");
}

}  // namespace jobcast::domain
