// The Redis store's entry: one Redis Cluster of one shard (a primary and its
// replica, from Debian's redis-tools) for the whole run, started on first use;
// each open empties it (FLUSHALL, replicated) and opens a store on it, with
// the Redis stream log of cluster mode beside it on its own cluster client,
// or the token revocations. Left out where redis-tools is not installed.
#include <memory>

#include "cluster/redis_store.hpp"
#include "cluster/redis_stream_log.hpp"
#include "cluster/redis_token_revocations.hpp"
#include "redis/cluster.hpp"
#include "redis/loop.hpp"
#include "store_under_test.hpp"
#include "unit/redis/redis_nodes.hpp"

namespace jobcast::contract {

namespace {

redis::testing::RedisNodes& shard() {
    static const std::unique_ptr<redis::testing::RedisNodes> nodes = [] {
        auto started = std::make_unique<redis::testing::RedisNodes>(2, true);
        started->create_single_shard();
        return started;
    }();
    return *nodes;
}

std::unique_ptr<store::Store> open_redis(store::Store::CommitListener listener) {
    redis::testing::RedisNodes& nodes = shard();
    nodes.cli(0, {"FLUSHALL"});
    nodes.cli(0, {"WAIT", "1", "5000"});
    cluster::RedisStoreConfig config;
    config.seeds = {nodes.endpoint(0)};
    config.partitions = 16;
    auto opened = cluster::open_redis_store(config, std::move(listener));
    // As a broker has it: the stream log on a client of its own.
    struct Streams {
        redis::Loop loop;
        redis::Cluster client;
        cluster::Partitions partitions;
        cluster::RedisStreamLog log;
        static redis::ClusterOptions options(const cluster::RedisStoreConfig& config) {
            redis::ClusterOptions out;
            out.seeds = config.seeds;
            return out;
        }
        explicit Streams(const cluster::RedisStoreConfig& config)
            : client(loop, options(config)),
              partitions(config.partitions),
              log(client, partitions) {}
    };
    auto streams = std::make_shared<Streams>(config);
    store::StreamLog* log = &streams->log;
    return std::make_unique<StoreWithResources>(std::move(opened), std::move(streams), log);
}

// The revocations on the emptied cluster, through a client of their own.
std::unique_ptr<store::TokenRevocations> open_redis_revocations() {
    redis::testing::RedisNodes& nodes = shard();
    nodes.cli(0, {"FLUSHALL"});
    nodes.cli(0, {"WAIT", "1", "5000"});
    struct Client {
        redis::Loop loop;
        redis::Cluster cluster;
        explicit Client(redis::ClusterOptions options) : cluster(loop, std::move(options)) {}
    };
    redis::ClusterOptions options;
    options.seeds = {nodes.endpoint(0)};
    auto client = std::make_shared<Client>(std::move(options));
    return std::make_unique<RevocationsWithResources>(
        std::make_unique<cluster::RedisTokenRevocations>(client->cluster,
                                                         cluster::RedisRevocationsConfig{}),
        std::move(client));
}

const bool kRegistered = [] {
    if (redis::testing::redis_available())
        RegisterStore{{"redis", open_redis, open_redis_revocations}};
    return true;
}();

}  // namespace

}  // namespace jobcast::contract
