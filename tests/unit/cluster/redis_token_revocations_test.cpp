// Token revocations on a real one-shard cluster (a primary and its replica):
// the key layout and its expiry, the merge of two revocations of one key,
// WAIT before an add counts, and a follower on another client that hears of
// each revocation at once, or finds it on its next check when the message was
// lost.
#include <catch2/catch.hpp>

#include <algorithm>
#include <mutex>
#include <set>

#include "../redis/redis_nodes.hpp"
#include "cluster/redis_token_revocations.hpp"
#include "persistence/store.hpp"
#include "redis/cluster.hpp"
#include "redis/loop.hpp"

namespace jobcast::cluster {

namespace {

using namespace std::chrono_literals;
using store::TokenRevocation;

// A broker's client of the cluster.
struct Client {
    explicit Client(const redis::testing::RedisNodes& nodes) : cluster(loop, options(nodes)) {}
    static redis::ClusterOptions options(const redis::testing::RedisNodes& nodes) {
        redis::ClusterOptions o;
        o.seeds = {nodes.endpoint(0)};
        return o;
    }
    redis::Loop loop;
    redis::Cluster cluster;
};

// What a follower handed over, from the loop thread.
struct Heard {
    std::mutex mutex;
    std::vector<TokenRevocation> revocations;

    RevocationFollower::Deliver deliver() {
        return [this](std::vector<TokenRevocation> got) {
            std::lock_guard lock(mutex);
            revocations.insert(revocations.end(), got.begin(), got.end());
        };
    }
    bool has(const std::string& key) {
        std::lock_guard lock(mutex);
        return std::any_of(revocations.begin(), revocations.end(),
                           [&](const TokenRevocation& r) { return r.key == key; });
    }
};

std::int64_t now_ms() {
    return Clock::system().unix_ms();
}

std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
        text.pop_back();
    return text;
}

}  // namespace

TEST_CASE("revocation payloads: encoded as stored, anything else refused",
          "[redis_token_revocations]") {
    const TokenRevocation revocation{"job", "tenant/alice", "01JOB", 1'800'000'000'000,
                                     1'800'003'600'000};
    auto decoded = decode_revocation(encode_revocation(revocation));
    REQUIRE(decoded);
    CHECK(decoded->kind == "job");
    CHECK(decoded->owner == "tenant/alice");
    CHECK(decoded->key == "01JOB");
    CHECK(decoded->revoked_at == revocation.revoked_at);
    CHECK(decoded->until == revocation.until);
    CHECK_FALSE(decode_revocation(""));
    CHECK_FALSE(decode_revocation("not msgpack at all"));
    const std::string payload = encode_revocation(revocation);
    CHECK_FALSE(decode_revocation(payload.substr(0, payload.size() - 1)));
}

