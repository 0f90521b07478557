#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "workers/jobs/jobs.hpp"
#include "workers/testing.hpp"

#include "handler_test_support.hpp"

using namespace jobcast::worker;
using jobcast::EventKind;

namespace {

struct Progress {
    double fraction;
    std::string stage;
};

std::vector<Progress> progress_of(const RecordingSink& sink) {
    std::vector<Progress> out;
    for (const auto& data : sink.events(EventKind::progress)) {
        const auto o = boost::json::parse(data).as_object();
        out.push_back(
            {o.at("fraction").to_number<double>(), std::string(o.at("stage").as_string())});
    }
    return out;
}

}  // namespace

TEST_CASE("research runs every stage with progress and a checkpoint after each") {
    RecordingSink sink;
    JobContext context(JobSpec{"j", 1, "research", R"({"topic":"tides","stage_ms":0})", ""}, sink);
    auto outcome = invoke_handler(jobs::research_handler(), context);
    REQUIRE(std::holds_alternative<std::string>(outcome));
    const auto result = boost::json::parse(std::get<std::string>(outcome)).as_object();
    const std::string summary(result.at("summary").as_string());
    CHECK(summary.find("tides") != std::string::npos);
    CHECK(summary.find("plan, gather, read, write") != std::string::npos);

    CHECK(sink.checkpoints() == std::vector<std::string>{"1", "2", "3", "4"});
    const auto progress = progress_of(sink);
    REQUIRE(progress.size() == 8);
    CHECK(progress.front().fraction == 0.0);
    CHECK(progress.front().stage == "plan");
    CHECK(progress[1].fraction == 0.25);
    CHECK(progress.back().fraction == 1.0);
    CHECK(progress.back().stage == "write");
    CHECK(sink.events(EventKind::log).size() == 8);  // two lines per stage
    // Checkpoint i+1 comes before the stage's closing progress.
    const auto records = sink.records();
    std::size_t checkpoint_index = 0;
    for (std::size_t i = 0; i < records.size(); ++i) {
        if (records[i].is_checkpoint && records[i].data == "1") checkpoint_index = i;
    }
    REQUIRE(checkpoint_index + 1 < records.size());
    CHECK(records[checkpoint_index + 1].kind == EventKind::progress);
}

TEST_CASE("research resumes after the last completed stage") {
    RecordingSink sink;
    JobContext context(
        JobSpec{"j", 2, "research",
                R"({"topic":"tides","stage_ms":0,"stages":["a","b","c","d","e"]})", "3"},
        sink);
    auto outcome = invoke_handler(jobs::research_handler(), context);
    REQUIRE(std::holds_alternative<std::string>(outcome));
    const auto progress = progress_of(sink);
    REQUIRE(progress.size() == 4);  // stages d and e only
    CHECK(progress[0].stage == "d");
    CHECK(progress[0].fraction == Approx(0.6));
    CHECK(progress[3].stage == "e");
    CHECK(progress[3].fraction == 1.0);
    CHECK(sink.checkpoints() == std::vector<std::string>{"4", "5"});
    const auto logs = sink.events(EventKind::log);
    REQUIRE_FALSE(logs.empty());
    const std::string first(boost::json::parse(logs[0]).at("message").as_string());
    CHECK(first.find("resuming at stage 4") != std::string::npos);
}

TEST_CASE("research stops at a cancel without checkpointing the interrupted stage") {
    RecordingSink sink;
    JobContext context(JobSpec{"j", 1, "research", R"({"topic":"t","stage_ms":60000})", ""}, sink);
    const auto started = std::chrono::steady_clock::now();
    auto outcome = testing::run_cancelled_after(jobs::research_handler(), context, sink, 1);
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK(sink.checkpoints().empty());
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds{10});
}

TEST_CASE("research requires a topic") {
    RecordingSink sink;
    JobContext context(JobSpec{"j", 1, "research", "{}", ""}, sink);
    auto outcome = invoke_handler(jobs::research_handler(), context);
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK_FALSE(std::get<Failure>(outcome).retryable());
}
