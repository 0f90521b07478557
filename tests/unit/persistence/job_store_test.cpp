// Reading jobs back: get, pages of a list with cursor and filters, what a
// restarting broker reloads, counts for the gauges.
#include <catch2/catch.hpp>

#include <cstdio>
#include <map>

#include "store_test_support.hpp"

namespace jobcast::store {
namespace {

using testing::new_job;
using testing::submit_sync;

std::string id_of(int n) {
    char id[16];
    std::snprintf(id, sizeof id, "job-%04d", n);
    return id;
}

// Jobs job-0000 .. job-(n-1): even ones type "llm", odd ones "exec"; every
// third one leased; owner alice, plus two of bob's.
void populate(Store& store, int n) {
    for (int i = 0; i < n; ++i) {
        Job job = new_job(id_of(i), "alice", i % 2 == 0 ? "llm" : "exec");
        REQUIRE(submit_sync(store, CreateJob{job, ""}).status == WriteStatus::ok);
        if (i % 3 == 0) {
            REQUIRE(submit_sync(store, LeaseJob{id_of(i), "w", 0}).status == WriteStatus::ok);
        }
    }
    REQUIRE(submit_sync(store, CreateJob{new_job("bob-1", "bob"), ""}).status == WriteStatus::ok);
    REQUIRE(submit_sync(store, CreateJob{new_job("bob-2", "bob"), ""}).status == WriteStatus::ok);
}

ListQuery owned_by(std::string owner) {
    ListQuery query;
    query.owner = std::move(owner);
    return query;
}

// Each test's own store, in a fresh directory.
struct JobStoreTest {
    testing::TempDir dir;
    std::unique_ptr<Store> store = Store::open(testing::test_config(dir));
};

std::vector<std::string> ids(const std::vector<Job>& jobs) {
    std::vector<std::string> out;
    for (const Job& job : jobs)
        out.push_back(job.id);
    return out;
}

}  // namespace

TEST_CASE_METHOD(JobStoreTest, "get returns the stored job, or nothing", "[job_store]") {
    testing::create_running(*store, "job-1");
    auto job = store->jobs().get("job-1");
    REQUIRE(job);
    CHECK(job->id == "job-1");
    CHECK(job->state == JobState::running);
    CHECK(job->max_attempts == 3);
    CHECK_FALSE(store->jobs().get("job-2"));
}

TEST_CASE_METHOD(JobStoreTest, "list pages newest first with an opaque cursor", "[job_store]") {
    populate(*store, 25);

    std::vector<std::string> seen;
    ListQuery query = owned_by("alice");
    query.limit = 10;
    int pages = 0;
    for (;;) {
        ListPage page = store->jobs().list(query);
        ++pages;
        for (const Job& job : page.jobs)
            seen.push_back(job.id);
        if (page.next.empty()) break;
        CHECK(page.jobs.size() == 10);
        query.cursor = page.next;
    }
    CHECK(pages == 3);
    REQUIRE(seen.size() == 25);
    for (int i = 0; i < 25; ++i)
        CHECK(seen[i] == id_of(24 - i));

    SECTION("an exact last page has no next") {
        query.cursor.clear();
        query.limit = 25;
        CHECK(store->jobs().list(query).next.empty());
    }
}

TEST_CASE_METHOD(JobStoreTest, "list filters by state and type, and only shows the owner's jobs",
                 "[job_store]") {
    populate(*store, 12);

    ListQuery query = owned_by("alice");
    query.state = JobState::running;
    CHECK(ids(store->jobs().list(query).jobs) ==
          std::vector<std::string>{"job-0009", "job-0006", "job-0003", "job-0000"});

    query.type = "llm";
    CHECK(ids(store->jobs().list(query).jobs) == std::vector<std::string>{"job-0006", "job-0000"});

    query.state.reset();
    query.limit = 2;
    ListPage first = store->jobs().list(query);
    CHECK(ids(first.jobs) == std::vector<std::string>{"job-0010", "job-0008"});
    query.cursor = first.next;
    CHECK(ids(store->jobs().list(query).jobs) == std::vector<std::string>{"job-0006", "job-0004"});

    CHECK(ids(store->jobs().list(owned_by("bob")).jobs) ==
          std::vector<std::string>{"bob-2", "bob-1"});
    CHECK(store->jobs().list(owned_by("mallory")).jobs.empty());
}

TEST_CASE_METHOD(JobStoreTest, "list clamps its limit", "[job_store]") {
    populate(*store, 3);
    ListQuery query = owned_by("alice");
    query.limit = 0;
    ListPage page = store->jobs().list(query);
    CHECK(page.jobs.size() == 1);
    CHECK_FALSE(page.next.empty());
    query.limit = 1'000'000;
    CHECK(store->jobs().list(query).jobs.size() == 3);
}

TEST_CASE_METHOD(JobStoreTest, "unfinished lists queued and running jobs, oldest first",
                 "[job_store]") {
    populate(*store, 6);
    REQUIRE(submit_sync(*store, CancelJob{id_of(1), false, 0}).status == WriteStatus::ok);
    REQUIRE(submit_sync(*store, CancelJob{id_of(3), true, 0}).status == WriteStatus::ok);
    CHECK(ids(store->jobs().unfinished()) == std::vector<std::string>{"bob-1", "bob-2", "job-0000",
                                                                      "job-0002", "job-0004",
                                                                      "job-0005"});
}

TEST_CASE_METHOD(JobStoreTest, "count_by_state counts every state", "[job_store]") {
    populate(*store, 6);  // leased: 0 and 3
    REQUIRE(submit_sync(*store, CancelJob{id_of(1), false, 0}).status == WriteStatus::ok);
    auto counts = store->jobs().count_by_state();
    REQUIRE(counts.size() == 5);
    std::map<JobState, std::int64_t> by_state(counts.begin(), counts.end());
    CHECK(by_state[JobState::queued] == 5);  // 2, 4, 5, bob-1, bob-2
    CHECK(by_state[JobState::running] == 2);
    CHECK(by_state[JobState::cancelled] == 1);
    CHECK(by_state[JobState::succeeded] == 0);
    CHECK(by_state[JobState::failed] == 0);
}

}  // namespace jobcast::store
