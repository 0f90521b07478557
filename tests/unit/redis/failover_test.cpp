// A cluster of 3 primaries with a replica each: sharded pub/sub delivers and
// resubscribes after a lost connection; commands and subscriptions follow a
// manual failover; a killed primary gives errors rather than a hang, and after
// the automatic failover that follows, commands and subscriptions work again.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <csignal>
#include <future>
#include <map>
#include <mutex>

#include "redis/cluster.hpp"
#include "redis/error.hpp"
#include "redis/loop.hpp"
#include "redis/pubsub.hpp"
#include "redis/slot.hpp"
#include "redis_nodes.hpp"

namespace jobcast::redis {

namespace {

// What the subscriber saw, shared with the loop thread.
class Inbox {
  public:
    void message(const std::string& channel, const std::string& payload) {
        std::lock_guard lock(mutex_);
        messages_[channel].push_back(payload);
        changed_.notify_all();
    }
    void subscribed(const std::string& channel) {
        std::lock_guard lock(mutex_);
        ++subscribed_[channel];
        changed_.notify_all();
    }
    // Waits (bounded) until `ready` holds under the lock.
    template <class Ready>
    bool wait(Ready ready, std::chrono::seconds limit = std::chrono::seconds(15)) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, limit, [&] { return ready(messages_, subscribed_); });
    }

    using Messages = std::map<std::string, std::vector<std::string>>;
    using Subscribed = std::map<std::string, int>;

  private:
    std::mutex mutex_;
    std::condition_variable changed_;
    Messages messages_;
    Subscribed subscribed_;
};

// Sharded pub/sub on `cluster` that tells `inbox` what it sees.
ShardedPubSub listening(Cluster& cluster, Inbox& inbox) {
    return ShardedPubSub(
        cluster, [&inbox](const std::string& c, const std::string& p) { inbox.message(c, p); },
        [&inbox](const std::string& c) { inbox.subscribed(c); });
}

// Publishes until the channel's subscriber got one message tagged `tag`: a
// subscription may be confirmed at the new owner a little after the
// publisher's map moved there.
bool delivered(Cluster& cluster, Inbox& inbox, const std::string& channel, const std::string& tag) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
        cluster.exec({"SPUBLISH", channel, tag});
        if (inbox.wait(
                [&](const Inbox::Messages& m, const Inbox::Subscribed&) {
                    auto it = m.find(channel);
                    return it != m.end() &&
                           std::find(it->second.begin(), it->second.end(), tag) != it->second.end();
                },
                std::chrono::seconds(1)))
            return true;
    }
    return false;
}

// How many clients of node i are subscribed to a shard channel.
int subscribers(const testing::RedisNodes& nodes, int i, const std::string& channel) {
    std::string out = nodes.cli(i, {"PUBSUB", "SHARDNUMSUB", channel});
    return std::stoi(out.substr(out.find('\n') + 1));
}

}  // namespace

TEST_CASE("sharded pub/sub and commands across a manual failover and a killed primary",
          "[cluster][failover]") {
    if (testing::skip_without_redis()) return;
    testing::RedisNodes nodes(6, true);
    nodes.create_cluster(1);
    Loop loop;
    ClusterOptions options;
    options.seeds = {nodes.endpoint(0)};
    options.max_retries = 30;  // outlasts node-timeout (1 s) + the election
    options.max_retry_delay = std::chrono::milliseconds(250);
    Cluster cluster(loop, options);
    Inbox inbox;
    ShardedPubSub pubsub = listening(cluster, inbox);

    // One channel per primary.
    std::map<int, std::string> channel_of;
    for (int i = 0; channel_of.size() < 3; ++i) {
        std::string channel = "jc:{" + std::to_string(i) + "}:live";
        channel_of.try_emplace(nodes.owner_of(key_slot(channel)), channel);
    }
    for (auto& [node, channel] : channel_of)
        pubsub.subscribe(channel);
    for (auto& [node, channel] : channel_of) {
        INFO(channel);
        CHECK(delivered(cluster, inbox, channel, "hello"));
    }

    // A subscriber connection dropped by the server: the channel is subscribed again.
    {
        const auto& [node, channel] = *channel_of.rbegin();
        REQUIRE(nodes.cli(node, {"CLIENT", "KILL", "TYPE", "pubsub"}) == "1\n");
        CHECK(inbox.wait([&](const Inbox::Messages&, const Inbox::Subscribed& s) {
            return s.at(channel) >= 2;
        }));
        CHECK(delivered(cluster, inbox, channel, "after a reconnect"));
    }

    // Manual failover: the primary of `channel` becomes a replica; the server
    // unsubscribes the channel there, answers commands with MOVED, and both
    // clients go to the promoted replica.
    const auto& [primary, channel] = *channel_of.begin();
    const std::string key = channel + ":counter";  // same slot as the channel
    REQUIRE(cluster.exec({"INCR", key}) == Reply::of_integer(1));
    const int replica = nodes.replica_of(primary);
    REQUIRE(nodes.cli(replica, {"CLUSTER", "FAILOVER"}) == "OK\n");
    testing::wait_until("the manual failover", [&] {
        return nodes.role(replica) == "master" && nodes.role(primary) == "slave";
    });
    CHECK(cluster.exec({"INCR", key}) == Reply::of_integer(2));
    CHECK(delivered(cluster, inbox, channel, "after manual failover"));
    CHECK(inbox.wait([&](const Inbox::Messages&, const Inbox::Subscribed& s) {
        return s.at(channel) >= 2;  // subscribed again
    }));
    // At the new primary, not at the demoted one (a replica would take it too).
    CHECK(subscribers(nodes, replica, channel) == 1);
    CHECK(subscribers(nodes, primary, channel) == 0);

    // Kill the new primary: with a small retry budget a command errs quickly
    // instead of waiting; the old primary is promoted back after node-timeout.
    nodes.wait_cluster_ok();  // the demoted node's replication link is up
    nodes.kill(replica);
    {
        ClusterOptions impatient = options;
        impatient.max_retries = 2;
        impatient.first_retry_delay = std::chrono::milliseconds(10);
        Cluster quick(loop, impatient);
        auto started = std::chrono::steady_clock::now();
        try {
            quick.exec({"INCR", key});
            FAIL("no error while the slot's primary is down");
        } catch (const std::system_error& e) {
            CHECK((e.code() == Errc::connect_failed || e.code() == Errc::connection_lost));
        }
        CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
    }
    // The patient client rides out the failover: reconnect, refresh, retry.
    CHECK(cluster.exec({"INCR", key}) == Reply::of_integer(3));
    CHECK(nodes.role(primary) == "master");
    CHECK(delivered(cluster, inbox, channel, "after the kill"));
    CHECK(inbox.wait(
        [&](const Inbox::Messages&, const Inbox::Subscribed& s) { return s.at(channel) >= 3; }));
    CHECK(subscribers(nodes, primary, channel) == 1);
    // The other shards were not disturbed.
    for (auto& [node, other] : channel_of)
        if (other != channel) CHECK(delivered(cluster, inbox, other, "still there"));
}

