// The secure-by-default guards on --http and --zmq (audit L6): only literal
// loopback addresses and localhost count as loopback, and every ZeroMQ
// transport that can leave the machine needs CURVE like tcp:// does.
#include "broker/security_config.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "broker/config.hpp"

using namespace jobcast::broker;

namespace {

// parse_broker_config on these flags; throws ConfigError like the binary exits 2.
BrokerConfig parse(std::vector<std::string> args) {
    std::vector<const char*> argv = {"jobcast-broker"};
    for (const auto& arg : args)
        argv.push_back(arg.c_str());
    auto config = parse_broker_config(static_cast<int>(argv.size()), argv.data());
    REQUIRE(config);
    return *config;
}

}  // namespace

TEST_CASE("loopback means a literal loopback address or localhost, never a name like 127.x") {
    for (const char* host :
         {"127.0.0.1", "127.1.2.3", "127.255.255.254", "::1", "[::1]", "0:0:0:0:0:0:0:1",
          "::ffff:127.0.0.1", "localhost", "LOCALHOST", "localhost."}) {
        INFO(host);
        CHECK(is_loopback_host(host));
    }
    for (const char* host : {"127.example.com", "127.0.0.1.nip.io", "127.0.0.1.", "127.1",
                             "0x7f.0.0.1", "0177.0.0.1", "127.0.0.256", "localhost.example",
                             "mylocalhost", "0.0.0.0", "::", "192.168.1.1", "[::2]", "", "*"}) {
        INFO(host);
        CHECK_FALSE(is_loopback_host(host));
    }
}

TEST_CASE("an open broker on a name that merely starts with 127. is refused") {
    CHECK_THROWS_AS(parse({"--http", "127.example.com:8080"}), ConfigError);
    CHECK_THROWS_AS(parse({"--http", "127.0.0.1.nip.io:8080"}), ConfigError);
    CHECK_NOTHROW(parse({"--http", "127.0.0.1:8080"}));
    CHECK_NOTHROW(parse({"--http", "[::1]:8080"}));
    CHECK_NOTHROW(parse({"--http", "localhost:0"}));
    // With auth, or when told the network is trusted, any address.
    CHECK_NOTHROW(parse({"--http", "127.example.com:8080", "--insecure-no-auth"}));
}

TEST_CASE("every ZeroMQ transport but ipc and inproc needs CURVE beyond loopback") {
    CHECK(zmq_endpoint_is_local("ipc:///tmp/jobcast.sock"));
    CHECK(zmq_endpoint_is_local("inproc://workers"));
    CHECK(zmq_endpoint_is_local("tcp://127.0.0.1:5555"));
    CHECK(zmq_endpoint_is_local("tcp://127.0.0.1:*"));
    CHECK(zmq_endpoint_is_local("tcp://[::1]:5555"));
    CHECK(zmq_endpoint_is_local("ws://127.0.0.1:5555/workers"));
    CHECK(zmq_endpoint_is_local("ws://localhost:5555"));
    for (const char* endpoint :
         {"tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://eth0:5555", "tcp://127.example.com:5555",
          "ws://0.0.0.0:5555", "wss://0.0.0.0:5555/x", "ws://127.example.com:5555",
          "udp://0.0.0.0:5555", "pgm://eth0;239.192.1.1:5555", "epgm://eth0;239.192.1.1:5555",
          "tipc://{5560,0,0}", "vmci://1:5555", "norm://0.0.0.0:5555", "no-scheme:5555"}) {
        INFO(endpoint);
        CHECK_FALSE(zmq_endpoint_is_local(endpoint));
    }
}

TEST_CASE("the --zmq guard refuses non-tcp transports without CURVE as it refuses tcp") {
    CHECK_THROWS_AS(parse({"--zmq", "ws://0.0.0.0:5555"}), ConfigError);
    CHECK_THROWS_AS(parse({"--zmq", "tcp://0.0.0.0:5555"}), ConfigError);
    CHECK_THROWS_AS(parse({"--zmq", "epgm://eth0;239.192.1.1:5555"}), ConfigError);
    CHECK_NOTHROW(parse({"--zmq", "ipc:///tmp/jobcast-test.sock"}));
    CHECK_NOTHROW(parse({"--zmq", "ws://127.0.0.1:0"}));
    CHECK_NOTHROW(parse({"--zmq", "ws://0.0.0.0:5555", "--insecure-no-curve"}));
}

TEST_CASE("keepalive flags: TCP keepalive and the WebSocket ping interval, each 100ms to 24h") {
    auto defaults = parse({});
    CHECK(defaults.streaming.keepalive == std::chrono::seconds(45));
    CHECK(defaults.streaming.ws_ping_interval == std::chrono::seconds(240));
    auto set = parse({"--keepalive", "30s", "--ws-ping-interval", "2m"});
    CHECK(set.streaming.keepalive == std::chrono::seconds(30));
    CHECK(set.streaming.ws_ping_interval == std::chrono::minutes(2));
    for (const char* bad : {"0", "99ms", "25h", "abc", "1e300"}) {
        INFO(bad);
        CHECK_THROWS_AS(parse({"--ws-ping-interval", bad}), ConfigError);
        CHECK_THROWS_AS(parse({"--keepalive", bad}), ConfigError);
    }
}
