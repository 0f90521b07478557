#include "persistence/database.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/log_quote.hpp"
#include "persistence/log.hpp"

namespace jobcast::store::db {

namespace {

constexpr const char* kBeginDeferred = "BEGIN";
constexpr const char* kBeginImmediate = "BEGIN IMMEDIATE";
constexpr const char* kCommit = "COMMIT";
constexpr const char* kRollback = "ROLLBACK";

std::string describe(int rc, std::string_view what, sqlite3* db) {
    std::string message(what);
    message += ": ";
    // The connection's message is only about `rc` when it is the last error.
    if (db != nullptr && sqlite3_extended_errcode(db) == rc) {
        message += sqlite3_errmsg(db);
    } else {
        message += sqlite3_errstr(rc);
    }
    message += " (code ";
    message += std::to_string(rc);
    message += ')';
    return message;
}

}  // namespace

// ---- File permissions ------------------------------------------------------

namespace {

constexpr mode_t kOwnerOnly = S_IRUSR | S_IWUSR;  // 0600

// Takes group and other access from the open file `fd` (named `path` in the
// log) when it is a regular file that has any.
void tighten(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    const mode_t mode = st.st_mode & 07777;
    if ((mode & (S_IRWXG | S_IRWXO)) == 0) return;
    const mode_t tightened = mode & S_IRWXU;
    if (::fchmod(fd, tightened) == 0) {
        logger().warn(
            "event=db_permissions_tightened path={} mode={:04o} now={:04o} reason=\"job params "
            "and results must not be readable by other users\"",
            log_quote(path), static_cast<unsigned>(mode), static_cast<unsigned>(tightened));
    } else {
        logger().warn("event=db_permissions_open path={} mode={:04o} error={}", log_quote(path),
                      static_cast<unsigned>(mode), log_quote(std::strerror(errno)));
    }
}

}  // namespace

void restrict_to_owner(const std::string& path) {
    // O_EXCL first: a file this call creates gets exactly 0600 (the umask can
    // only take bits away, and fchmod puts back what a strange umask took).
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, kOwnerOnly);
    if (fd >= 0) {
        ::fchmod(fd, kOwnerOnly);
        ::close(fd);
        return;
    }
    if (errno != EEXIST) {
        const int error = errno;
        throw Error(SQLITE_CANTOPEN,
                    "cannot create database " + path + ": " + std::strerror(error));
    }
    for (const char* suffix : {"", "-wal", "-shm"}) {
        const std::string file = path + suffix;
        // O_NONBLOCK: a FIFO planted under the name must not hang the open.
        fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) continue;  // no such file (yet), or not ours to open: SQLite will say
        tighten(fd, file);
        ::close(fd);
    }
}

// ---- Connection ------------------------------------------------------------

Connection Connection::open(const std::string& path, int flags) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        std::string message = describe(rc, "cannot open database " + path, db);
        sqlite3_close_v2(db);  // a handle is returned even on failure
        throw Error(rc, message);
    }
    sqlite3_extended_result_codes(db, 1);
    return Connection(db);
}

Connection::Connection(Connection&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Connection& Connection::operator=(Connection&& other) noexcept {
    if (this != &other) {
        close();
        db_ = std::exchange(other.db_, nullptr);
    }
    return *this;
}

void Connection::exec(const char* sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
        std::string message = std::string("exec failed: ") + (error ? error : sqlite3_errstr(rc)) +
                              " (code " + std::to_string(rc) + ") in: " + sql;
        sqlite3_free(error);
        throw Error(rc, message);
    }
}

std::int64_t Connection::last_insert_rowid() const noexcept {
    return sqlite3_last_insert_rowid(db_);
}

void Connection::fail(int rc, std::string_view what) const {
    throw Error(rc, describe(rc, what, db_));
}

void Connection::close() noexcept {
    if (db_ != nullptr) {
        // _v2: statements still alive (a bug) make it a zombie instead of failing.
        sqlite3_close_v2(db_);
        db_ = nullptr;
    }
}

// ---- Statement -------------------------------------------------------------

Statement::Statement(Connection& connection, std::string_view sql, bool persistent)
    : db_(connection.handle()) {
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                persistent ? SQLITE_PREPARE_PERSISTENT : 0, &stmt_, nullptr);
    if (rc != SQLITE_OK) {
        connection.fail(rc, "cannot prepare \"" + std::string(sql) + "\"");
    }
}

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), db_(std::exchange(other.db_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
    if (this != &other) {
        sqlite3_finalize(stmt_);
        stmt_ = std::exchange(other.stmt_, nullptr);
        db_ = std::exchange(other.db_, nullptr);
    }
    return *this;
}

Statement::~Statement() {
    sqlite3_finalize(stmt_);
}

void Statement::check_bind(int rc, int index) {
    if (rc != SQLITE_OK) {
        throw Error(rc, describe(rc, "cannot bind parameter " + std::to_string(index), db_));
    }
}

void Statement::bind(int index, std::int64_t value) {
    check_bind(sqlite3_bind_int64(stmt_, index, value), index);
}

void Statement::bind(int index, double value) {
    check_bind(sqlite3_bind_double(stmt_, index, value), index);
}

void Statement::bind_text(int index, std::string_view value) {
    check_bind(
        sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8),
        index);
}

void Statement::bind_blob(int index, std::string_view value) {
    // A null pointer would bind NULL; an empty blob must stay an empty blob.
    static const char empty = 0;
    check_bind(sqlite3_bind_blob64(stmt_, index, value.empty() ? &empty : value.data(),
                                   value.size(), SQLITE_STATIC),
               index);
}

void Statement::bind_null(int index) {
    check_bind(sqlite3_bind_null(stmt_, index), index);
}

bool Statement::step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    std::string message =
        describe(rc, std::string("step failed in \"") + sqlite3_sql(stmt_) + '"', db_);
    sqlite3_reset(stmt_);
    throw Error(rc, message);
}

void Statement::run() {
    ResetOnExit reset(*this);
    while (step()) {
    }
}

void Statement::reset() noexcept {
    if (stmt_ != nullptr) {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
}

std::int64_t Statement::column_int64(int column) const noexcept {
    return sqlite3_column_int64(stmt_, column);
}

double Statement::column_double(int column) const noexcept {
    return sqlite3_column_double(stmt_, column);
}

std::string_view Statement::column_text(int column) const noexcept {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    if (text == nullptr) return {};
    return {text, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
}

std::string_view Statement::column_blob(int column) const noexcept {
    // blob first, then bytes: the order the SQLite documentation asks for.
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
    if (data == nullptr) return {};
    return {data, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
}

bool Statement::column_is_null(int column) const noexcept {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

// ---- Transaction -----------------------------------------------------------

Transaction::Transaction(Connection& connection, Mode mode) : connection_(connection) {
    connection_.exec(mode == Mode::immediate ? kBeginImmediate : kBeginDeferred);
    open_ = true;
}

Transaction::~Transaction() {
    // Some errors (I/O, full disk) end the transaction by themselves; a second
    // ROLLBACK would only fail with "no transaction is active".
    if (open_ && sqlite3_get_autocommit(connection_.handle()) == 0) {
        sqlite3_exec(connection_.handle(), kRollback, nullptr, nullptr, nullptr);
    }
}

void Transaction::commit() {
    connection_.exec(kCommit);
    open_ = false;
}

}  // namespace jobcast::store::db