TEST_CASE("a channel unsubscribed and subscribed again at once stays subscribed on one SSUBSCRIBE",
          "[cluster][pubsub]") {
    // A job's last subscriber here goes and the next one comes right after:
    // the answer to the first's SUNSUBSCRIBE must not pass for the server's
    // own unsubscribe (a slot moved), which would drop the channel's
    // messages until a resubscribe a backoff later.
    if (testing::skip_without_redis()) return;
    testing::RedisNodes nodes(3, true);
    nodes.create_cluster(0);
    Loop loop;
    ClusterOptions options;
    options.seeds = {nodes.endpoint(0)};
    options.first_retry_delay = std::chrono::milliseconds(500);  // a resubscribe would show
    Cluster cluster(loop, options);
    Inbox inbox;
    ShardedPubSub pubsub = listening(cluster, inbox);
    const std::string channel = "jc:{again}:live";
    const int owner = nodes.owner_of(key_slot(channel));
    const auto ssubscribes = [&] {
        const std::string stat = nodes.info(owner, {"INFO", "commandstats"}, "cmdstat_ssubscribe");
        return stat.empty() ? 0 : std::stoi(stat.substr(stat.find('=') + 1));
    };

    pubsub.subscribe(channel);
    REQUIRE(delivered(cluster, inbox, channel, "first"));
    REQUIRE(ssubscribes() == 1);
    for (int round = 2; round <= 4; ++round) {
        pubsub.unsubscribe(channel);
        pubsub.subscribe(channel);
        REQUIRE(inbox.wait([&](const Inbox::Messages&, const Inbox::Subscribed& s) {
            return s.at(channel) >= round;
        }));
        // Published once, right after the confirmation: it arrives.
        const std::string tag = "round " + std::to_string(round);
        cluster.exec({"SPUBLISH", channel, tag});
        CHECK(inbox.wait([&](const Inbox::Messages& m,
                             const Inbox::Subscribed&) { return m.at(channel).back() == tag; },
                         std::chrono::seconds(5)));
        CHECK(ssubscribes() == round);
    }
    CHECK(subscribers(nodes, owner, channel) == 1);
}

TEST_CASE("a channel whose primary is stopped, not killed, moves to the promoted replica",
          "[cluster][failover][pubsub]") {
    // A stopped primary keeps its connections open and says nothing: the
    // channel's subscription there gets no message and no unsubscribe. Once
    // the slot map shows the promoted replica, the channel goes there, while
    // the old primary is still stopped.
    if (testing::skip_without_redis()) return;
    testing::RedisNodes nodes(6, true);
    nodes.create_cluster(1);
    Loop loop;
    ClusterOptions options;
    options.seeds = {nodes.endpoint(0)};
    options.max_retries = 30;
    options.max_retry_delay = std::chrono::milliseconds(250);
    Cluster cluster(loop, options);
    Inbox inbox;
    ShardedPubSub pubsub = listening(cluster, inbox);
    const std::string channel = "jc:{stopped}:live";
    const int primary = nodes.owner_of(key_slot(channel));
    const int replica = nodes.replica_of(primary);
    pubsub.subscribe(channel);
    REQUIRE(delivered(cluster, inbox, channel, "before"));

    nodes.signal(primary, SIGSTOP);
    struct Resume {
        const testing::RedisNodes& nodes;
        int node;
        ~Resume() { nodes.signal(node, SIGCONT); }
    } resume{nodes, primary};
    testing::wait_until(
        "the replica's promotion", [&] { return nodes.role(replica) == "master"; },
        std::chrono::seconds(20));
    // The map moves as a broker's health check moves it, every second: a
    // plain refresh, which steps past the stopped node if it asks it first
    // (a node that has not heard of the promotion yet may answer one).
    testing::wait_until(
        "the slot map's promoted replica",
        [&] {
            std::promise<std::optional<Endpoint>> owner;
            loop.post([&] {
                cluster.refresh_topology([&](std::error_code) {
                    owner.set_value(cluster.primary_of(key_slot(channel)));
                });
            });
            return owner.get_future().get() == nodes.endpoint(replica);
        },
        std::chrono::seconds(20));
    CHECK(delivered(cluster, inbox, channel, "while the old primary is stopped"));
    CHECK(subscribers(nodes, replica, channel) == 1);
}

}  // namespace jobcast::redis
