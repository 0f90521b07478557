// The cluster client against real Redis Clusters started by the test: keys
// reach their primaries, pipelined commands keep their order, a slot moved by
// resharding is followed through ASK, TRYAGAIN and then MOVED.
#include <catch2/catch.hpp>

#include <csignal>

#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "redis/cluster.hpp"
#include "redis/error.hpp"
#include "redis/loop.hpp"
#include "redis/slot.hpp"
#include "redis_nodes.hpp"

namespace jobcast::redis {

namespace {

ClusterOptions options_for(const testing::RedisNodes& nodes) {
    ClusterOptions options;
    options.seeds = {nodes.endpoint(1), nodes.endpoint(0)};
    return options;
}

}  // namespace

TEST_CASE("a cluster of 3 primaries: routing, pipelining, resharding", "[cluster]") {
    if (testing::skip_without_redis()) return;
    testing::RedisNodes nodes(3, true);
    nodes.create_cluster(0);
    Loop loop;
    Cluster cluster(loop, options_for(nodes));

    // Keys reach their primary.
    {
        // Each key is stored on exactly the node owning its slot; every primary gets some.
        std::map<int, int> per_node;
        for (int i = 0; i < 30; ++i) {
            std::string key = "key:" + std::to_string(i);
            REQUIRE(cluster.exec({"SET", key, std::to_string(i)}) == Reply::of_status("OK"));
            int owner = nodes.owner_of(key_slot(key));
            ++per_node[owner];
            for (int n = 0; n < nodes.size(); ++n) {
                Reply direct = cluster.exec_at(nodes.endpoint(n), {"GET", key});
                if (n == owner)
                    CHECK(direct == Reply::of_string(std::to_string(i)));
                else
                    CHECK(direct.error_code() == "MOVED");
            }
        }
        CHECK(per_node.size() == 3);
        // The slot the client computes is the server's.
        for (std::string key : {"{user1000}.following", "jc:{a1}:job:01J", "x", "key:7"})
            CHECK(cluster.exec_at(nodes.endpoint(0), {"CLUSTER", "KEYSLOT", key}) ==
                  Reply::of_integer(key_slot(key)));
    }

    // Pipelined commands keep their order.
    {
        constexpr int kPerKey = 200;
        const std::vector<std::string> keys = {"a", "b", "c", "d", "e", "f"};
        std::mutex mutex;
        std::map<std::string, std::vector<std::int64_t>> seen;
        std::promise<void> done;
        int remaining = kPerKey * static_cast<int>(keys.size());
        for (int i = 0; i < kPerKey; ++i) {
            for (const std::string& key : keys) {
                cluster.async_exec({"INCR", "n:" + key}, [&, key](std::error_code ec, Reply r) {
                    std::lock_guard lock(mutex);
                    seen[key].push_back(ec ? -1 : r.integer);
                    if (--remaining == 0) done.set_value();
                });
            }
        }
        done.get_future().wait();
        for (const std::string& key : keys) {
            INFO(key);
            std::vector<std::int64_t> expected;
            for (int i = 1; i <= kPerKey; ++i)
                expected.push_back(i);
            CHECK(seen[key] == expected);
        }
    }

    // A migrating slot is followed through ask then moved.
    {
        const std::string key = "{moving}stays";
        const std::uint16_t slot = key_slot(key);
        REQUIRE(cluster.exec({"SET", key, "v"}) == Reply::of_status("OK"));
        const int from = nodes.owner_of(slot);
        const int to = (from + 1) % nodes.size();
        const std::string from_id = nodes.node_id(from), to_id = nodes.node_id(to);
        auto setslot = [&](int node, std::vector<std::string> args) {
            Command command = {"CLUSTER", "SETSLOT", std::to_string(slot)};
            command.insert(command.end(), args.begin(), args.end());
            REQUIRE(cluster.exec_at(nodes.endpoint(node), command) == Reply::of_status("OK"));
        };
        setslot(to, {"IMPORTING", from_id});
        setslot(from, {"MIGRATING", to_id});

        // Mid-migration, a key the old owner does not have is answered with ASK:
        // the client asks the new owner (ASKING first) and gets there.
        REQUIRE(cluster.exec({"SET", "{moving}new", "w"}) == Reply::of_status("OK"));
        CHECK(cluster.exec_at(nodes.endpoint(from), {"GET", "{moving}new"}).error_code() == "ASK");
        CHECK(cluster.exec({"GET", "{moving}stays"}) == Reply::of_string("v"));  // still on `from`

        // The slot's keys are split between the two nodes: a command on both
        // gets TRYAGAIN until the move is over, and the client retries it meanwhile.
        const Command mget = {"MGET", key, "{moving}new"};
        CHECK(cluster.exec_at(nodes.endpoint(from), mget).error_code() == "TRYAGAIN");
        std::promise<std::pair<std::error_code, Reply>> retried;
        cluster.async_exec(mget, [&](std::error_code ec, Reply reply) {
            retried.set_value({ec, std::move(reply)});
        });

        // Finish the move: the client's map is stale, MOVED takes it to the new owner.
        REQUIRE(cluster.exec_at(nodes.endpoint(from),
                                {"MIGRATE", "127.0.0.1", std::to_string(nodes.port(to)), "", "0",
                                 "5000", "KEYS", key}) == Reply::of_status("OK"));
        for (int n = 0; n < nodes.size(); ++n)
            setslot(n, {"NODE", to_id});
        CHECK(cluster.exec({"GET", key}) == Reply::of_string("v"));
        CHECK(cluster.exec({"GET", "{moving}new"}) == Reply::of_string("w"));
        auto [mget_error, mget_reply] = retried.get_future().get();
        CHECK_FALSE(mget_error);
        CHECK(mget_reply == Reply::of_array({Reply::of_string("v"), Reply::of_string("w")}));
        std::promise<std::optional<Endpoint>> owner;
        loop.post([&] { owner.set_value(cluster.primary_of(slot)); });
        CHECK(owner.get_future().get() == nodes.endpoint(to));
        // Each answer followed is counted by its cause.
        const ClusterStats stats = cluster.stats();
        CHECK(stats.ask >= 1);
        CHECK(stats.tryagain >= 1);
        CHECK(stats.moved >= 1);
    }
}

TEST_CASE("the cluster client reports an unreachable cluster instead of waiting", "[cluster]") {
    Loop loop;
    ClusterOptions options;
    options.seeds = {{"127.0.0.1", 1}};
    options.max_retries = 2;
    options.first_retry_delay = std::chrono::milliseconds(5);
    Cluster cluster(loop, options);
    try {
        cluster.exec({"GET", "k"});
        FAIL("no error");
    } catch (const std::system_error& e) {
        CHECK(e.code() == Errc::no_topology);
    }
    CHECK(cluster.stats().connection == 3);  // the first try and 2 retries found no topology
}

TEST_CASE("a topology refresh moves past a node that answers nothing", "[cluster]") {
    // A stopped node keeps its connections open: asked first, it must not
    // hold the refresh (and every command waiting on it) for the whole reply
    // timeout.
    if (testing::skip_without_redis()) return;
    testing::RedisNodes nodes(3, true);
    nodes.create_cluster(0);
    Loop loop;
    ClusterOptions options;
    options.seeds = {nodes.endpoint(0), nodes.endpoint(1)};  // the stopped one first
    options.connection.reply_timeout = std::chrono::seconds(120);
    options.topology_answer = std::chrono::milliseconds(200);
    Cluster cluster(loop, options);
    nodes.signal(0, SIGSTOP);
    struct Resume {
        const testing::RedisNodes& nodes;
        ~Resume() { nodes.signal(0, SIGCONT); }
    } resume{nodes};

    std::promise<std::error_code> refreshed;
    loop.post(
        [&] { cluster.refresh_topology([&](std::error_code ec) { refreshed.set_value(ec); }); });
    auto answer = refreshed.get_future();
    REQUIRE(answer.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    CHECK_FALSE(answer.get());
    // The map came from node 1: each shard's slots have their owner (one
    // slot in each of the three ranges the cluster was made with).
    for (std::uint16_t slot : {0, 8000, 16383}) {
        std::promise<std::optional<Endpoint>> owner;
        loop.post([&] { owner.set_value(cluster.primary_of(slot)); });
        CHECK(owner.get_future().get() == nodes.endpoint(nodes.owner_of(slot, 1)));
    }

    // A node slower than topology_answer is not given up on: its answer
    // still counts when it is the only one to come.
    options.seeds = {nodes.endpoint(0)};
    Cluster lone(loop, options);
    std::promise<std::error_code> late;
    loop.post([&] { lone.refresh_topology([&](std::error_code ec) { late.set_value(ec); }); });
    std::this_thread::sleep_for(std::chrono::milliseconds(600));  // 3 x topology_answer
    nodes.signal(0, SIGCONT);
    auto late_answer = late.get_future();
    REQUIRE(late_answer.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    CHECK_FALSE(late_answer.get());
}

}  // namespace jobcast::redis
