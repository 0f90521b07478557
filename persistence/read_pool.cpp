#include "persistence/read_pool.hpp"

namespace jobcast::store {

namespace {

// Readers never checkpoint (the writer does, on its own schedule) and keep a
// small page cache each (2 MiB); mmap makes replays of long logs cheaper. A
// replay reads each page once, and what is not checkpointed yet (a resume's
// recent events, in the WAL) is copied into the cache: every slot the cache
// grows by is fresh memory, a page fault on first use. With 8 MiB a freshly
// started broker's first 100,000-event resume spent about 4 ms of its read
// thread filling it; at 2 MiB the cache recycles its slots after 512 pages.
constexpr const char* kReaderPragmas =
    "PRAGMA cache_size = -2048;"
    "PRAGMA mmap_size = 268435456;"
    "PRAGMA temp_store = MEMORY;";

}  // namespace

db::Statement& ReadConnection::statement(std::string_view sql) {
    if (auto it = statements_.find(sql); it != statements_.end()) return it->second;
    db::Statement prepared(connection_, sql);
    return statements_.emplace(std::string(sql), std::move(prepared)).first->second;
}

ReadPool::ReadPool(const std::string& path, std::size_t connections,
                   std::chrono::milliseconds busy_timeout) {
    const std::size_t count = std::max<std::size_t>(1, connections);
    for (std::size_t i = 0; i < count; ++i) {
        db::Connection connection = db::Connection::open(path, SQLITE_OPEN_READONLY);
        sqlite3_busy_timeout(connection.handle(), static_cast<int>(busy_timeout.count()));
        sqlite3_wal_autocheckpoint(connection.handle(), 0);
        connection.exec(kReaderPragmas);
        idle_.push_back(std::make_unique<ReadConnection>(std::move(connection)));
    }
    size_ = count;
}

ReadPool::Lease::~Lease() {
    if (connection_) pool_->give_back(std::move(connection_));
}

ReadPool::Lease ReadPool::borrow() {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [&] { return !idle_.empty() || closed_; });
    if (closed_) throw StoreError("store is closed");
    std::unique_ptr<ReadConnection> connection = std::move(idle_.back());
    idle_.pop_back();
    return Lease(*this, std::move(connection));
}

void ReadPool::give_back(std::unique_ptr<ReadConnection> connection) {
    {
        std::lock_guard lock(mutex_);
        idle_.push_back(std::move(connection));
    }
    available_.notify_all();
}

void ReadPool::close() {
    std::unique_lock lock(mutex_);
    closed_ = true;
    available_.notify_all();
    // Borrowed connections are in use by a query right now: let them finish.
    available_.wait(lock, [&] { return idle_.size() == size_; });
    idle_.clear();
    size_ = 0;
}

}  // namespace jobcast::store
