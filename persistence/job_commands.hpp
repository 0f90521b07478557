// The writes clients ask for: create a job, cancel one. Web writes through
// this port only (and reads through JobStore/EventLog), so the engine behind
// it — the SQLite writer, or another store — stays out of web's sight.
#pragma once

#include <utility>

#include "persistence/store.hpp"

namespace jobcast::store {

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
