// Revoked job tokens in the database: kept until they are over, replaced by a
// later revocation of the same kind, owner and key, and seen by a connection
// opened later (a restarted broker).
#include "persistence/token_revocations.hpp"

#include <catch2/catch.hpp>

#include "store_test_support.hpp"

namespace jobcast::store {

TEST_CASE("token revocations are stored, replaced, pruned and reloaded", "[revocations]") {
    testing::TempDir dir;
    const StoreConfig config = testing::test_config(dir);
    auto store = Store::open(config);
    {
        auto revocations = open_token_revocations(config.path, config.busy_timeout);
        CHECK(revocations->load(1000).empty());
        revocations->add({"job", "alice", "J1", 1000, 5000}, 1000);
        revocations->add({"token", "alice", "s1", 1000, 2000}, 1000);
        revocations->add({"job", "alice", "J1", 1500, 6000}, 1500);  // later: replaces
        auto rows = revocations->load(1500);
        REQUIRE(rows.size() == 2);
    }
    // Another connection, as after a restart; at 2500 the token one is over.
    auto reopened = open_token_revocations(config.path, config.busy_timeout);
    auto rows = reopened->load(2500);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].kind == "job");
    CHECK(rows[0].owner == "alice");
    CHECK(rows[0].key == "J1");
    CHECK(rows[0].revoked_at == 1500);
    CHECK(rows[0].until == 6000);
    // A write deletes what is over.
    reopened->add({"owner", "bob", "bob", 7000, 9000}, 7000);
    rows = reopened->load(0);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].kind == "owner");
    store->close();
}

}  // namespace jobcast::store
