// The Redis store: the persistence ports (store::Store, JobStore, EventLog)
// on Redis Cluster (CLUSTER.md §5). Every key of a job lives in its
// partition's hash slot; the library jobcast_v1 (cluster/jobcast_v1.lua,
// loaded on every primary at open) applies each job's ops atomically with the
// same rules as domain/job_lifecycle. One engine thread (a redis::Loop) runs
// commit rounds per primary: the queued ops of that node's partitions,
// pipelined as one FCALL per job, then WAIT for the replicas; only when WAIT
// reaches them is the round acknowledged and handed to the commit listener
// (the same CommittedBatch as the SQLite writer's). The store publishes
// nothing itself.
//
// Differences from the SQLite store, by design:
// - submit_many keeps its ops in order per job, but ops of different jobs
//   are not one transaction (they may live on different nodes).
// - a job created with an idempotency key lives in the key's partition, so
//   the key check is atomic with the creation: its proposed id is replaced by
//   a fresh one of that partition when it belongs to another (the result's
//   job holds the id given).
// - an op whose outcome was lost with a connection (failover) is re-sent:
//   lifecycle ops answer as the first call did (each carries an op id the job
//   remembers), worker ops come back as duplicates of what was applied.
// - history lives in RAM: retention is required (a finished job's keys
//   expire `retention` after it finished).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/partitions.hpp"
#include "common/clock.hpp"
#include "persistence/job_commands.hpp"
#include "persistence/store.hpp"
#include "redis/cluster.hpp"
#include "redis/connection.hpp"

namespace jobcast::cluster {

struct RedisStoreConfig {
    std::vector<redis::Endpoint> seeds;  // any nodes of the cluster
    std::uint32_t partitions = kDefaultPartitions;
    // Replicas WAIT must reach before a round counts (strict mode: every
    // replica of a shard, so whichever is promoted has the round).
    int wait_replicas = 1;
    std::chrono::milliseconds wait_timeout{500};
    std::size_t max_batch_ops = 8192;   // ops per commit round and node
    std::size_t max_queue_ops = 65536;  // submit() blocks beyond this (backpressure)
    // Finished jobs' keys expire this long after they finished; 0 is refused
    // (nothing would ever leave the cluster's memory).
    std::chrono::milliseconds retention{std::chrono::hours(24 * 7)};
    std::chrono::milliseconds retention_interval{60'000};  // owner index sweeps
    std::chrono::milliseconds connect_timeout{1000};
    // How long open() keeps trying to reach the cluster and load the library,
    // and how long close() waits for what is queued before answering it
    // "store is closed".
    std::chrono::milliseconds open_timeout{10'000};
};

// "redis-cluster://host:port[,host:port...][?partitions=64&wait=1&wait_timeout=500ms]".
// Durations take ms or s (a bare number is ms). Throws store::StoreError
// saying what is wrong.
RedisStoreConfig parse_store_url(std::string_view url);

// The seeds as "host:port,host:port" (for logs and messages).
std::string seed_list(const std::vector<redis::Endpoint>& seeds);

// The cluster could not be reached (no node answered, a connection was lost,
// the cluster was down) while the store opened: trying again may succeed.
// Every other StoreError of open_redis_store is for a person to fix.
class EngineUnreachable : public store::EngineUnavailable {
  public:
    using store::EngineUnavailable::EngineUnavailable;
};

// What the engine did, for the broker's metrics. Counters only grow.
struct RedisStoreStats {
    std::uint64_t rounds = 0;        // rounds acknowledged (WAIT reached the replicas)
    double round_seconds_total = 0;  // their latency: first send to WAIT's answer
    double round_seconds_max = 0;
    std::uint64_t wait_timeouts = 0;  // WAIT answered with too few replicas
    // Primaries whose last WAIT reached too few replicas: their rounds wait.
    std::vector<redis::Endpoint> degraded;
    // Rounds re-sent, by cause: the round's own answers (MOVED, ASK,
    // TRYAGAIN, CLUSTERDOWN, a refusal such as OOM/NOREPLICAS/READONLY/
    // LOADING/BUSY, a lost connection), plus what the store's cluster client
    // followed or retried for reads (redis::ClusterStats).
    redis::ClusterStats retries;
    std::uint64_t retries_refused = 0;
    std::uint64_t queued_ops = 0;  // ops submitted and not yet answered
};

class RedisStore : public store::Store {
  public:
    virtual RedisStoreStats stats() const = 0;
};

// Connects, checks or loads the jobcast_v1 library on every primary and
// starts the engine. Until the cluster answers it tries again with backoff
// (from 200 ms to 5 s), logging each failed attempt (seeds, error, next
// attempt) and telling `on_unreachable` the error: until config.open_timeout,
// or, with a `keep_trying` token that can be stopped, until it is (then it
// throws EngineUnreachable "stopped"). Throws EngineUnreachable when the
// cluster stayed away or went away during the open, store::StoreError for the
// rest: a library of another version on a node (says how to replace it), a
// bad config. `clock` times the ops that come without a time of their own and
// the rounds.
std::unique_ptr<RedisStore> open_redis_store(
    const RedisStoreConfig& config, store::Store::CommitListener on_commit = {},
    const Clock& clock = Clock::system(), std::stop_token keep_trying = {},
    std::function<void(const std::string& error)> on_unreachable = {});

}  // namespace jobcast::cluster
