// Job states, event kinds and job ids.
#include <algorithm>
#include <catch2/catch.hpp>
#include <set>
#include <thread>
#include <vector>

#include "protocol/model.hpp"

using namespace jobcast;

namespace {
constexpr JobState kStates[] = {JobState::queued, JobState::running, JobState::succeeded,
                                JobState::failed, JobState::cancelled};
constexpr EventKind kKinds[] = {EventKind::state, EventKind::progress, EventKind::token,
                                EventKind::log,   EventKind::result,   EventKind::error};
}  // namespace

TEST_CASE("job states have names that parse back", "[model]") {
    for (JobState state : kStates)
        CHECK(parse_job_state(to_string(state)) == state);
    CHECK(to_string(JobState::cancelled) == "cancelled");
    CHECK_FALSE(parse_job_state("Queued"));
    CHECK_FALSE(parse_job_state(""));
    CHECK_FALSE(parse_job_state("canceled"));
}

TEST_CASE("event kinds have names that parse back", "[model]") {
    for (EventKind kind : kKinds)
        CHECK(parse_event_kind(to_string(kind)) == kind);
    CHECK(to_string(EventKind::token) == "token");
    CHECK_FALSE(parse_event_kind("tokens"));
}

TEST_CASE("terminal states", "[model]") {
    CHECK_FALSE(is_terminal(JobState::queued));
    CHECK_FALSE(is_terminal(JobState::running));
    CHECK(is_terminal(JobState::succeeded));
    CHECK(is_terminal(JobState::failed));
    CHECK(is_terminal(JobState::cancelled));
}

TEST_CASE("the lifecycle allows exactly these transitions", "[model]") {
    using S = JobState;
    const std::set<std::pair<S, S>> allowed = {
        {S::queued, S::running},    {S::queued, S::cancelled}, {S::queued, S::failed},
        {S::running, S::succeeded}, {S::running, S::failed},   {S::running, S::cancelled},
        {S::running, S::queued},
    };
    for (S from : kStates) {
        for (S to : kStates) {
            INFO(to_string(from) << " -> " << to_string(to));
            CHECK(can_transition(from, to) == (allowed.count({from, to}) == 1));
        }
    }
}

TEST_CASE("job ids are 26-character Crockford base32 ULIDs", "[model][ulid]") {
    const std::string id = new_job_id(1700000000000);
    REQUIRE(id.size() == 26);
    for (char c : id) {
        CHECK(std::string_view("0123456789ABCDEFGHJKMNPQRSTVWXYZ").find(c) !=
              std::string_view::npos);
    }
    // The time prefix is the ULID spec's example: 1469918176385 ms -> 01ARYZ6S41.
    CHECK(new_job_id(1469918176385).substr(0, 10) == "01ARYZ6S41");
    CHECK(new_job_id(0).substr(0, 10) == "0000000000");
    CHECK(new_job_id((int64_t{1} << 48) - 1).substr(0, 10) == "7ZZZZZZZZZ");
}

TEST_CASE("job ids are unique and sort by creation", "[model][ulid]") {
    std::vector<std::string> ids;
    for (int i = 0; i < 20000; ++i)
        ids.push_back(new_job_id(1700000000000 + i / 1000));
    CHECK(std::is_sorted(ids.begin(), ids.end()));
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());
    // A later millisecond sorts after, whatever the random part.
    CHECK(new_job_id(1800000000000) > ids.back());
    // The time part is the caller's clock, even when it steps back.
    CHECK(new_job_id(1799999999999) < new_job_id(1800000000000));
}

TEST_CASE("job ids are unique across threads", "[model][ulid]") {
    constexpr int kThreads = 4;
    constexpr int kPerThread = 5000;
    std::vector<std::vector<std::string>> ids(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i)
                ids[t].push_back(new_job_id(1900000000000));
        });
    }
    for (auto& thread : threads)
        thread.join();
    std::set<std::string> all;
    for (const auto& list : ids) {
        CHECK(std::is_sorted(list.begin(), list.end()));
        all.insert(list.begin(), list.end());
    }
    CHECK(all.size() == kThreads * kPerThread);
}
