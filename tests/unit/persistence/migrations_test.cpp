#include "persistence/migrations.hpp"

#include <catch2/catch.hpp>

#include <fstream>

#include "store_test_support.hpp"

namespace jobcast::store {
namespace {

using testing::TempDir;

std::int64_t query_int(const std::string& path, const char* sql) {
    db::Connection connection = db::Connection::open(path, SQLITE_OPEN_READONLY);
    db::Statement statement(connection, sql, false);
    REQUIRE(statement.step());
    return statement.column_int64(0);
}

}  // namespace

TEST_CASE("opening an empty file creates the schema and records its version", "[migrations]") {
    TempDir dir;
    StoreConfig config = testing::test_config(dir);
    { std::ofstream touch(config.path); }  // a zero-byte file
    REQUIRE(std::filesystem::file_size(config.path) == 0);

    Store::open(config)->close();

    CHECK(query_int(config.path, "SELECT value FROM meta WHERE key = 'schema_version'") ==
          kSchemaVersion);
    CHECK(query_int(config.path,
                    "SELECT COUNT(*) FROM sqlite_schema WHERE name IN "
                    "('jobs', 'events', 'jobs_by_owner', 'jobs_by_idempotency_key')") == 4);
    db::Connection connection = db::Connection::open(config.path, SQLITE_OPEN_READONLY);
    db::Statement journal(connection, "PRAGMA journal_mode", false);
    REQUIRE(journal.step());
    CHECK(journal.column_text(0) == "wal");
}

TEST_CASE("migrate steps from version 0 and is a no-op at the current version", "[migrations]") {
    TempDir dir;
    db::Connection connection =
        db::Connection::open(dir.file("m.db"), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    CHECK(schema_version(connection) == 0);
    CHECK(migrate(connection, "m.db") == 0);
    CHECK(schema_version(connection) == kSchemaVersion);
    CHECK(migrate(connection, "m.db") == kSchemaVersion);
    CHECK(schema_version(connection) == kSchemaVersion);
}

TEST_CASE("a version 3 database gains jobs.checkpoint_seq, its jobs kept", "[migrations]") {
    TempDir dir;
    db::Connection connection =
        db::Connection::open(dir.file("m.db"), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    migrate(connection, "m.db");
    // Versions 5 and 4 undone: what a database of the release before them holds.
    connection.exec(
        "DROP INDEX streams_by_source;"
        "ALTER TABLE streams DROP COLUMN fork_of; ALTER TABLE streams DROP COLUMN fork_seq;"
        "ALTER TABLE streams DROP COLUMN fork_from; ALTER TABLE streams DROP COLUMN fork_offset;"
        "ALTER TABLE streams DROP COLUMN fork_sub_offset; ALTER TABLE streams DROP COLUMN deleted;"
        "ALTER TABLE jobs DROP COLUMN checkpoint_seq;"
        "UPDATE meta SET value = 3 WHERE key = 'schema_version';"
        "INSERT INTO jobs(id, type, owner, state, created_at) VALUES('j', 't', 'o', 'queued', 1)");
    CHECK(migrate(connection, "m.db") == 3);
    CHECK(schema_version(connection) == kSchemaVersion);
    db::Statement select(connection, "SELECT checkpoint_seq FROM jobs WHERE id = 'j'", false);
    REQUIRE(select.step());
    CHECK(select.column_int64(0) == 0);
}

TEST_CASE("data survives close and reopen", "[migrations]") {
    TempDir dir;
    StoreConfig config = testing::test_config(dir);
    {
        auto store = Store::open(config);
        testing::create_running(*store, "job-1");
        REQUIRE(testing::submit_sync(*store, testing::chunk("job-1", 1, 1)).status ==
                WriteStatus::ok);
    }
    auto store = Store::open(config);
    auto job = store->jobs().get("job-1");
    REQUIRE(job);
    CHECK(job->state == JobState::running);
    CHECK(job->last_seq == 3);
    CHECK(testing::read_all(*store, "job-1").size() == 3);
}

TEST_CASE("a database written by a newer jobcast is refused, naming both versions",
          "[migrations]") {
    TempDir dir;
    StoreConfig config = testing::test_config(dir);
    Store::open(config)->close();
    {
        db::Connection connection = db::Connection::open(config.path, SQLITE_OPEN_READWRITE);
        connection.exec("UPDATE meta SET value = 999 WHERE key = 'schema_version'");
    }
    try {
        Store::open(config);
        FAIL("opened a newer database");
    } catch (const StoreError& error) {
        const std::string message = error.what();
        CHECK_THAT(message, Catch::Contains("999"));
        CHECK_THAT(message, Catch::Contains("version " + std::to_string(kSchemaVersion)));
        CHECK_THAT(message, Catch::Contains(config.path));
    }
    // Refusing changed nothing.
    CHECK(query_int(config.path, "SELECT value FROM meta WHERE key = 'schema_version'") == 999);
}

TEST_CASE("a file that is not a database is a clear StoreError", "[migrations]") {
    TempDir dir;
    StoreConfig config = testing::test_config(dir);
    {
        std::ofstream garbage(config.path);
        garbage << std::string(8192, 'x');
    }
    try {
        Store::open(config);
        FAIL("opened garbage");
    } catch (const StoreError& error) {
        CHECK_THAT(error.what(), Catch::Contains(config.path));
        CHECK_THAT(error.what(), Catch::Contains("not a database"));
    }
}

TEST_CASE("invalid configurations are refused at open", "[migrations]") {
    TempDir dir;
    StoreConfig config = testing::test_config(dir);
    config.path = ":memory:";
    CHECK_THROWS_AS(Store::open(config), StoreError);
    config = testing::test_config(dir);
    config.max_batch_ops = 0;
    CHECK_THROWS_AS(Store::open(config), StoreError);
    config = testing::test_config(dir);
    config.path = dir.file("no/such/dir/x.db");
    CHECK_THROWS_AS(Store::open(config), StoreError);
}

}  // namespace jobcast::store
