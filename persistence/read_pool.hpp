// A fixed set of read-only connections, borrowed one per query. Each query is a
// short statement that is reset before the connection goes back, so no reader
// holds a snapshot (and pins the WAL) longer than one statement. Internal.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "persistence/database.hpp"

namespace jobcast::store {

// One read-only connection and its prepared statements, keyed by SQL text.
class ReadConnection {
  public:
    explicit ReadConnection(db::Connection connection) : connection_(std::move(connection)) {}
    // The statement for `sql`, prepared on first use and kept.
    db::Statement& statement(std::string_view sql);

  private:
    db::Connection connection_;
    std::map<std::string, db::Statement, std::less<>> statements_;
};

class ReadPool {
  public:
    // Opens `connections` read-only connections to the (existing, WAL) database.
    ReadPool(const std::string& path, std::size_t connections,
             std::chrono::milliseconds busy_timeout);
    ~ReadPool() { close(); }
    ReadPool(const ReadPool&) = delete;
    ReadPool& operator=(const ReadPool&) = delete;

    class Lease {
      public:
        Lease(ReadPool& pool, std::unique_ptr<ReadConnection> connection)
            : pool_(&pool), connection_(std::move(connection)) {}
        Lease(Lease&&) = default;
        Lease& operator=(Lease&&) = delete;
        ~Lease();
        ReadConnection* operator->() const { return connection_.get(); }

      private:
        ReadPool* pool_;
        std::unique_ptr<ReadConnection> connection_;
    };

    // Waits for a free connection. Throws StoreError once the pool is closed.
    Lease borrow();
    // Waits for the borrowed connections to come back and closes them all.
    void close();

  private:
    void give_back(std::unique_ptr<ReadConnection> connection);

    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<std::unique_ptr<ReadConnection>> idle_;
    std::size_t size_ = 0;
    bool closed_ = false;
};

}  // namespace jobcast::store
