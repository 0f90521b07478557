// The writes clients ask for: create a job, cancel one. Web writes through
// this port only (and reads through JobStore/EventLog), so the engine behind
// it — the SQLite writer, or another store — stays out of web's sight.
#pragma once

#include <string_view>
#include <utility>

#include "persistence/store.hpp"

namespace jobcast::store {

// How an engine answers a client's create or cancel it cannot take for now
// (cluster mode: Redis out of memory): a conflict with this message. Nothing
// was written and the same request may succeed shortly, so web answers 503
// with Retry-After, not 409.
inline constexpr std::string_view kEngineFull = "the engine's memory is full; retry shortly";
inline bool engine_full(const WriteResult& result) {
    return result.status == WriteStatus::conflict && result.message == kEngineFull;
}

// Thrown by a read or write of a store whose engine cannot be reached for now
// (cluster mode: no node of the shard answers, as in a failover). The same
// request may succeed shortly, so web answers 503 with Retry-After, not 500.
struct EngineUnavailable : StoreError {
    using StoreError::StoreError;
};

class JobCommands {
  public:
    virtual ~JobCommands() = default;
    // Thread-safe; may block while the store is saturated (backpressure), so
    // call off the I/O threads. `done` runs once the outcome is durable, on a
    // store thread.
    virtual void create(CreateJob op, Completion done) = 0;
    virtual void cancel(CancelJob op, Completion done) = 0;
};

// The SQLite store's commands: ops handed to its writer thread.
class StoreCommands final : public JobCommands {
  public:
    explicit StoreCommands(Store& store) : store_(store) {}
    void create(CreateJob op, Completion done) override {
        store_.submit(std::move(op), std::move(done));
    }
    void cancel(CancelJob op, Completion done) override {
        store_.submit(std::move(op), std::move(done));
    }

  private:
    Store& store_;
};

}  // namespace jobcast::store
