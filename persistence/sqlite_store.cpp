// Store::open: the composition root of the module. Opens and migrates the
// database on the write connection, then starts the readers, the writer thread
// and retention.
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include "persistence/database.hpp"
#include "persistence/log.hpp"
#include "persistence/migrations.hpp"
#include "persistence/read_pool.hpp"
#include "persistence/retention.hpp"
#include "persistence/sqlite_event_log.hpp"
#include "persistence/sqlite_job_store.hpp"
#include "persistence/sqlite_stream_log.hpp"
#include "persistence/store.hpp"
#include "persistence/writer.hpp"

namespace jobcast::store {

namespace {

constexpr const char* kInsertSessionKey =
    "INSERT INTO meta(key, value) VALUES('worker_session_key', ?1) ON CONFLICT(key) DO NOTHING";
constexpr const char* kSelectSessionKey = "SELECT value FROM meta WHERE key = 'worker_session_key'";
constexpr std::size_t kSessionKeyBytes = 32;

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    std::size_t filled = 0;
    while (filled < n) {
        const ssize_t got = ::getrandom(out.data() + filled, n - filled, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            throw StoreError(std::string("getrandom failed: ") + std::strerror(errno));
        }
        filled += static_cast<std::size_t>(got);
    }
    return out;
}

// The database's worker session key, created by the first broker that opens it.
std::string load_session_key(db::Connection& connection) {
    db::Transaction transaction(connection, db::Transaction::Mode::immediate);
    const std::string fresh = random_bytes(kSessionKeyBytes);
    {
        db::Statement insert(connection, kInsertSessionKey, false);
        insert.bind_blob(1, fresh);
        insert.run();
    }
    std::string key;
    {
        db::Statement select(connection, kSelectSessionKey, false);
        if (select.step()) key.assign(select.column_blob(0));
    }
    transaction.commit();
    if (key.size() < kSessionKeyBytes)
        throw StoreError("the worker session key in meta is damaged");
    return key;
}

// The store checkpoints by itself (the checkpointer thread, and the writer's
// RESTART of a large log); journal_size_limit trims the WAL file each time the
// log starts over.
constexpr const char* kWriterPragmas =
    "PRAGMA journal_size_limit = 33554432;"
    "PRAGMA cache_size = -65536;"
    "PRAGMA temp_store = MEMORY;"
    "PRAGMA foreign_keys = OFF;";
constexpr const char* kSynchronousNormal = "PRAGMA synchronous = NORMAL";
constexpr const char* kSynchronousFull = "PRAGMA synchronous = FULL";
constexpr const char* kJournalModeWal = "PRAGMA journal_mode = WAL";

void validate(const StoreConfig& config) {
    if (config.path.empty()) throw StoreError("store path is empty");
    if (config.path == ":memory:" || config.path.starts_with("file::memory:")) {
        throw StoreError("store path :memory: is not supported (readers need a file)");
    }
    auto positive = [](std::size_t value, const char* name) {
        if (value == 0) throw StoreError(std::string("store config ") + name + " must be > 0");
    };
    positive(config.max_batch_ops, "max_batch_ops");
    positive(config.max_queue_ops, "max_queue_ops");
    positive(config.block_max_events, "block_max_events");
    positive(config.read_connections, "read_connections");
    positive(config.retention_batch_jobs, "retention_batch_jobs");
    if (config.retention.count() < 0) throw StoreError("store config retention must be >= 0");
    if (config.retention.count() > 0 && config.retention_interval.count() <= 0) {
        throw StoreError("store config retention_interval must be > 0");
    }
    if (config.busy_timeout.count() < 0) throw StoreError("store config busy_timeout must be >= 0");
}

db::Connection open_write_connection(const StoreConfig& config) {
    db::restrict_to_owner(config.path);
    db::Connection connection =
        db::Connection::open(config.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    sqlite3_busy_timeout(connection.handle(), static_cast<int>(config.busy_timeout.count()));
    {
        db::Statement journal(connection, kJournalModeWal, false);
        if (!journal.step() || journal.column_text(0) != "wal") {
            throw StoreError("cannot switch " + config.path + " to WAL mode");
        }
    }
    connection.exec(config.durability == Durability::full ? kSynchronousFull : kSynchronousNormal);
    connection.exec(kWriterPragmas);
    sqlite3_wal_autocheckpoint(connection.handle(), 0);
    return connection;
}

class SqliteStore final : public Store {
  public:
    SqliteStore(const StoreConfig& config, CommitListener on_commit) : config_(config) {
        db::Connection connection = open_write_connection(config_);
        const int from = migrate(connection, config_.path);
        session_key_ = load_session_key(connection);
        // Readers after the migration: the schema they prepare against exists.
        pool_ = std::make_unique<ReadPool>(config_.path, config_.read_connections,
                                           config_.busy_timeout);
        jobs_ = std::make_unique<SqliteJobStore>(*pool_);
        events_ = std::make_unique<SqliteEventLog>(*pool_);
        writer_ = std::make_unique<Writer>(std::move(connection), config_, std::move(on_commit));
        streams_ = std::make_unique<SqliteStreamLog>(*writer_, *pool_);
        retention_ = std::make_unique<Retention>(*writer_, config_);
        logger().info(
            "store open path={} schema_version={} migrated_from={} durability={} "
            "read_connections={}",
            config_.path, kSchemaVersion, from,
            config_.durability == Durability::full ? "full" : "normal", config_.read_connections);
    }

    ~SqliteStore() override { close(); }

    void submit(WriteOp op, Completion done) override {
        writer_->submit(std::move(op), std::move(done));
    }
    void submit_many(std::vector<WriteOp>&& ops) override { writer_->submit_many(std::move(ops)); }
    void flush() override { writer_->flush(); }

    void close() override {
        std::call_once(closed_, [this] {
            // Retention first: its passes go through the writer.
            retention_->stop();
            writer_->stop();
            pool_->close();
            logger().info("store closed path={}", config_.path);
        });
    }

    JobStore& jobs() override { return *jobs_; }
    EventLog& events() override { return *events_; }
    StreamLog* streams() override { return streams_.get(); }

    std::size_t run_retention(UnixMs now) override { return retention_->run_once(now); }

    const std::string& worker_session_key() const override { return session_key_; }

  private:
    const StoreConfig config_;
    std::string session_key_;
    std::unique_ptr<ReadPool> pool_;
    std::unique_ptr<SqliteJobStore> jobs_;
    std::unique_ptr<SqliteEventLog> events_;
    std::unique_ptr<Writer> writer_;
    std::unique_ptr<SqliteStreamLog> streams_;
    std::unique_ptr<Retention> retention_;
    std::once_flag closed_;
};

}  // namespace

std::unique_ptr<Store> Store::open(const StoreConfig& config, CommitListener on_commit) {
    validate(config);
    try {
        return std::make_unique<SqliteStore>(config, std::move(on_commit));
    } catch (const db::Error& error) {
        throw StoreError("cannot open store " + config.path + ": " + error.what());
    }
}

}  // namespace jobcast::store
