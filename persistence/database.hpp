// Thin RAII over the SQLite C API: a move-only Connection, a Statement that
// finalizes in its destructor, a Transaction that rolls back unless committed.
// Every failure throws db::Error (a StoreError carrying the SQLite result code).
// Internal to persistence/.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "persistence/store.hpp"

namespace jobcast::store::db {

class Error : public StoreError {
  public:
    Error(int code, const std::string& what) : StoreError(what), code_(code) {}
    int code() const noexcept { return code_; }  // extended result code
    bool is_constraint() const noexcept { return (code_ & 0xff) == SQLITE_CONSTRAINT; }

  private:
    int code_;
};

// Makes the database file at `path` readable and writable by its owner only
// (0600), before SQLite opens it: creates it so when it is missing, whatever
// the umask, and takes group and other access away from an existing file and
// its -wal and -shm files (they hold every job's params and results), with a
// warning in the log. SQLite gives the -wal and -shm files it creates the
// database file's mode. Throws db::Error when the file cannot be created.
void restrict_to_owner(const std::string& path);

class Connection {
  public:
    Connection() = default;
    // Opens `path` with SQLITE_OPEN_* `flags` (NOMUTEX is added: a connection is
    // used by one thread at a time) and extended result codes on.
    static Connection open(const std::string& path, int flags);

    Connection(Connection&& other) noexcept;
    Connection& operator=(Connection&& other) noexcept;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() { close(); }

    sqlite3* handle() const noexcept { return db_; }
    explicit operator bool() const noexcept { return db_ != nullptr; }

    // Runs one or more statements that return no rows we need.
    void exec(const char* sql);
    std::int64_t last_insert_rowid() const noexcept;
    // Throws db::Error for result code `rc`, with `what` and SQLite's message.
    [[noreturn]] void fail(int rc, std::string_view what) const;
    void close() noexcept;

  private:
    explicit Connection(sqlite3* db) : db_(db) {}
    sqlite3* db_ = nullptr;
};

// A prepared statement. Text and blob parameters are bound without copying
// (SQLITE_STATIC): the caller keeps the bytes alive until step()/run() and reset().
class Statement {
  public:
    Statement() = default;
    // `persistent`: a statement kept for the connection's lifetime.
    Statement(Connection& connection, std::string_view sql, bool persistent = true);

    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement();

    void bind(int index, std::int64_t value);
    void bind(int index, std::uint64_t value) { bind(index, static_cast<std::int64_t>(value)); }
    void bind(int index, int value) { bind(index, static_cast<std::int64_t>(value)); }
    void bind(int index, double value);
    void bind(int index, bool value) { bind(index, static_cast<std::int64_t>(value ? 1 : 0)); }
    void bind_text(int index, std::string_view value);
    void bind_blob(int index, std::string_view value);
    void bind_null(int index);

    // True while there is a row to read; false when done. Throws on error.
    bool step();
    // Steps to completion (statements that return no rows), then resets.
    void run();
    // Ends the statement's read (a stepped statement pins its snapshot and the
    // WAL) and clears the bindings. Never throws.
    void reset() noexcept;

    std::int64_t column_int64(int column) const noexcept;
    double column_double(int column) const noexcept;
    std::string_view column_text(int column) const noexcept;
    std::string_view column_blob(int column) const noexcept;
    bool column_is_null(int column) const noexcept;

  private:
    void check_bind(int rc, int index);
    sqlite3_stmt* stmt_ = nullptr;
    sqlite3* db_ = nullptr;
};

// Resets a statement when the scope ends, whatever way it ends.
class ResetOnExit {
  public:
    explicit ResetOnExit(Statement& statement) : statement_(statement) {}
    ~ResetOnExit() { statement_.reset(); }
    ResetOnExit(const ResetOnExit&) = delete;
    ResetOnExit& operator=(const ResetOnExit&) = delete;

  private:
    Statement& statement_;
};

// BEGIN [IMMEDIATE] ... COMMIT; rolls back in the destructor unless committed.
class Transaction {
  public:
    enum class Mode { deferred, immediate };
    explicit Transaction(Connection& connection, Mode mode = Mode::immediate);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    void commit();

  private:
    Connection& connection_;
    bool open_ = false;
};

}  // namespace jobcast::store::db
