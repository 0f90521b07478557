// The SQLite store's entry: a fresh database file in its own temp dir per open.
#include "store_under_test.hpp"
#include "unit/persistence/store_test_support.hpp"

namespace jobcast::contract {

namespace {

std::unique_ptr<store::Store> open_sqlite(store::Store::CommitListener listener) {
    auto dir = std::make_shared<store::testing::TempDir>();
    auto opened = store::Store::open(store::testing::test_config(*dir), std::move(listener));
    return std::make_unique<StoreWithResources>(std::move(opened), std::move(dir));
}

const RegisterStore kSqlite{{"sqlite", open_sqlite}};

}  // namespace

}  // namespace jobcast::contract
