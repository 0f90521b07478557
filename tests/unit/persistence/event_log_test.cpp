// Reading a job's log back from its packed blocks: after any seq, in the middle
// of a block or across blocks, and never past a corrupt one.
#include <catch2/catch.hpp>

#include <limits>
#include <span>

#include "persistence/database.hpp"
#include "store_test_support.hpp"

namespace jobcast::store {
namespace {

using testing::chunk;
using testing::submit_sync;

// Job "job-1" with events 1 (queued), 2 (running), then tokens 3..(2 + tokens),
// committed in transactions of `per_commit` chunks, blocks of 4 events at most.
struct LogFixture {
    testing::TempDir dir;
    std::unique_ptr<Store> store;

    explicit LogFixture(int tokens, int per_commit) {
        StoreConfig config = testing::test_config(dir);
        config.block_max_events = 4;
        store = Store::open(config);
        testing::create_running(*store, "job-1");
        for (int w = 1; w <= tokens;) {
            std::vector<WriteOp> ops;
            for (int i = 0; i < per_commit && w <= tokens; ++i, ++w) {
                ops.emplace_back(chunk("job-1", 1, w, "{\"w\":" + std::to_string(w) + "}"));
            }
            store->submit_many(std::move(ops));
            store->flush();  // one commit per group, so the block layout is known
        }
    }
};

void check_range(const std::vector<Event>& events, std::uint64_t first, std::size_t count) {
    REQUIRE(events.size() == count);
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint64_t seq = first + i;
        CHECK(events[i].seq == seq);
        if (seq >= 3) CHECK(events[i].data == "{\"w\":" + std::to_string(seq - 2) + "}");
    }
}

}  // namespace

TEST_CASE("read after any seq returns exactly the following events", "[event_log]") {
    // 10 chunks per commit in blocks of 4: rows hold 4, 4, 2 events.
    LogFixture f(50, 10);
    EventLog& log = f.store->events();
    REQUIRE(log.last_seq("job-1") == 52);

    for (std::uint64_t after = 0; after <= 52; ++after) {
        const auto events = log.read("job-1", after, 1000);
        check_range(events, after + 1, 52 - after);
    }
    SECTION("in the middle of a block, limited") {
        check_range(log.read("job-1", 5, 3), 6, 3);
        check_range(log.read("job-1", 13, 1), 14, 1);
    }
    SECTION("across several blocks") {
        check_range(log.read("job-1", 3, 20), 4, 20);
    }
    SECTION("past the end, zero limit, unknown job") {
        CHECK(log.read("job-1", 52, 10).empty());
        CHECK(log.read("job-1", 1000, 10).empty());
        CHECK(log.read("job-1", 0, 0).empty());
        CHECK(log.read("nope", 0, 10).empty());
        CHECK_FALSE(log.last_seq("nope"));
    }
    SECTION("bounded by bytes: stops once the data reaches the budget, never empty") {
        // Events 3..11 carry {"w":1} .. {"w":9}: 7 bytes each.
        const auto page = log.read("job-1", 2, 1000, 20);
        check_range(page, 3, 3);  // 7 + 7 < 20, 21 >= 20: a page ends past the budget by its last
        CHECK(page_bytes(page) >= 20);
        check_range(log.read("job-1", 2, 1000, 21), 3, 3);
        check_range(log.read("job-1", 2, 1000, 22), 3, 4);
        // A budget smaller than one event still moves forward, one event a page.
        check_range(log.read("job-1", 5, 1000, 1), 6, 1);
        // Across blocks, and the count limit still applies.
        check_range(log.read("job-1", 3, 2, 1 << 20), 4, 2);
        check_range(log.read("job-1", 2, 1000, 7 * 9), 3, 9);
    }
}

namespace {

// The base class's read_into over the SQLite log's read(): the adapter an
// engine without its own visiting read gets.
class ReadOnlyAdapter final : public EventLog {
  public:
    explicit ReadOnlyAdapter(EventLog& log) : log_(log) {}
    std::vector<Event> read(std::string_view job, std::uint64_t after, std::size_t limit,
                            std::size_t max_bytes) override {
        return log_.read(job, after, limit, max_bytes);
    }
    std::optional<std::uint64_t> last_seq(std::string_view job) override {
        return log_.last_seq(job);
    }

  private:
    EventLog& log_;
};

struct Visited {
    std::vector<Event> events;  // copied out of the views while handed over
    std::size_t runs = 0;
    ReadTotals totals;
};

Visited visit(EventLog& log, std::uint64_t after, std::size_t limit, std::size_t max_bytes) {
    Visited out;
    out.totals =
        log.read_into("job-1", after, limit, max_bytes, [&](std::span<const EventView> events) {
            REQUIRE_FALSE(events.empty());  // a run is never empty
            ++out.runs;
            for (const EventView& event : events)
                out.events.push_back({event.seq, event.kind, event.ts, std::string(event.data)});
        });
    return out;
}

}  // namespace

