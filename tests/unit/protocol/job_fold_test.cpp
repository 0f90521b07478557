// The job fold behind GET /v1/jobs/{id}/snapshot: its rules, and that a fold
// at any seq followed by the rest of the log equals the whole log folded.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "protocol/job_fold.hpp"

using namespace jobcast;
using namespace jobcast::client_api;

namespace {

Event event(std::uint64_t seq, EventKind kind, std::string data) {
    Event e;
    e.seq = seq;
    e.kind = kind;
    e.ts = 1'700'000'000'000'000;
    e.data = std::move(data);
    return e;
}

std::vector<Event> log_of_a_job() {
    return {event(1, EventKind::state, R"({"state":"queued","attempt":0})"),
            event(2, EventKind::state, R"({"state":"running","attempt":1})"),
            event(3, EventKind::token, R"({"text":"Hel"})"),
            event(4, EventKind::progress, R"({"fraction":0.25,"stage":"draft"})"),
            event(5, EventKind::log, R"({"level":"info","message":"one"})"),
            event(6, EventKind::error, R"({"message":"lost"})"),
            event(7, EventKind::state, R"({"state":"queued","attempt":1,"reason":"retry"})"),
            event(8, EventKind::state, R"({"state":"running","attempt":2,"resume_seq":3})"),
            event(9, EventKind::token, R"({"text":"lo \"q\"\n"})"),
            event(10, EventKind::log, R"({"level":"info","message":"two"})"),
            event(11, EventKind::progress, R"({"fraction":0.75})"),
            event(12, EventKind::log, R"({"level":"warn","message":"three"})"),
            event(13, EventKind::result, R"({"text":"Hello"})"),
            event(14, EventKind::state, R"({"state":"succeeded","attempt":2})")};
}

Job job_at(std::uint64_t last_seq) {
    Job job;
    job.id = "J1";
    job.type = "llm.generate";
    job.owner = "alice";
    job.last_seq = last_seq;
    return job;
}

}  // namespace

TEST_CASE("fold: the rules per kind", "[job_fold]") {
    JobFold fold;
    auto all = log_of_a_job();
    fold_events(fold, std::vector<Event>(all.begin(), all.begin() + 6), 2);
    CHECK(fold.seq == 6);
    CHECK(fold.state == JobState::running);
    CHECK(fold.attempt == 1);
    CHECK(fold.text == "Hel");
    CHECK(fold.progress == 0.25);
    CHECK(fold.stage == "draft");
    CHECK(fold.error == "lost");
    fold_events(fold, all, 2);
    CHECK(fold.seq == 14);
    CHECK(fold.state == JobState::succeeded);
    CHECK(fold.attempt == 2);
    CHECK(fold.text == "Hello \"q\"\n");
    CHECK(fold.progress == 1);
    CHECK(fold.stage == "draft");  // a progress event without a stage keeps it
    CHECK(fold.logs == std::deque<std::string>{R"({"level":"info","message":"two"})",
                                               R"({"level":"warn","message":"three"})"});
    CHECK(fold.result == R"({"text":"Hello"})");
    CHECK(fold.error.empty());  // the new attempt cleared it
}

TEST_CASE("fold: a failed job keeps its reason as the error", "[job_fold]") {
    JobFold fold;
    fold_events(
        fold, {event(1, EventKind::state, R"({"state":"running","attempt":1})"),
               event(2, EventKind::state, R"({"state":"failed","attempt":1,"reason":"gave up"})")});
    CHECK(fold.error == "gave up");
    auto body = boost::json::parse(snapshot_body(job_at(2), fold)).as_object();
    CHECK(body.at("error") == "gave up");
    CHECK(body.at("state") == "failed");
    CHECK_FALSE(body.contains("result"));
}

TEST_CASE("fold: a fold at any seq plus the events after it equals the whole fold", "[job_fold]") {
    auto all = log_of_a_job();
    JobFold whole;
    fold_events(whole, all);
    const std::string expected = snapshot_body(job_at(14), whole);
    for (std::size_t split = 0; split <= all.size(); ++split) {
        JobFold fold;
        fold_events(fold, std::vector<Event>(all.begin(),
                                             all.begin() + static_cast<std::ptrdiff_t>(split)));
        CHECK(fold.seq == split);
        fold_events(fold, all);  // the events up to `split` again: skipped
        CHECK(snapshot_body(job_at(14), fold) == expected);
    }
}

