// The SQLite store's entry: a fresh database file in its own temp dir per open
// (of the store or of its token revocations).
#include "store_under_test.hpp"
#include "unit/persistence/store_test_support.hpp"

namespace jobcast::contract {

namespace {

std::unique_ptr<store::Store> open_sqlite(store::Store::CommitListener listener) {
    auto dir = std::make_shared<store::testing::TempDir>();
    auto opened = store::Store::open(store::testing::test_config(*dir), std::move(listener));
    return std::make_unique<StoreWithResources>(std::move(opened), std::move(dir));
}

// The revocations of a fresh database (the store's open migrates it).
std::unique_ptr<store::TokenRevocations> open_sqlite_revocations() {
    auto dir = std::make_shared<store::testing::TempDir>();
    const store::StoreConfig config = store::testing::test_config(*dir);
    store::Store::open(config, {})->close();
    return std::make_unique<RevocationsWithResources>(
        store::open_token_revocations(config.path, config.busy_timeout), std::move(dir));
}

const RegisterStore kSqlite{{"sqlite", open_sqlite, open_sqlite_revocations}};

}  // namespace

}  // namespace jobcast::contract
