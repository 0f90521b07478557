// The Redis stream log as two brokers have it: two logs, each on its own
// cluster client, over one shard (a primary and its replica). An append made
// through one log wakes the readers the other watches (and not its own,
// whose broker tells them itself); a watch that starts behind the stream is
// told at once; an append the replica does not have is neither acknowledged
// nor shown to a reader, until the replica has it; a delete sent again after
// WAIT refused it answers as the first call did.
#include <catch2/catch.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../redis/redis_nodes.hpp"
#include "cluster/partitions.hpp"
#include "cluster/redis_store.hpp"
#include "cluster/redis_stream_log.hpp"
#include "redis/cluster.hpp"
#include "redis/loop.hpp"

namespace jobcast::cluster {

namespace {

using redis::testing::RedisNodes;
using redis::testing::wait_until;

constexpr std::int64_t kNow = 1'700'000'000'000;

// One broker's side: its client of the cluster and its stream log.
struct Broker {
    redis::Loop loop;
    redis::Cluster client;
    Partitions partitions{16};
    RedisStreamLog log;
    std::mutex mutex;
    std::vector<std::int64_t> told;  // what its listener was told

    static redis::ClusterOptions options(const redis::Endpoint& seed) {
        redis::ClusterOptions out;
        out.seeds = {seed};
        return out;
    }
    static RedisStreamLogConfig config() {
        RedisStreamLogConfig out;
        out.wait_timeout = std::chrono::milliseconds(200);
        out.write_timeout = std::chrono::milliseconds(1500);
        return out;
    }
    explicit Broker(const redis::Endpoint& seed)
        : client(loop, options(seed)), log(client, partitions, config()) {
        log.listen([this](std::int64_t id) {
            std::lock_guard lock(mutex);
            told.push_back(id);
        });
    }
    ~Broker() { log.listen(nullptr); }

    std::size_t told_count() {
        std::lock_guard lock(mutex);
        return told.size();
    }
};

store::CreateStream creation(const std::string& name) {
    store::CreateStream op;
    op.name = name;
    op.owner = "alice";
    op.content_type = "text/plain";
    op.now_ms = kNow;
    return op;
}

store::AppendToStream appending(const std::string& name, std::string data) {
    store::AppendToStream op;
    op.name = name;
    op.owner = "alice";
    op.request.has_data = true;
    op.request.content_type = "text/plain";
    op.messages = {std::move(data)};
    op.now_ms = kNow;
    return op;
}

// A shard with the library loaded (the store's open loads it).
std::unique_ptr<RedisNodes> shard() {
    auto nodes = std::make_unique<RedisNodes>(2, true);
    nodes->create_single_shard();
    RedisStoreConfig config;
    config.seeds = {nodes->endpoint(0)};
    config.partitions = 16;
    open_redis_store(config)->close();
    return nodes;
}

}  // namespace

TEST_CASE("redis stream log: an append through one broker wakes the readers of another") {
    if (redis::testing::skip_without_redis()) return;
    auto nodes = shard();
    Broker a(nodes->endpoint(0));
    Broker b(nodes->endpoint(0));
    auto created = a.log.create(creation("s"));
    REQUIRE(created.stream);
    const std::int64_t id = created.stream->id;

    a.log.watch(id, 0);
    b.log.watch(id, 0);
    // Once subscribed, nothing moved: nobody is told.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(b.told_count() == 0);

    auto appended = a.log.append(appending("s", "one"));
    REQUIRE(appended.stream);
    CHECK(appended.stream->last_seq == 1);
    wait_until("b to be told", [&] { return b.told_count() == 1; });
    {
        std::lock_guard lock(b.mutex);
        CHECK(b.told == std::vector<std::int64_t>{id});
    }
    // B sees the append: it was confirmed before it was announced.
    auto seen = b.log.get("s", "alice", kNow);
    REQUIRE(seen);
    CHECK(seen->last_seq == 1);
    REQUIRE(b.log.read(id, 0, 1 << 20).size() == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(a.told_count() == 0);  // its own append: its broker told its readers

    // A reader that holds less than the stream has is told at once.
    b.log.watch(id, 0);
    wait_until("b to be told again", [&] { return b.told_count() == 2; });
    b.log.unwatch(id);
    b.log.unwatch(id);
    a.log.unwatch(id);

    // Unwatched: no more news.
    a.log.append(appending("s", "two"));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(b.told_count() == 2);
}

TEST_CASE("redis stream log: what the replica does not have is neither acknowledged nor shown") {
    if (redis::testing::skip_without_redis()) return;
    auto nodes = shard();
    Broker a(nodes->endpoint(0));
    Broker b(nodes->endpoint(0));
    REQUIRE(a.log.create(creation("s")).stream);
    REQUIRE(a.log.append(appending("s", "one")).stream);
    auto first = b.log.get("s", "alice", kNow);
    REQUIRE(first);

    nodes->signal(1, SIGSTOP);  // the replica: connected, acknowledging nothing
    CHECK_THROWS_AS(a.log.append(appending("s", "two")), store::StoreError);
    auto during = b.log.get("s", "alice", kNow);
    REQUIRE(during);
    CHECK(during->last_seq == 1);
    CHECK(b.log.read(first->id, 0, 1 << 20).size() == 1);
    nodes->signal(1, SIGCONT);

    // Once the replica has it, a reader confirms it and shows it.
    wait_until("the append to be shown", [&] {
        auto after = b.log.get("s", "alice", kNow);
        return after && after->last_seq == 2;
    });
    CHECK(b.log.read(first->id, 0, 1 << 20).size() == 2);
}

TEST_CASE("redis stream log: a delete sent again after its replica was late answers as it did") {
    if (redis::testing::skip_without_redis()) return;
    auto nodes = shard();
    Broker a(nodes->endpoint(0));
    Broker b(nodes->endpoint(0));
    REQUIRE(a.log.create(creation("s")).stream);
    REQUIRE(b.log.get("s", "alice", kNow));

    nodes->signal(1, SIGSTOP);  // the replica: the delete runs, WAIT refuses it
    auto removing =
        std::async(std::launch::async, [&] { return a.log.remove("s", "alice", kNow); });
    wait_until("the delete to run on the primary", [&] { return !b.log.get("s", "alice", kNow); });
    nodes->signal(1, SIGCONT);
    // Sent again once the replica answers, it finds its own delete done:
    // removed (204), not "no such stream" (404).
    CHECK(removing.get() == store::StreamWrite::removed);
    CHECK(a.log.remove("s", "alice", kNow) == store::StreamWrite::not_found);
}

}  // namespace jobcast::cluster
