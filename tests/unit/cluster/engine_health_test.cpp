// What the engine's last health check says of a slot's writes: the cluster
// feeder holds lease expiry on the slots it names paused.
#include "cluster/engine_health.hpp"

#include <catch2/catch.hpp>

using namespace jobcast::cluster;

TEST_CASE("writes to a slot pause with its shard, the engine, or no shard at all", "[health]") {
    EngineHealthStatus status;
    CHECK_FALSE(status.writes_paused(0));  // not checked yet: nothing known to pause

    status.checked = true;
    status.reachable = true;
    ShardHealth healthy;
    healthy.ranges = {{0, 5460}, {10923, 12000}};
    ShardHealth degraded;
    degraded.ranges = {{5461, 10922}};
    degraded.degraded = true;
    status.shards = {healthy, degraded};
    CHECK_FALSE(status.writes_paused(0));
    CHECK_FALSE(status.writes_paused(5460));
    CHECK_FALSE(status.writes_paused(11000));
    CHECK(status.writes_paused(5461));
    CHECK(status.writes_paused(10922));
    CHECK(status.writes_paused(12001));  // served by no shard (the cluster is down there)
    CHECK(status.writes_paused(16383));

    status.reachable = false;
    CHECK(status.writes_paused(0));
}
