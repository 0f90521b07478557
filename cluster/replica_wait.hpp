// How a write on the Redis Cluster waits for the replicas before it counts
// (CLUSTER.md §5.3): WAIT on the connection that made the write, as the
// store's `wait` and `wait_timeout` say. Shared by the writers that pipeline
// their own WAIT: the Durable Streams log and the token revocations.
#pragma once

#include <chrono>
#include <string>

#include "redis/reply.hpp"
#include "redis/resp.hpp"

namespace jobcast::cluster {

struct ReplicaWait {
    // Replicas WAIT must reach, and how long one WAIT may take.
    int wait_replicas = 1;
    std::chrono::milliseconds wait_timeout{500};
};

inline redis::Command wait_command(const ReplicaWait& wait) {
    return {"WAIT", std::to_string(wait.wait_replicas), std::to_string(wait.wait_timeout.count())};
}

// Why WAIT's `reply` does not make the write count (empty: it does).
inline std::string wait_shortfall(const ReplicaWait& wait, const redis::Reply& reply) {
    if (!reply.is_integer()) return "WAIT: " + (reply.is_error() ? reply.str : "no count");
    if (reply.integer >= wait.wait_replicas) return {};
    return "WAIT reached " + std::to_string(reply.integer) + " of " +
           std::to_string(wait.wait_replicas) + " replicas";
}

}  // namespace jobcast::cluster