TEST_CASE("revocations on the cluster: stored, merged, replicated, expiring, followed",
          "[redis_token_revocations]") {
    if (redis::testing::skip_without_redis()) return;
    redis::testing::RedisNodes nodes(2, true);
    nodes.create_single_shard();
    RedisRevocationsConfig config;
    config.wait_timeout = 200ms;
    config.add_timeout = 1500ms;
    Client a(nodes), b(nodes);
    RedisTokenRevocations on_a(a.cluster, config), on_b(b.cluster, config);
    Heard heard;
    RevocationFollower follower(b.cluster, heard.deliver(), 300ms);

    const std::int64_t now = now_ms();
    const std::int64_t until = now + 3'600'000;
    const std::string key = std::string("jc:{revocations}:r:job\nalice\nJ1");

    SECTION("an add is read by every broker, merged with what is stored, and published") {
        on_a.add({"job", "alice", "J1", now, until}, now);
        auto loaded = on_b.load(now);
        REQUIRE(loaded.size() == 1);
        CHECK(loaded[0].kind == "job");
        CHECK(loaded[0].owner == "alice");
        CHECK(loaded[0].key == "J1");
        CHECK(loaded[0].revoked_at == now);
        CHECK(loaded[0].until == until);
        // The replica has it, and the key expires with the tokens it covers.
        CHECK(trimmed(nodes.cli(1, {"DBSIZE"})) == "3");  // the revocation, index, version
        CHECK(trimmed(nodes.cli(0, {"PEXPIRETIME", key})) == std::to_string(until));
        CHECK(trimmed(nodes.cli(0, {"PEXPIRETIME", "jc:{revocations}:index"})) ==
              std::to_string(until));
        redis::testing::wait_until(
            "the follower to hear of it", [&] { return heard.has("J1"); }, 1s);

        // An older one of the same key narrows nothing; a later one widens it.
        on_b.add({"job", "alice", "J1", now - 1000, until - 1000}, now);
        loaded = on_a.load(now);
        REQUIRE(loaded.size() == 1);
        CHECK(loaded[0].revoked_at == now);
        CHECK(loaded[0].until == until);
        on_b.add({"job", "alice", "J1", now + 5, until + 5}, now + 5);
        loaded = on_a.load(now);
        REQUIRE(loaded.size() == 1);
        CHECK(loaded[0].revoked_at == now + 5);
        CHECK(loaded[0].until == until + 5);
        CHECK(trimmed(nodes.cli(0, {"PEXPIRETIME", "jc:{revocations}:index"})) ==
              std::to_string(until + 5));
        // Over at `until`: loads skip it, the next add prunes it from the index.
        CHECK(on_a.load(until + 5).empty());
        on_a.add({"owner", "alice", "alice", until + 6, until + 3'600'000}, until + 6);
        CHECK(trimmed(nodes.cli(0, {"ZCARD", "jc:{revocations}:index"})) == "1");
    }

    SECTION("a load reads every live revocation, however many scan pages the index takes") {
        // 2,500 (the index is scanned about 1,000 at a time), 500 of them over
        // by the time of the load.
        for (int i = 0; i < 2500; ++i)
            on_a.add({"job", "alice", "K" + std::to_string(i), now, i < 500 ? now + 1000 : until},
                     now);
        const auto loaded = on_b.load(now + 2000);
        std::set<std::string> keys;
        for (const auto& r : loaded)
            keys.insert(r.key);
        CHECK(loaded.size() == 2000);  // each once
        CHECK(keys.size() == 2000);
        CHECK(keys.count("K500") == 1);
        CHECK(keys.count("K2499") == 1);
        CHECK(keys.count("K0") == 0);
    }

    SECTION("every key expires once every token it covers has") {
        const std::int64_t soon = now_ms() + 300;
        on_a.add({"token", "alice", "S1", now, soon}, now);
        CHECK(on_b.load(now).size() == 1);
        redis::testing::wait_until(
            "the keys to expire", [&] { return trimmed(nodes.cli(0, {"DBSIZE"})) == "0"; }, 3s);
        CHECK(on_b.load(now).empty());
    }

    SECTION("a follower that missed the message finds the change on its next check") {
        redis::testing::wait_until(
            "the follower's first load",
            [&] {
                return nodes.cli(0, {"PUBSUB", "SHARDNUMSUB", "jc:{revocations}:revoked"})
                           .find("\n1") != std::string::npos;
            },
            2s);
        // Written as an add writes it, but never published.
        const std::string member = "job\nalice\nJ9";
        nodes.cli(0,
                  {"HSET", "jc:{revocations}:r:" + member, "kind", "job", "owner", "alice", "key",
                   "J9", "revoked_at", std::to_string(now), "until", std::to_string(until)});
        nodes.cli(0, {"ZADD", "jc:{revocations}:index", std::to_string(until), member});
        nodes.cli(0, {"SET", "jc:{revocations}:version", "changed by hand"});
        redis::testing::wait_until(
            "the follower to reload", [&] { return heard.has("J9"); }, 2s);
    }

    SECTION("an add waits for the replica, and fails when it is gone") {
        nodes.kill(1);
        CHECK_THROWS_AS(on_a.add({"job", "alice", "J2", now, until}, now), store::StoreError);
    }
}

}  // namespace jobcast::cluster
