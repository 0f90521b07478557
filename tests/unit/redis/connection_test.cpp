// One connection against a real Redis node and against fake servers:
// pipelined replies keep their order, a lost node fails every pending
// command, and connect timeouts, reply timeouts and garbage end the
// connection cleanly.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>

#include <atomic>
#include <future>
#include <mutex>

#include "redis/error.hpp"
#include "redis/loop.hpp"
#include "redis_nodes.hpp"

namespace jobcast::redis {

namespace {

struct Outcome {
    std::error_code error;
    Reply reply;
};

// Runs `fn` on the loop thread and waits for it.
template <class Fn>
auto on_loop(Loop& loop, Fn fn) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    loop.post([&task] { task(); });
    return result.get();
}

// A TCP listener on 127.0.0.1 with a kernel-chosen port, plain POSIX.
struct Listener {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    std::uint16_t port = 0;

    explicit Listener(int backlog) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t size = sizeof addr;
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd, backlog) == 0);
        REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) == 0);
        port = ntohs(addr.sin_port);
    }
    ~Listener() { ::close(fd); }
};

}  // namespace

TEST_CASE("pipelined commands on one connection get their replies in order", "[connection]") {
    if (testing::skip_without_redis()) return;
    testing::RedisNodes node(1, false);
    Loop loop;
    constexpr int kCommands = 2000;
    std::mutex mutex;
    std::vector<Outcome> outcomes;
    std::promise<void> all_done;
    auto connection = on_loop(loop, [&] {
        auto c = Connection::create(loop, node.endpoint(0), {});
        // Queued before the connection is up and in one turn: one pipeline.
        for (int i = 0; i < kCommands; ++i) {
            c->send(
                i % 2 ? Command{"INCR", "counter"} : Command{"RPUSH", "list", std::to_string(i)},
                [&, i](std::error_code ec, Reply reply) {
                    std::lock_guard lock(mutex);
                    outcomes.push_back({ec, std::move(reply)});
                    if (i == kCommands - 1) all_done.set_value();
                });
        }
        return c;
    });
    all_done.get_future().wait();
    REQUIRE(outcomes.size() == kCommands);
    for (int i = 0; i < kCommands; ++i) {
        INFO("command " << i);
        REQUIRE_FALSE(outcomes[i].error);
        // INCR counts 1, 2, ...; RPUSH returns the new length 1, 2, ...
        REQUIRE(outcomes[i].reply == Reply::of_integer(i / 2 + 1));
    }

    // A server error is a reply, not a broken connection.
    std::promise<Outcome> wrong;
    on_loop(loop, [&] {
        connection->send({"INCR", "list"}, [&](std::error_code ec, Reply reply) {
            wrong.set_value({ec, std::move(reply)});
        });
        return 0;
    });
    Outcome outcome = wrong.get_future().get();
    CHECK_FALSE(outcome.error);
    CHECK(outcome.reply.error_code() == "WRONGTYPE");
    CHECK(on_loop(loop, [&] { return connection->is_open(); }));
    on_loop(loop, [&] {
        connection->close();
        return 0;
    });
}

TEST_CASE("a killed node fails every pending command, and later ones, with an error",
          "[connection]") {
    if (testing::skip_without_redis()) return;
    testing::RedisNodes node(1, false);
    Loop loop;
    std::promise<void> blocked_sent;
    std::vector<std::promise<Outcome>> pending(3);
    std::promise<std::error_code> closed;
    auto connection = on_loop(loop, [&] {
        auto c = Connection::create(loop, node.endpoint(0), {});
        c->on_close([&](std::error_code ec) { closed.set_value(ec); });
        // BLPOP blocks the connection, so what follows waits behind it.
        for (auto& p : pending)
            c->send({"BLPOP", "nothing", "0"}, [&p](std::error_code ec, Reply reply) {
                p.set_value({ec, std::move(reply)});
            });
        return c;
    });
    // The commands reached the server once it reports a blocked client.
    testing::wait_until("the blocked client", [&] {
        return node.info(0, {"INFO", "clients"}, "blocked_clients") == "1";
    });
    node.kill(0);
    for (auto& p : pending)
        CHECK(p.get_future().get().error == Errc::connection_lost);
    CHECK(closed.get_future().get() == Errc::connection_lost);

    std::promise<Outcome> late;
    on_loop(loop, [&] {
        connection->send({"PING"}, [&](std::error_code ec, Reply r) { late.set_value({ec, r}); });
        return 0;
    });
    CHECK(late.get_future().get().error == Errc::connection_lost);
}

