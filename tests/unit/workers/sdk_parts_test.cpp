// The SDK's pure parts: backoff and job context (the reliable stream has its
// own test).
#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "workers/backoff.hpp"
#include "workers/job_context.hpp"
#include "workers/testing.hpp"

using namespace jobcast::worker;
using jobcast::EventKind;
using namespace std::chrono_literals;

TEST_CASE("Backoff draws each delay up to a ceiling growing from min to max, and resets") {
    Backoff backoff(100ms, 1000ms, 7);
    // Full jitter: anywhere from 0 to the ceiling, which doubles up to max.
    const std::vector<long> ceilings = {100, 200, 400, 800, 1000, 1000, 1000, 1000};
    long longest = 0;
    for (const auto ceiling : ceilings) {
        const auto d = backoff.next().count();
        CHECK(d >= 0);
        CHECK(d <= ceiling);
        longest = std::max(longest, static_cast<long>(d));
    }
    CHECK(longest > 100);  // the ceiling did grow
    backoff.reset();       // from min again
    for (const auto ceiling : ceilings)
        CHECK(backoff.next().count() <= ceiling);
    // Delays are spread, not in lock-step: 50 draws at the cap take many values.
    std::set<long> seen;
    for (int i = 0; i < 50; ++i)
        seen.insert(backoff.next().count());
    CHECK(seen.size() > 20);
}

TEST_CASE("JobContext params getters give defaults and reject wrong types") {
    RecordingSink sink;
    JobContext context(JobSpec{"j1", 2, "t",
                               R"({"s":"text","i":5,"d":2.5,"b":true,"l":["a","b"],"n":null,
                                   "bad":{"x":1},"big":1e3})",
                               "cp"},
                       sink);
    CHECK(context.job_id() == "j1");
    CHECK(context.attempt() == 2);
    CHECK(context.checkpoint() == "cp");
    CHECK(context.param_string("s") == "text");
    CHECK(context.param_string("missing", "dflt") == "dflt");
    CHECK(context.param_string("n", "null-is-missing") == "null-is-missing");
    CHECK(context.param_int("i", 0) == 5);
    CHECK(context.param_int("big", 0) == 1000);
    CHECK(context.param_double("d", 0) == 2.5);
    CHECK(context.param_double("i", 0) == 5.0);
    CHECK(context.param_bool("b", false));
    CHECK(context.param_strings("l") == std::vector<std::string>{"a", "b"});
    CHECK(context.has_param("s"));
    CHECK_FALSE(context.has_param("n"));
    CHECK_THROWS_AS(context.param_int("s", 0), Failure);
    CHECK_THROWS_AS(context.param_int("d", 0), Failure);
    CHECK_THROWS_AS(context.param_strings("bad"), Failure);
    try {
        context.param_string("i");
        FAIL("expected a Failure");
    } catch (const Failure& failure) {
        CHECK_FALSE(failure.retryable());
        CHECK(std::string(failure.what()).find("'i'") != std::string::npos);
    }
}

TEST_CASE("JobContext builds token, progress and log payloads as JSON objects") {
    RecordingSink sink;
    JobContext context(JobSpec{"j1", 1, "t", "{}", ""}, sink);
    context.token("he said \"hi\"\n");
    context.progress(1.5, "plan", "bad \xFF byte");
    context.progress(0.25);
    context.log("warn", "careful");
    context.emit(EventKind::log, R"({"level":"info","message":"m","extra":[1,2]})");
    context.save_checkpoint("3");
    CHECK_THROWS_AS(context.emit(EventKind::state, "{}"), std::invalid_argument);
    CHECK_THROWS_AS(context.emit(EventKind::log, "[1]"), std::invalid_argument);
    CHECK_THROWS_AS(context.emit(EventKind::log, "{\"a\":"), std::invalid_argument);
    // What the broker could not take is refused at the source: invalid UTF-8,
    // an unpaired surrogate, anything after the object, nesting past 32.
    CHECK_THROWS_AS(context.emit(EventKind::log, "{\"a\":\"\xFF\"}"), std::invalid_argument);
    CHECK_THROWS_AS(context.emit(EventKind::log, R"({"a":"\ud800"})"), std::invalid_argument);
    CHECK_THROWS_AS(context.emit(EventKind::log, "{} {}"), std::invalid_argument);
    CHECK_THROWS_AS(context.emit(EventKind::log, "\"text\""), std::invalid_argument);
    const auto nested = [](int depth) {
        return "{\"a\":" + std::string(static_cast<std::size_t>(depth - 1), '[') + "1" +
               std::string(static_cast<std::size_t>(depth - 1), ']') + "}";
    };
    context.emit(EventKind::token, nested(32));
    CHECK_THROWS_AS(context.emit(EventKind::token, nested(33)), std::invalid_argument);

    const auto tokens = sink.events(EventKind::token);
    REQUIRE(tokens.size() == 2);
    CHECK(tokens[1] == nested(32));
    CHECK(boost::json::parse(tokens[0]).at("text").as_string() == "he said \"hi\"\n");
    const auto progress = sink.events(EventKind::progress);
    REQUIRE(progress.size() == 2);
    const auto first = boost::json::parse(progress[0]).as_object();
    CHECK(first.at("fraction").to_number<double>() == 1.0);  // clamped
    CHECK(first.at("stage").as_string() == "plan");
    CHECK(first.at("message").as_string() == "bad \xEF\xBF\xBD byte");
    const auto second = boost::json::parse(progress[1]).as_object();
    CHECK(second.at("fraction").to_number<double>() == 0.25);
    CHECK_FALSE(second.contains("stage"));
    const auto logs = sink.events(EventKind::log);
    REQUIRE(logs.size() == 2);
    CHECK(boost::json::parse(logs[0]).at("level").as_string() == "warn");
    CHECK(sink.checkpoints() == std::vector<std::string>{"3"});
}

TEST_CASE("wait_cancelled_for returns early when the job is cancelled") {
    RecordingSink sink;
    JobContext context(JobSpec{"j1", 1, "t", "{}", ""}, sink);
    CHECK_FALSE(context.wait_cancelled_for(1ms));
    std::thread canceller([&] { context.request_cancel(); });
    const auto started = std::chrono::steady_clock::now();
    CHECK(context.wait_cancelled_for(30s));
    CHECK(std::chrono::steady_clock::now() - started < 10s);
    canceller.join();
    CHECK(context.cancelled());
}

TEST_CASE("invoke_handler turns exceptions into failures") {
    RecordingSink sink;
    JobContext context(JobSpec{"j1", 1, "t", "{}", ""}, sink);
    auto outcome = invoke_handler(
        [](JobContext&) -> JobOutcome { throw std::runtime_error("boom"); }, context);
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK(std::string(std::get<Failure>(outcome).what()) == "boom");
    CHECK(std::get<Failure>(outcome).retryable());

    outcome =
        invoke_handler([](JobContext&) -> JobOutcome { throw Failure("bad input"); }, context);
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK_FALSE(std::get<Failure>(outcome).retryable());

    outcome = invoke_handler([](JobContext&) -> JobOutcome { return "{\"ok\":true}"; }, context);
    REQUIRE(std::holds_alternative<std::string>(outcome));
    CHECK(std::get<std::string>(outcome) == "{\"ok\":true}");
}