TEST_CASE("snapshot body is exact and escapes the text", "[job_fold]") {
    JobFold fold;
    fold_events(fold, {event(1, EventKind::token, R"({"text":"a\"b\\c\u0002"})"),
                       event(2, EventKind::log, R"({"level":"info","message":"m"})")});
    std::string body = snapshot_body(job_at(2), fold);
    CHECK(body.find(R"(,"seq":2,"state":null,"attempt":0,"text":"a\"b\\c\u0002",)"
                    R"("progress":0,"stage":null,"logs":[{"level":"info","message":"m"}]})") !=
          std::string::npos);
    auto parsed = boost::json::parse(body).as_object();
    CHECK(parsed.at("job").at("id") == "J1");

    Job done = job_at(3);
    done.result = R"({"text":"a"})";
    fold_events(fold, {event(3, EventKind::result, done.result)});
    auto finished = boost::json::parse(snapshot_body(done, fold)).as_object();
    CHECK(finished.at("result").at("text") == "a");
    CHECK(finished.at("job").at("result").is_null());  // given once
    CHECK(parsed.at("text") == "a\"b\\c\x02");
}

TEST_CASE("fold: a resumed attempt cuts the text back to its resume_seq, none starts over",
          "[job_fold]") {
    std::vector<Event> all = {
        event(1, EventKind::state, R"({"state":"running","attempt":1})"),
        event(2, EventKind::token, R"({"text":"one "})"),
        event(3, EventKind::token, R"({"text":"two "})"),  // the checkpoint covers seq 3
        event(4, EventKind::progress, R"({"fraction":0.6})"),
        event(5, EventKind::token, R"({"text":"thr"})"),  // past it: emitted again
        event(6, EventKind::state, R"({"state":"queued","attempt":1,"reason":"lease lost"})"),
        event(7, EventKind::state, R"({"state":"running","attempt":2,"resume_seq":3})"),
        event(8, EventKind::progress, R"({"fraction":0.5})"),
        event(9, EventKind::token, R"({"text":"three"})")};
    JobFold fold;
    fold_events(fold, std::vector<Event>(all.begin(), all.begin() + 6));
    CHECK(fold.text == "one two thr");
    fold_events(fold, all);
    CHECK(fold.text == "one two three");
    CHECK(fold.attempt == 2);
    CHECK(fold.progress == 0.6);  // never back, not even on a retry

    // Attempt 3 resumes from the same checkpoint (attempt 2 saved none).
    fold_events(fold,
                {event(10, EventKind::state, R"({"state":"queued","attempt":2})"),
                 event(11, EventKind::state, R"({"state":"running","attempt":3,"resume_seq":3})"),
                 event(12, EventKind::token, R"({"text":"3"})")});
    CHECK(fold.text == "one two 3");
    // Attempt 4 has no checkpoint to resume from: it starts over.
    fold_events(fold, {event(13, EventKind::state, R"({"state":"queued","attempt":3})"),
                       event(14, EventKind::state, R"({"state":"running","attempt":4})")});
    CHECK(fold.text.empty());
}

TEST_CASE("snapshot: an unfinished job with a checkpoint says the text length at it",
          "[job_fold]") {
    JobFold fold;
    fold_events(fold, {event(1, EventKind::state, R"({"state":"running","attempt":1})"),
                       event(2, EventKind::token, R"({"text":"h\u00e9 \ud83d\ude00"})"),
                       event(3, EventKind::token, R"({"text":"more"})")});
    Job job = job_at(3);
    job.state = JobState::running;
    job.checkpoint = "1";
    job.checkpoint_seq = 2;
    auto body = boost::json::parse(snapshot_body(job, fold)).as_object();
    // "hé 😀": 4 code points, the emoji two UTF-16 code units.
    CHECK(body.at("resume") == boost::json::parse(R"({"seq":2,"text_length":5})"));
    job.state = JobState::succeeded;
    CHECK_FALSE(boost::json::parse(snapshot_body(job, fold)).as_object().contains("resume"));
}
