// The engine's health as one broker sees it, checked every interval on a
// cluster client's loop: whether any node answers (the topology reloads),
// each shard's primary and how many replicas it has connected (ROLE), and
// the brokers sharing the cluster (a heartbeat in the hash jc:brokers, field
// = broker id, value = its last beat in Unix ms). A shard is degraded when
// its primary does not answer as a primary or has fewer replicas than WAIT
// needs: its writes pause (no ack, nothing shown) until that changes. Each
// change of the engine's reachability or of a shard's state is logged once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "redis/connection.hpp"

namespace jobcast::redis {
class Cluster;
}

namespace jobcast::cluster {

struct ShardHealth {
    std::string slots;  // its slot ranges, "0-5460" (ranges joined by ',')
    std::vector<std::pair<std::uint16_t, std::uint16_t>> ranges;  // the same, first to last
    redis::Endpoint primary;
    bool primary_up = false;  // answered ROLE as a primary
    int replicas = 0;         // replicas the primary has connected
    bool degraded = false;    // !primary_up, or fewer replicas than WAIT needs
};

struct EngineHealthStatus {
    bool checked = false;    // a check has finished
    bool reachable = false;  // a node answered the last check
    std::string reason;      // why not, when not
    std::vector<ShardHealth> shards;
    std::uint64_t brokers = 0;  // brokers whose heartbeat is fresh, this one included

    // Whether writes to `slot` pause as of this check: the engine was not
    // reached, no shard serves the slot, or its shard is degraded. False
    // before the first check.
    bool writes_paused(std::uint16_t slot) const;
};

class EngineHealth {
  public:
    // `cluster` outlives this; checks start at once. `broker_id` names this
    // broker's heartbeat; `wait_replicas` is what the store's WAIT needs.
    EngineHealth(redis::Cluster& cluster, std::string broker_id, int wait_replicas,
                 std::chrono::milliseconds interval = std::chrono::seconds(1),
                 const Clock& clock = Clock::system());
    // Stops the checks; no callback runs after it returns. Not on the loop thread.
    ~EngineHealth();
    EngineHealth(const EngineHealth&) = delete;
    EngineHealth& operator=(const EngineHealth&) = delete;

    // Any thread: the last finished check.
    EngineHealthStatus status() const;

    struct State;

  private:
    std::shared_ptr<State> state_;
};

}  // namespace jobcast::cluster
