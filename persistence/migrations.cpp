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

// Version 2: revoked per-job tokens (token_revocations.hpp). kind is
// 'token' (key: a session id), 'job' (key: a job id) or 'owner' (key: the
// owner); `until` is when no token the row revokes can be valid any more,
// after which the row is deleted.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE token_revocations(
    kind       TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    revoked_at INTEGER NOT NULL,
    until      INTEGER NOT NULL,
    PRIMARY KEY(kind, owner, key)
) WITHOUT ROWID;
)sql";

// Version 3: Durable Streams created over HTTP (stream_log.hpp).
// - streams: one row per incarnation; (owner, name) is unique, and a name
//   deleted and created again gets a new pk, so nothing of the old one shows
//   (held since version 6: before it, the newest pk could come back).
// - ttl_seconds -1 and expires_at_ms 0 mean none; accessed_at moves on reads
//   and writes (the sliding TTL). closed_by is the producer tuple that closed
//   the stream, so its retry is recognized.
// - stream_messages: one row per message, (stream_pk, seq) seq 1, 2, ...
// - stream_producers: each idempotent producer's epoch and last seq.
constexpr const char* kSchemaV3 = R"sql(
CREATE TABLE streams(
    pk            INTEGER PRIMARY KEY,
    owner         TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    ttl_seconds   INTEGER NOT NULL DEFAULT -1,
    expires_at    TEXT    NOT NULL DEFAULT '',
    expires_at_ms INTEGER NOT NULL DEFAULT 0,
    closed        INTEGER NOT NULL DEFAULT 0,
    closed_by     TEXT    NOT NULL DEFAULT '',
    stream_seq    TEXT    NOT NULL DEFAULT '',
    last_seq      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    accessed_at   INTEGER NOT NULL,
    UNIQUE(owner, name)
);
CREATE INDEX streams_expiring ON streams(expires_at_ms) WHERE expires_at_ms > 0;
CREATE INDEX streams_with_ttl ON streams(accessed_at) WHERE ttl_seconds >= 0;
CREATE TABLE stream_messages(
    stream_pk INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY(stream_pk, seq)
);
CREATE TABLE stream_producers(
    stream_pk INTEGER NOT NULL,
    producer  TEXT    NOT NULL,
    epoch     INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY(stream_pk, producer)
) WITHOUT ROWID;
)sql";

void MigrateToVersion2(db::Connection& connection) {
    connection.exec(kSchemaV2);
}

void MigrateToVersion3(db::Connection& connection) {
    connection.exec(kSchemaV3);
}

// Version 4: jobs.checkpoint_seq, the job's last_seq when its checkpoint was
// saved (the resume point a next attempt's running event names).
void MigrateToVersion4(db::Connection& connection) {
    connection.exec("ALTER TABLE jobs ADD COLUMN checkpoint_seq INTEGER NOT NULL DEFAULT 0");
}

// Version 5: forked streams (stream_log.hpp). fork_of is the source's pk
// (0: not a fork) and fork_seq the fork point: the fork's messages up to it
// are read from the source (and so on up the chain); its own rows have seq >
// fork_seq. fork_from, fork_offset (-1: none given) and fork_sub_offset are
// the fork as asked, so a PUT asking it again is recognized. deleted: the
// stream was deleted while forks still read it; it is kept (its name taken)
// until no stream has it as fork_of.
constexpr const char* kSchemaV5 = R"sql(
ALTER TABLE streams ADD COLUMN fork_of INTEGER NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN fork_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN fork_from TEXT NOT NULL DEFAULT '';
ALTER TABLE streams ADD COLUMN fork_offset INTEGER NOT NULL DEFAULT -1;
ALTER TABLE streams ADD COLUMN fork_sub_offset INTEGER NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX streams_by_source ON streams(fork_of) WHERE fork_of > 0;
)sql";

void MigrateToVersion5(db::Connection& connection) {
    connection.exec(kSchemaV5);
}

// Version 6: stream ids are never reused. Without AUTOINCREMENT a new row
// takes the largest pk + 1, so a stream created after the newest one was
// deleted or expired got the old one's pk, and with it whatever still named
// that pk: a live reader, an ETag, a producer. The table is rebuilt with
// AUTOINCREMENT (SQLite cannot add it in place); its pks are kept, and the
// sequence starts at the largest of them: an id deleted above that before
// this upgrade is the one that can come back, once.
constexpr const char* kSchemaV6 = R"sql(
CREATE TABLE streams_v6(
    pk              INTEGER PRIMARY KEY AUTOINCREMENT,
    owner           TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    ttl_seconds     INTEGER NOT NULL DEFAULT -1,
    expires_at      TEXT    NOT NULL DEFAULT '',
    expires_at_ms   INTEGER NOT NULL DEFAULT 0,
    closed          INTEGER NOT NULL DEFAULT 0,
    closed_by       TEXT    NOT NULL DEFAULT '',
    stream_seq      TEXT    NOT NULL DEFAULT '',
    last_seq        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    accessed_at     INTEGER NOT NULL,
    fork_of         INTEGER NOT NULL DEFAULT 0,
    fork_seq        INTEGER NOT NULL DEFAULT 0,
    fork_from       TEXT    NOT NULL DEFAULT '',
    fork_offset     INTEGER NOT NULL DEFAULT -1,
    fork_sub_offset INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0,
    UNIQUE(owner, name)
);
INSERT INTO streams_v6(pk, owner, name, content_type, ttl_seconds, expires_at, expires_at_ms,
    closed, closed_by, stream_seq, last_seq, created_at, accessed_at, fork_of, fork_seq,
    fork_from, fork_offset, fork_sub_offset, deleted)
SELECT pk, owner, name, content_type, ttl_seconds, expires_at, expires_at_ms, closed,
    closed_by, stream_seq, last_seq, created_at, accessed_at, fork_of, fork_seq, fork_from,
    fork_offset, fork_sub_offset, deleted FROM streams;
DROP TABLE streams;
ALTER TABLE streams_v6 RENAME TO streams;
CREATE INDEX streams_expiring ON streams(expires_at_ms) WHERE expires_at_ms > 0;
CREATE INDEX streams_with_ttl ON streams(accessed_at) WHERE ttl_seconds >= 0;
CREATE INDEX streams_by_source ON streams(fork_of) WHERE fork_of > 0;
)sql";

void MigrateToVersion6(db::Connection& connection) {
    connection.exec(kSchemaV6);
}

struct Migration {
    int version;
    void (*apply)(db::Connection&);
};

// Append only: a released step never changes.
constexpr Migration kMigrations[] = {
    {1, MigrateToVersion1}, {2, MigrateToVersion2}, {3, MigrateToVersion3},
    {4, MigrateToVersion4}, {5, MigrateToVersion5}, {6, MigrateToVersion6},
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