TEST_CASE("commands without a reply for reply_timeout fail the connection", "[connection]") {
    if (testing::skip_without_redis()) return;
    testing::RedisNodes node(1, false);
    Loop loop;
    std::promise<Outcome> answered, blocked;
    auto started = std::chrono::steady_clock::now();
    on_loop(loop, [&] {
        auto c = Connection::create(loop, node.endpoint(0),
                                    {.reply_timeout = std::chrono::milliseconds(300)});
        c->send({"PING"}, [&](std::error_code ec, Reply r) { answered.set_value({ec, r}); });
        // Stands for a stopped node: nothing comes back.
        c->send({"BLPOP", "nothing", "0"}, [&](std::error_code ec, Reply r) {
            blocked.set_value({ec, r});
        });
        return 0;
    });
    CHECK(answered.get_future().get().reply == Reply::of_status("PONG"));
    CHECK(blocked.get_future().get().error == Errc::reply_timeout);
    auto waited = std::chrono::steady_clock::now() - started;
    CHECK(waited >= std::chrono::milliseconds(300));
    CHECK(waited < std::chrono::seconds(3));
}

TEST_CASE("connecting gives up after the connect timeout or when refused", "[connection]") {
    Loop loop;
    // A listener that never accepts, its backlog full: further SYNs go unanswered.
    Listener full(0);
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(full.port);
        ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        fillers.push_back(fd);
    }
    std::promise<Outcome> timed_out;
    auto started = std::chrono::steady_clock::now();
    on_loop(loop, [&] {
        auto c = Connection::create(loop, {"127.0.0.1", full.port},
                                    {.connect_timeout = std::chrono::milliseconds(200)});
        c->send({"PING"}, [&](std::error_code ec, Reply r) { timed_out.set_value({ec, r}); });
        return 0;
    });
    CHECK(timed_out.get_future().get().error == Errc::connect_timeout);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
    for (int fd : fillers)
        ::close(fd);

    std::uint16_t unused;
    {
        Listener gone(1);
        unused = gone.port;
    }
    std::promise<Outcome> refused;
    on_loop(loop, [&] {
        auto c = Connection::create(loop, {"127.0.0.1", unused}, {});
        c->send({"PING"}, [&](std::error_code ec, Reply r) { refused.set_value({ec, r}); });
        return 0;
    });
    CHECK(refused.get_future().get().error == Errc::connect_failed);
}

TEST_CASE("garbage from the server ends the connection with a protocol error", "[connection]") {
    Loop loop;
    Listener server(1);
    std::thread fake([&] {
        int client = ::accept(server.fd, nullptr, nullptr);
        char buffer[256];
        // Answer the first command properly, then send what no Redis sends.
        (void)::read(client, buffer, sizeof buffer);
        const char reply[] = "+OK\r\n!garbage\r\n";
        (void)::write(client, reply, sizeof reply - 1);
        // Hold the connection open: the client must end it by itself.
        (void)::read(client, buffer, sizeof buffer);
        ::close(client);
    });
    std::promise<Outcome> first, second;
    on_loop(loop, [&] {
        auto c = Connection::create(loop, {"127.0.0.1", server.port}, {});
        c->send({"PING"}, [&](std::error_code ec, Reply r) { first.set_value({ec, r}); });
        c->send({"PING"}, [&](std::error_code ec, Reply r) { second.set_value({ec, r}); });
        return 0;
    });
    Outcome ok = first.get_future().get();
    CHECK_FALSE(ok.error);
    CHECK(ok.reply == Reply::of_status("OK"));
    CHECK(second.get_future().get().error == Errc::protocol_error);
    fake.join();
}

}  // namespace jobcast::redis
