// What the worker side of the broker runs with (endpoint, CURVE, heartbeats,
// limits) and the counters it keeps: shared by the socket loop (gateway.*), the
// worker-protocol machine (worker_protocol.*) and the metrics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/stage_timing.hpp"
#include "protocol/codec.hpp"
#include "protocol/schema_registry.hpp"

namespace jobcast::broker {

// ZeroMQ CURVE for workers: encrypted, and only workers whose public key is
// allowed get through (checked by a ZAP handler).
struct CurveConfig {
    std::string secret_key;            // the broker's, Z85; empty: CURVE off
    std::vector<std::string> allowed;  // workers' public keys, Z85
    bool enabled() const { return !secret_key.empty(); }
};

struct GatewayConfig {
    std::string endpoint = "tcp://127.0.0.1:5555";
    CurveConfig curve;
    std::chrono::milliseconds heartbeat{1000};
    int liveness = 3;                                // missed heartbeats before a lease is lost
    std::chrono::milliseconds cancel_grace{10'000};  // then a running job is cancelled by force
    proto::DecodeLimits limits;
    std::size_t max_pending_sends = 100'000;  // per worker, beyond ZeroMQ's HWM
    // At start, queue the store's queued jobs and hold its running ones for
    // their workers. Off in cluster mode: the store is shared, and another
    // broker may be running them.
    bool reload_unfinished = true;
    // Cluster mode: the leases live in the cluster too. A hello's in-flight
    // jobs unknown here are claimed there first (the gateway's ClusterLink),
    // and an orphaned lease is requeued only if no broker renewed it.
    bool cluster = false;
    // Where the params schemas workers announce go (REST checks submissions
    // against them); null: announced schemas are ignored.
    std::shared_ptr<proto::SchemaRegistry> schemas;
    // How long a lease outlives its worker's last message.
    std::chrono::milliseconds lease_timeout() const { return heartbeat * liveness; }
};

// Counters the metrics module reads (relaxed atomics; written by the gateway thread).
struct GatewayStats {
    std::atomic<std::uint64_t> messages_in{0};
    std::atomic<std::uint64_t> rejected_malformed{0};  // undecodable frames
    std::atomic<std::uint64_t> rejected_oversize{0};
    std::atomic<std::uint64_t> rejected_lease{0};         // not the holder of the job's lease
    std::atomic<std::uint64_t> rejected_unknown_peer{0};  // no hello yet
    std::atomic<std::uint64_t> rejected_identity{0};      // hello for a name held by another
    std::atomic<std::uint64_t> duplicates{0};             // wseq already committed
    std::atomic<std::uint64_t> leases_lost{0};
    std::atomic<std::uint64_t> stalls{0};  // rounds of the gateway loop slower than a heartbeat
    std::atomic<std::int64_t> workers{0};
    std::atomic<std::int64_t> queue_depth{0};
    // The stages of an event's path the gateway sees (common/stage_timing.hpp):
    // transport once per chunk frame (weighted by its events), decode per frame (by its ops).
    StageHistogram transport, decode;
};

}  // namespace jobcast::broker
