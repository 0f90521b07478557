// What the cluster client reads from servers: redirects, endpoints and the
// CLUSTER SHARDS / CLUSTER SLOTS replies, in the shapes Redis 7.0 sends.
#include <catch2/catch.hpp>

#include "redis/cluster.hpp"

namespace jobcast::redis {

namespace {

Reply text(const char* s) {
    return Reply::of_string(s);
}
Reply num(std::int64_t n) {
    return Reply::of_integer(n);
}

Reply shard_node(const char* id, std::int64_t port, const char* ip, const char* endpoint,
                 const char* role, const char* health) {
    return Reply::of_array({text("id"), text(id), text("port"), num(port), text("ip"), text(ip),
                            text("endpoint"), text(endpoint), text("role"), text(role),
                            text("replication-offset"), num(0), text("health"), text(health)});
}

}  // namespace

TEST_CASE("MOVED and ASK errors parse to a slot and a target", "[topology]") {
    const Endpoint from{"10.0.0.1", 7000};
    auto moved = parse_redirect("MOVED 3999 127.0.0.1:6381", from);
    REQUIRE(moved);
    CHECK(moved->kind == Redirect::Kind::moved);
    CHECK(moved->slot == 3999);
    CHECK(moved->target == Endpoint{"127.0.0.1", 6381});

    auto ask = parse_redirect("ASK 16383 redis-2.example:7001", from);
    REQUIRE(ask);
    CHECK(ask->kind == Redirect::Kind::ask);
    CHECK(ask->slot == 16383);
    CHECK(ask->target == Endpoint{"redis-2.example", 7001});

    // An empty host: the node that answered.
    auto same_host = parse_redirect("MOVED 1 :7005", from);
    REQUIRE(same_host);
    CHECK(same_host->target == Endpoint{"10.0.0.1", 7005});
    auto ipv6 = parse_redirect("MOVED 2 ::1:7002", from);
    REQUIRE(ipv6);
    CHECK(ipv6->target == Endpoint{"::1", 7002});

    CHECK_FALSE(parse_redirect("ERR wrong number of arguments", from));
    CHECK_FALSE(parse_redirect("MOVED 16384 127.0.0.1:6381", from));
    CHECK_FALSE(parse_redirect("MOVED x 127.0.0.1:6381", from));
    CHECK_FALSE(parse_redirect("MOVED 12", from));
    CHECK_FALSE(parse_redirect("ASK 12 127.0.0.1", from));
    CHECK_FALSE(parse_redirect("ASK 12 127.0.0.1:0", from));
}

TEST_CASE("endpoints parse as host:port", "[topology]") {
    CHECK(parse_endpoint("127.0.0.1:7000") == Endpoint{"127.0.0.1", 7000});
    CHECK(parse_endpoint("redis:6379") == Endpoint{"redis", 6379});
    CHECK_FALSE(parse_endpoint("redis"));
    CHECK_FALSE(parse_endpoint(":6379"));
    CHECK_FALSE(parse_endpoint("redis:65536"));
    CHECK_FALSE(parse_endpoint("redis:6379x"));
}

TEST_CASE("CLUSTER SHARDS gives each shard's slots, primary and replicas", "[topology]") {
    Reply reply = Reply::of_array({
        Reply::of_array(
            {text("slots"), Reply::of_array({num(0), num(5460), num(10923), num(10923)}),
             text("nodes"),
             Reply::of_array(
                 {shard_node("a", 30001, "127.0.0.1", "127.0.0.1", "master", "online"),
                  shard_node("d", 30004, "127.0.0.1", "127.0.0.1", "replica", "online")})}),
        // After a failover: the old primary is still listed, failed; the promoted one wins.
        Reply::of_array(
            {text("slots"), Reply::of_array({num(5461), num(10922)}), text("nodes"),
             Reply::of_array({shard_node("b", 30002, "127.0.0.1", "127.0.0.1", "master", "failed"),
                              shard_node("e", 30005, "10.1.1.5", "?", "master", "online")})}),
        // A primary without slots (emptied by resharding).
        Reply::of_array(
            {text("slots"), Reply::of_array({}), text("nodes"),
             Reply::of_array({shard_node("c", 30003, "127.0.0.1", "", "master", "online")})}),
    });
    auto shards = parse_cluster_shards(reply);
    REQUIRE(shards);
    REQUIRE(shards->size() == 3);
    CHECK((*shards)[0].primary == Endpoint{"127.0.0.1", 30001});
    CHECK((*shards)[0].slots ==
          std::vector<std::pair<std::uint16_t, std::uint16_t>>{{0, 5460}, {10923, 10923}});
    CHECK((*shards)[0].replicas == std::vector<Endpoint>{{"127.0.0.1", 30004}});
    CHECK((*shards)[1].primary == Endpoint{"10.1.1.5", 30005});  // "?" endpoint: the ip
    CHECK((*shards)[1].replicas.empty());
    CHECK((*shards)[2].slots.empty());

    CHECK_FALSE(
        parse_cluster_shards(Reply::of_error("ERR This instance has cluster support disabled")));
    CHECK_FALSE(parse_cluster_shards(Reply::of_array({Reply::of_array({text("slots")})})));
    CHECK_FALSE(parse_cluster_shards(
        Reply::of_array({Reply::of_array({text("slots"), Reply::of_array({num(10), num(20000)}),
                                          text("nodes"), Reply::of_array({})})})));
}

TEST_CASE("CLUSTER SLOTS ranges group by primary", "[topology]") {
    auto node = [](const char* host, std::int64_t port) {
        return Reply::of_array({text(host), num(port), text("id")});
    };
    Reply reply = Reply::of_array({
        Reply::of_array({num(0), num(5460), node("127.0.0.1", 30001), node("127.0.0.1", 30004)}),
        Reply::of_array({num(5461), num(10922), node("127.0.0.1", 30002)}),
        Reply::of_array(
            {num(10923), num(16383), node("127.0.0.1", 30001), node("127.0.0.1", 30004)}),
    });
    auto shards = parse_cluster_slots(reply);
    REQUIRE(shards);
    REQUIRE(shards->size() == 2);
    CHECK((*shards)[0].primary == Endpoint{"127.0.0.1", 30001});
    CHECK((*shards)[0].slots ==
          std::vector<std::pair<std::uint16_t, std::uint16_t>>{{0, 5460}, {10923, 16383}});
    CHECK((*shards)[0].replicas == std::vector<Endpoint>{{"127.0.0.1", 30004}});
    CHECK((*shards)[1].slots ==
          std::vector<std::pair<std::uint16_t, std::uint16_t>>{{5461, 10922}});
    CHECK_FALSE(parse_cluster_slots(Reply::of_array({Reply::of_array({num(0), num(1)})})));
}

}  // namespace jobcast::redis
