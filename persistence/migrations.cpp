#include "persistence/migrations.hpp"

#include <string>

#include "persistence/log.hpp"

namespace jobcast::store {

namespace {

constexpr const char* kCreateMeta =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID";
constexpr const char* kSelectVersion = "SELECT value FROM meta WHERE key = 'schema_version'";
constexpr const char* kUpsertVersion =
    "INSERT INTO meta(key, value) VALUES('schema_version', ?1) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value";
constexpr const char* kTableExists =
    "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'";

// Version 1: jobs, and their events packed in blocks of consecutive seqs.
// - state is the JobState name ('queued', ...), readable from the sqlite3 shell.
// - wseq is the last committed worker message number of the current attempt:
//   with it, duplicates are recognized after a broker restart.
// - events: one row per (job, commit, <= block_max_events events); the body
//   encoding is event_block.hpp's. Reads after N seek the block holding N+1 in
//   the (job_pk, first_seq) key. A rowid table, not WITHOUT ROWID: blocks are
//   kilobytes, and in a WITHOUT ROWID (index) b-tree a row over ~1/4 page
//   overflows and every key comparison of an insert or seek reassembles it;
//   here bodies append at the table's end and the key index holds small
//   entries. Measured: twice the committed events/s, same replay speed.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE jobs(
    pk               INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    type             TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    params           TEXT    NOT NULL DEFAULT '{}',
    priority         INTEGER NOT NULL DEFAULT 0,
    state            TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 1,
    worker           TEXT    NOT NULL DEFAULT '',
    progress         REAL    NOT NULL DEFAULT 0,
    last_seq         INTEGER NOT NULL DEFAULT 0,
    wseq             INTEGER NOT NULL DEFAULT 0,
    checkpoint       BLOB    NOT NULL DEFAULT x'',
    result           TEXT    NOT NULL DEFAULT '',
    error            TEXT    NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    idempotency_key  TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER NOT NULL DEFAULT 0,
    finished_at      INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs(owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_by_owner ON jobs(owner, id DESC);
CREATE INDEX jobs_by_state ON jobs(state, id);
CREATE INDEX jobs_by_finished_at ON jobs(finished_at) WHERE finished_at > 0;
CREATE TABLE events(
    job_pk    INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    body      BLOB    NOT NULL,
    PRIMARY KEY(job_pk, first_seq)
);
)sql";

void MigrateToVersion1(db::Connection& connection) {
    connection.exec(kSchemaV1);
}

// Version 2: jobs.checkpoint_seq, the job's last_seq when its checkpoint was
// saved (the resume point a next attempt's running event names).
void MigrateToVersion2(db::Connection& connection) {
    connection.exec("ALTER TABLE jobs ADD COLUMN checkpoint_seq INTEGER NOT NULL DEFAULT 0");
}

struct Migration {
    int version;
    void (*apply)(db::Connection&);
};

// Append only: a released step never changes.
constexpr Migration kMigrations[] = {
    {1, MigrateToVersion1},
    {2, MigrateToVersion2},
};
static_assert(std::size(kMigrations) == kSchemaVersion, "one step per schema version");

int read_version(db::Connection& connection) {
    db::Statement exists(connection, kTableExists, false);
    if (!exists.step()) return 0;
    exists.reset();
    db::Statement select(connection, kSelectVersion, false);
    if (!select.step()) return 0;
    return static_cast<int>(select.column_int64(0));
}

}  // namespace

int schema_version(db::Connection& connection) {
    return read_version(connection);
}

int migrate(db::Connection& connection, std::string_view path) {
    // IMMEDIATE: two processes opening the same new file do not both migrate.
    db::Transaction transaction(connection, db::Transaction::Mode::immediate);
    const int from = read_version(connection);
    if (from > kSchemaVersion) {
        throw StoreError("database " + std::string(path) + " has schema version " +
                         std::to_string(from) + ", newer than version " +
                         std::to_string(kSchemaVersion) +
                         " that this jobcast build supports; use a newer jobcast");
    }
    if (from == kSchemaVersion) {
        transaction.commit();
        return from;
    }
    connection.exec(kCreateMeta);
    for (const Migration& step : kMigrations) {
        if (step.version > from) step.apply(connection);
    }
    db::Statement upsert(connection, kUpsertVersion, false);
    upsert.bind(1, kSchemaVersion);
    upsert.run();
    transaction.commit();
    logger().info("schema migrated path={} from_version={} to_version={}", path, from,
                  kSchemaVersion);
    return from;
}

}  // namespace jobcast::store