TEST_CASE("a visiting read hands over a page's events as views, a block at a time",
          "[event_log][resume]") {
    // 10 chunks per commit in blocks of 4: rows hold 4, 4, 2 events.
    LogFixture f(50, 10);
    EventLog& log = f.store->events();
    ReadOnlyAdapter adapter(log);
    constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();
    for (std::uint64_t after = 0; after <= 52; ++after) {
        for (std::size_t limit :
             {std::size_t{1}, std::size_t{3}, std::size_t{9}, std::size_t{1000}}) {
            for (std::size_t max_bytes : {std::size_t{1}, std::size_t{20}, kAll}) {
                CAPTURE(after, limit, max_bytes);
                const Visited got = visit(log, after, limit, max_bytes);
                // The events, and the totals, a page read of the same bounds holds.
                std::size_t want = std::min<std::size_t>(limit, 52 - after);
                if (max_bytes == 1 && want > 0) want = 1;
                check_range(got.events, after + 1, got.events.size());
                if (max_bytes != 20) CHECK(got.events.size() == want);
                CHECK(got.totals.events == got.events.size());
                CHECK(got.totals.bytes == page_bytes(got.events));
                // One run per block read: at most 4 events each.
                CHECK(got.runs >= (got.events.size() + 3) / 4);
                CHECK(got.runs <= got.events.size());
                // The default adapter hands over the same page in one run.
                const Visited adapted = visit(adapter, after, limit, max_bytes);
                CHECK(adapted.runs == (got.events.empty() ? 0 : 1));
                CHECK(adapted.totals.events == got.totals.events);
                CHECK(adapted.totals.bytes == got.totals.bytes);
                REQUIRE(adapted.events.size() == got.events.size());
                for (std::size_t i = 0; i < got.events.size(); ++i) {
                    CHECK(adapted.events[i].seq == got.events[i].seq);
                    CHECK(adapted.events[i].kind == got.events[i].kind);
                    CHECK(adapted.events[i].ts == got.events[i].ts);
                    CHECK(adapted.events[i].data == got.events[i].data);
                }
            }
        }
    }
    SECTION("a corrupt block is a StoreError before anything of it is handed over") {
        {
            db::Connection connection =
                db::Connection::open(f.dir.file("jobcast.db"), SQLITE_OPEN_READWRITE);
            sqlite3_busy_timeout(connection.handle(), 5000);
            connection.exec("UPDATE events SET body = x'01027f' WHERE first_seq = 7");
        }
        std::vector<std::uint64_t> seen;
        CHECK_THROWS_AS(log.read_into("job-1", 2, 100, kAll,
                                      [&](std::span<const EventView> events) {
                                          for (const EventView& event : events)
                                              seen.push_back(event.seq);
                                      }),
                        StoreError);
        CHECK(seen == std::vector<std::uint64_t>{3, 4, 5, 6});  // the blocks before it
    }
}

TEST_CASE("one commit's events of one job are packed into blocks", "[event_log]") {
    LogFixture f(50, 10);
    db::Connection connection =
        db::Connection::open(f.dir.file("jobcast.db"), SQLITE_OPEN_READONLY);
    db::Statement count(connection, "SELECT COUNT(*), MAX(last_seq - first_seq + 1) FROM events",
                        false);
    REQUIRE(count.step());
    // create, lease: 1 row each; 5 commits of 10 tokens: 3 rows each.
    CHECK(count.column_int64(0) == 2 + 5 * 3);
    CHECK(count.column_int64(1) == 4);
}

TEST_CASE("paging through a log reads every event once, in order", "[event_log]") {
    LogFixture f(300, 37);
    for (std::size_t page : {1, 3, 4, 7, 100}) {
        const auto all = testing::read_all(*f.store, "job-1", page);
        check_range(all, 1, 302);
    }
}

TEST_CASE("a corrupt block is a StoreError, not garbage", "[event_log]") {
    LogFixture f(20, 20);
    {
        db::Connection connection =
            db::Connection::open(f.dir.file("jobcast.db"), SQLITE_OPEN_READWRITE);
        sqlite3_busy_timeout(connection.handle(), 5000);
        connection.exec(
            "UPDATE events SET body = x'01027f' WHERE first_seq = 7");  // truncated event
    }
    EventLog& log = f.store->events();
    CHECK(log.read("job-1", 0, 6).size() == 6);  // before the block: fine
    CHECK_THROWS_WITH(log.read("job-1", 0, 100), Catch::Contains("corrupt event block"));
    CHECK_THROWS_AS(log.read("job-1", 8, 100), StoreError);
    CHECK(log.read("job-1", 10, 100).size() == 12);  // after the block: fine
}

TEST_CASE("a hole in the log is a StoreError", "[event_log]") {
    LogFixture f(20, 20);
    {
        db::Connection connection =
            db::Connection::open(f.dir.file("jobcast.db"), SQLITE_OPEN_READWRITE);
        sqlite3_busy_timeout(connection.handle(), 5000);
        connection.exec("DELETE FROM events WHERE first_seq = 7");
    }
    CHECK_THROWS_WITH(f.store->events().read("job-1", 0, 100), Catch::Contains("misses seq 7"));
}

}  // namespace jobcast::store
