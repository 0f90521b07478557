#include "persistence/migrations.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <string_view>
#include <vector>

#include "persistence/stream_log.hpp"
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

// Version 6 undone: the streams table as version 5 left it, its pks reusable.
void undo_version6(db::Connection& connection) {
    std::string table;
    std::vector<std::string> indexes;
    {
        db::Statement select(connection,
                             "SELECT type, sql FROM sqlite_schema WHERE tbl_name = 'streams' AND "
                             "sql IS NOT NULL",
                             false);
        while (select.step()) {
            auto& into = select.column_text(0) == "table" ? table : indexes.emplace_back();
            into = std::string(select.column_text(1));
        }
    }
    const auto autoincrement = table.find(" AUTOINCREMENT");
    REQUIRE(autoincrement != std::string::npos);
    table.erase(autoincrement, std::string_view(" AUTOINCREMENT").size());
    table.replace(table.find("streams"), std::string_view("streams").size(), "streams_v5");
    connection.exec(table.c_str());
    connection.exec(
        "INSERT INTO streams_v5 SELECT * FROM streams; DROP TABLE streams;"
        "ALTER TABLE streams_v5 RENAME TO streams; DELETE FROM sqlite_sequence;");
    for (const auto& index : indexes)
        connection.exec(index.c_str());
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
    // Versions 6, 5 and 4 undone: what a database of the release before them holds.
    undo_version6(connection);
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

TEST_CASE("a version 5 database's streams keep their ids, and deleted ids never come back",
          "[migrations]") {
    TempDir dir;
    StoreConfig config = testing::test_config(dir);
    Store::open(config)->close();
    {
        db::Connection connection = db::Connection::open(config.path, SQLITE_OPEN_READWRITE);
        undo_version6(connection);
        connection.exec(
            "UPDATE meta SET value = 5 WHERE key = 'schema_version';"
            "INSERT INTO streams(pk, owner, name, content_type, last_seq, created_at, "
            "accessed_at) VALUES(7, 'o', 'kept', 'text/plain', 1, 1, 1);"
            "INSERT INTO stream_messages(stream_pk, seq, data) VALUES(7, 1, 'old')");
    }
    auto store = Store::open(config);
    CHECK(query_int(config.path, "SELECT value FROM meta WHERE key = 'schema_version'") ==
          kSchemaVersion);
    CHECK(query_int(config.path,
                    "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND "
                    "tbl_name = 'streams' AND sql IS NOT NULL") == 3);
    StreamLog& log = *store->streams();
    auto kept = log.get("kept", "o", 1);
    REQUIRE(kept);
    CHECK(kept->id == 7);
    CHECK(log.read(7, 0, 1 << 20).front().data == "old");

    CreateStream op;
    op.owner = "o";
    op.name = "new";
    op.content_type = "text/plain";
    op.now_ms = 1;
    const auto first = log.create(op).stream->id;
    CHECK(first > 7);
    CHECK(log.remove("new", "o", 1) == StreamWrite::removed);
    const auto second = log.create(op).stream->id;
    CHECK(second > first);  // not the deleted newest one's again
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
