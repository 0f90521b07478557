// The stores the contract suite runs against. Every test case sends the same
// op sequences through each of them and compares what they answer; a store
// joins the suite with one file that registers its entry (see
// sqlite_store_under_test.cpp) and the CMake lines that compile it in.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "persistence/store.hpp"
#include "persistence/token_revocations.hpp"

namespace jobcast::contract {

struct StoreUnderTest {
    std::string name;  // "sqlite", "redis"
    // Opens a fresh, empty store; the fixture owns whatever it started (temp dir, servers).
    std::function<std::unique_ptr<store::Store>(store::Store::CommitListener)> open;
    // The token revocations of a fresh, empty store; the result owns what it needs.
    std::function<std::unique_ptr<store::TokenRevocations>()> open_revocations;
};

// sqlite always, first: the reference the others are compared with (it runs
// the rules of domain/ itself); more where available.
std::vector<StoreUnderTest> stores_under_test();

// A store's entry registers itself from a static object in its own file:
//   const RegisterStore kEntry{{"sqlite", open_sqlite}};
struct RegisterStore {
    explicit RegisterStore(StoreUnderTest store);
};

// A store together with what it was opened in (a temp dir, servers): closes
// the store first, then lets the resources go. `streams`, when given (kept
// alive by the resources), is its stream log instead of the store's own.
class StoreWithResources final : public store::Store {
  public:
    StoreWithResources(std::unique_ptr<store::Store> store, std::shared_ptr<void> resources,
                       store::StreamLog* streams = nullptr)
        : store_(std::move(store)), resources_(std::move(resources)), streams_(streams) {}
    ~StoreWithResources() override {
        store_->close();
        store_.reset();
    }

    void submit(store::WriteOp op, store::Completion done) override {
        store_->submit(std::move(op), std::move(done));
    }
    void submit_many(std::vector<store::WriteOp>&& ops) override {
        store_->submit_many(std::move(ops));
    }
    void flush() override { store_->flush(); }
    void close() override { store_->close(); }
    store::JobStore& jobs() override { return store_->jobs(); }
    store::EventLog& events() override { return store_->events(); }
    const std::string& worker_session_key() const override { return store_->worker_session_key(); }
    std::size_t run_retention(UnixMs now) override { return store_->run_retention(now); }
    store::StreamLog* streams() override { return streams_ ? streams_ : store_->streams(); }

  private:
    std::unique_ptr<store::Store> store_;
    std::shared_ptr<void> resources_;
    store::StreamLog* streams_;
};

// Token revocations together with what they were opened in.
class RevocationsWithResources final : public store::TokenRevocations {
  public:
    RevocationsWithResources(std::unique_ptr<store::TokenRevocations> revocations,
                             std::shared_ptr<void> resources)
        : revocations_(std::move(revocations)), resources_(std::move(resources)) {}
    ~RevocationsWithResources() override { revocations_.reset(); }

    std::vector<store::TokenRevocation> load(UnixMs now) override {
        return revocations_->load(now);
    }
    void add(const store::TokenRevocation& revocation, UnixMs now) override {
        revocations_->add(revocation, now);
    }

  private:
    std::unique_ptr<store::TokenRevocations> revocations_;
    std::shared_ptr<void> resources_;
};

}  // namespace jobcast::contract
