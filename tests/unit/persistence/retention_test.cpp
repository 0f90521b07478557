#include <catch2/catch.hpp>

#include <thread>

#include "persistence/database.hpp"
#include "store_test_support.hpp"

namespace jobcast::store {
namespace {

using testing::submit_sync;

constexpr UnixMs kDay = 24 * 3600 * 1000;
constexpr UnixMs kNow = 1'800'000'000'000;

std::int64_t count_rows(const testing::TempDir& dir, const char* sql) {
    db::Connection connection = db::Connection::open(dir.file("jobcast.db"), SQLITE_OPEN_READONLY);
    db::Statement statement(connection, sql, false);
    REQUIRE(statement.step());
    return statement.column_int64(0);
}

}  // namespace

TEST_CASE("retention deletes jobs finished before the cutoff, and only those", "[retention]") {
    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    config.retention = std::chrono::milliseconds(7 * kDay);
    config.retention_interval = std::chrono::hours(1);  // the thread stays out of the way
    config.retention_batch_jobs = 2;                    // several transactions
    auto store = Store::open(config);

    // old-0..4: cancelled 10 days ago; recent: cancelled yesterday; the rest unfinished.
    for (int i = 0; i < 5; ++i) {
        const std::string id = "old-" + std::to_string(i);
        testing::create_running(*store, id);
        REQUIRE(submit_sync(*store, testing::chunk(id, 1, 1)).status == WriteStatus::ok);
        REQUIRE(submit_sync(*store, CancelJob{id, true, kNow - 10 * kDay}).status ==
                WriteStatus::ok);
    }
    REQUIRE(submit_sync(*store, CreateJob{testing::new_job("recent"), ""}).status ==
            WriteStatus::ok);
    REQUIRE(submit_sync(*store, CancelJob{"recent", false, kNow - kDay}).status == WriteStatus::ok);
    testing::create_running(*store, "running");
    REQUIRE(submit_sync(*store, CreateJob{testing::new_job("queued"), ""}).status ==
            WriteStatus::ok);

    CHECK(store->run_retention(kNow) == 5);
    for (int i = 0; i < 5; ++i)
        CHECK_FALSE(store->jobs().get("old-" + std::to_string(i)));
    CHECK(store->events().read("old-0", 0, 10).empty());
    CHECK(store->jobs().get("recent"));
    CHECK(store->jobs().get("running"));
    CHECK(store->jobs().get("queued"));
    CHECK(count_rows(dir, "SELECT COUNT(*) FROM jobs") == 3);
    // Only the survivors' blocks are left.
    CHECK(count_rows(dir,
                     "SELECT COUNT(*) FROM events WHERE job_pk NOT IN (SELECT pk FROM jobs)") == 0);

    // Writes go on as before (the writer's cache was dropped, and reloads).
    REQUIRE(submit_sync(*store, testing::chunk("running", 1, 1)).status == WriteStatus::ok);
    CHECK(store->events().last_seq("running") == 3);

    CHECK(store->run_retention(kNow) == 0);
    CHECK(store->run_retention(kNow + 7 * kDay) == 1);  // "recent" is old by then
}

TEST_CASE("retention off keeps everything", "[retention]") {
    testing::TempDir dir;
    auto store = Store::open(testing::test_config(dir));
    REQUIRE(submit_sync(*store, CreateJob{testing::new_job("a"), ""}).status == WriteStatus::ok);
    REQUIRE(submit_sync(*store, CancelJob{"a", false, 1}).status == WriteStatus::ok);
    CHECK(store->run_retention(kNow) == 0);
    CHECK(store->jobs().get("a"));
}

TEST_CASE("the retention thread runs passes by itself", "[retention]") {
    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    config.retention = std::chrono::milliseconds(1);
    config.retention_interval = std::chrono::milliseconds(20);
    auto store = Store::open(config);
    REQUIRE(submit_sync(*store, CreateJob{testing::new_job("a"), ""}).status == WriteStatus::ok);
    REQUIRE(submit_sync(*store, CancelJob{"a", false, 1000}).status == WriteStatus::ok);
    for (int i = 0; i < 200 && store->jobs().get("a"); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK_FALSE(store->jobs().get("a"));
}

}  // namespace jobcast::store
