// jobcast-bench-limits: the raw limits of this machine that bound jobcast,
// each measured in a tight loop with nothing else in the way:
//   sqlite-append      rows/s: appends of --size-byte rows (rowid order) through
//                      one prepared statement, WAL, synchronous=NORMAL, 8,192
//                      rows per transaction: a row per event at best;
//   zmq-dealer-router  messages/s: one DEALER sending --size-byte messages to a
//                      ROUTER over loopback TCP (a worker -> the gateway);
//   beast-ws-frames    frames/s: one Beast WebSocket writing a pre-serialized
//                      100-byte text frame to one reader over loopback;
//   tcp-small-sends    send() calls/s of 100 bytes over loopback TCP;
//   tcp-bulk           MB/s of 64 KiB send() calls over loopback TCP;
//   timer-wakeup-cpu   ns of CPU per wake-up of a thread sleeping to the next
//                      millisecond (as a handler emitting 1,000 lone events a
//                      second wakes): the floor of any process's CPU per
//                      event at that rate;
//   zmq-lone-message-cpu
//                      ns of CPU per message of a process that wakes each
//                      millisecond, sends one message of --size bytes (4 at
//                      least) through a DEALER and reads its reply when it
//                      next wakes (a worker's chunk and its ack with nothing
//                      to coalesce): its thread and ZeroMQ's I/O thread; the
//                      replier is another process.
// Prints one line per limit: "limit NAME VALUE UNIT".
//
//   jobcast-bench-limits [--size 64] [--dir /tmp] [--seconds 2]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <zmq.hpp>

namespace {

namespace net = boost::asio;
namespace websocket = boost::beast::websocket;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

void report(const char* name, double value, const char* unit) {
    std::printf("limit %s %.0f %s\n", name, value, unit);
    std::fflush(stdout);
}

void exec(sqlite3* db, const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::fprintf(stderr, "sqlite: %s: %s\n", sql, err ? err : "?");
        std::exit(1);
    }
}

void sqlite_append(const std::string& dir, int size, double seconds) {
    const auto path = dir + "/jobcast-bench-limits.db";
    std::filesystem::remove(path);
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) std::exit(1);
    exec(db, "PRAGMA journal_mode=WAL");
    exec(db, "PRAGMA synchronous=NORMAL");
    exec(db, "CREATE TABLE events(seq INTEGER PRIMARY KEY, job INTEGER, data BLOB)");
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "INSERT INTO events VALUES(?,?,?)", -1, &st, nullptr);
    const std::string data(static_cast<std::size_t>(size), 'x');
    long rows = 0;
    const auto t0 = Clock::now();
    while (since(t0) < seconds) {
        exec(db, "BEGIN");
        for (int i = 0; i < 8192; ++i, ++rows) {
            sqlite3_bind_int64(st, 1, rows + 1);
            sqlite3_bind_int64(st, 2, rows % 100);
            sqlite3_bind_blob(st, 3, data.data(), size, SQLITE_STATIC);
            sqlite3_step(st);
            sqlite3_reset(st);
        }
        exec(db, "COMMIT");
    }
    report("sqlite-append", static_cast<double>(rows) / since(t0), "rows/s");
    sqlite3_finalize(st);
    sqlite3_close(db);
    std::filesystem::remove(path);
    std::filesystem::remove(path + "-wal");
    std::filesystem::remove(path + "-shm");
}

void zmq_dealer_router(int size, double seconds) {
    zmq::context_t ctx(1);
    zmq::socket_t router(ctx, zmq::socket_type::router);
    router.bind("tcp://127.0.0.1:*");
    const auto endpoint = router.get(zmq::sockopt::last_endpoint);
    std::atomic<bool> stop{false};
    std::atomic<long> sent{0};
    std::thread sender([&] {
        zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
        dealer.set(zmq::sockopt::sndhwm, 100000);
        dealer.connect(endpoint);
        const std::string msg(static_cast<std::size_t>(size), 'x');
        long n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            dealer.send(zmq::buffer(msg), zmq::send_flags::none);
            ++n;
        }
        dealer.send(zmq::str_buffer("end"), zmq::send_flags::none);
        sent = n;
    });
    long received = 0;
    zmq::message_t id, body;
    (void)router.recv(id);
    (void)router.recv(body);
    const auto t0 = Clock::now();
    for (;;) {
        (void)router.recv(id);
        (void)router.recv(body);
        if (body.size() == 3) break;
        if (++received % 4096 == 0 && since(t0) > seconds) stop = true;
    }
    const double secs = since(t0);
    sender.join();
    report("zmq-dealer-router", static_cast<double>(received) / secs, "msgs/s");
}

void beast_ws(double seconds) {
    net::io_context ioc;
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    const auto port = acceptor.local_endpoint().port();
    std::atomic<bool> stop{false};
    std::thread server([&] {
        websocket::stream<tcp::socket> ws(acceptor.accept());
        ws.accept();
        ws.text(true);
        ws.auto_fragment(false);
        const std::string frame =
            R"({"type":"event","job":"j","seq":1,"kind":"token","ts":1,"data":{"t":1,"text":"xxxxxxxxxxxx"}})";
        while (!stop.load(std::memory_order_relaxed))
            ws.write(net::buffer(frame));
        ws.close(websocket::close_code::normal);
    });
    net::io_context cio;
    websocket::stream<tcp::socket> client(cio);
    client.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    client.handshake("127.0.0.1", "/");
    boost::beast::flat_buffer buf;
    long frames = 0;
    const auto t0 = Clock::now();
    boost::beast::error_code ec;
    for (;;) {
        client.read(buf, ec);
        if (ec) break;
        buf.consume(buf.size());
        if (++frames % 4096 == 0 && since(t0) > seconds && !stop) stop = true;
    }
    const double secs = since(t0);
    server.join();
    report("beast-ws-frames", static_cast<double>(frames) / secs, "frames/s");
}

void tcp_loop(std::size_t chunk, double seconds, const char* name, bool bytes) {
    const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
    ::listen(lfd, 1);
    std::atomic<long> calls{0};
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const std::string buf(chunk, 'x');
        long n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            if (::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL) <= 0) break;
            ++n;
        }
        calls = n;
        ::close(fd);
    });
    const int fd = ::accept(lfd, nullptr, nullptr);
    std::string buf(1 << 20, '\0');
    long total = 0;
    const auto t0 = Clock::now();
    for (;;) {
        const auto n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        total += n;
        if (since(t0) > seconds) stop = true;
    }
    const double secs = since(t0);
    writer.join();
    ::close(fd);
    ::close(lfd);
    if (bytes)
        report(name, static_cast<double>(total) / secs / 1e6, "MB/s");
    else
        report(name, static_cast<double>(calls.load()) / secs, "sends/s");
}

std::int64_t monotonic_ns() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// Sleeps to the next millisecond of a grid (absolute, so a wake-up a little
// late does not move the ones after it). A wake-up more than a tick late
// starts the grid again from now: the ticks it missed would return at once,
// costing no wake-up, and each iteration here must be one.
void sleep_to_next_ms(std::int64_t& at_ns) {
    at_ns += 1'000'000;
    const std::int64_t now = monotonic_ns();
    if (at_ns <= now) at_ns = now + 1'000'000;
    const timespec at{static_cast<time_t>(at_ns / 1'000'000'000),
                      static_cast<long>(at_ns % 1'000'000'000)};
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
    }
}

double process_cpu_ns() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return (static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
            static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec)) *
           1e3;
}

void timer_wakeups(double seconds) {
    const long n = std::max(100L, static_cast<long>(seconds * 1000));
    std::int64_t at = monotonic_ns();
    const double cpu0 = process_cpu_ns();
    for (long i = 0; i < n; ++i)
        sleep_to_next_ms(at);
    report("timer-wakeup-cpu", (process_cpu_ns() - cpu0) / static_cast<double>(n), "ns/wakeup");
}

void zmq_lone_messages(int size, double seconds) {
    int fds[2];
    if (::pipe(fds) != 0) {
        std::perror("zmq-lone-message-cpu: pipe");
        return;
    }
    const pid_t child = ::fork();
    if (child < 0) {
        std::perror("zmq-lone-message-cpu: fork");
        return;
    }
    if (child == 0) {  // the replier: one short reply to each message, until "end"
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // gone with the measuring process
        ::close(fds[0]);
        zmq::context_t ctx(1);
        zmq::socket_t router(ctx, zmq::socket_type::router);
        router.set(zmq::sockopt::rcvtimeo, 10'000);
        router.set(zmq::sockopt::linger, 1000);
        router.bind("tcp://127.0.0.1:*");
        const auto endpoint = router.get(zmq::sockopt::last_endpoint);
        if (::write(fds[1], endpoint.data(), endpoint.size()) < 0) ::_exit(1);
        ::close(fds[1]);
        zmq::message_t id, body;
        for (;;) {
            if (!router.recv(id) || !router.recv(body)) break;
            const bool end = body.size() == 3;
            router.send(id, zmq::send_flags::sndmore);
            router.send(zmq::str_buffer("ack"), zmq::send_flags::none);
            if (end) break;
        }
        router.close();
        ctx.close();
        ::_exit(0);
    }
    ::close(fds[1]);
    char endpoint[256] = {};
    const auto got = ::read(fds[0], endpoint, sizeof endpoint - 1);
    ::close(fds[0]);
    if (got <= 0) {
        std::fprintf(stderr, "zmq-lone-message-cpu: the replier did not start\n");
        ::waitpid(child, nullptr, 0);
        return;
    }
    long replies = 0;
    {
        zmq::context_t ctx(1);
        zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
        // A replier that died ends the wait (a DEALER with no peer blocks its sends).
        dealer.set(zmq::sockopt::rcvtimeo, 5000);
        dealer.set(zmq::sockopt::sndtimeo, 5000);
        dealer.set(zmq::sockopt::linger, 0);
        dealer.connect(endpoint);
        const std::string msg(static_cast<std::size_t>(std::max(size, 4)), 'x');
        zmq::message_t reply;
        auto drain = [&] {
            while (dealer.recv(reply, zmq::recv_flags::dontwait))
                ++replies;
        };
        // Connected and answered once before the clock starts.
        dealer.send(zmq::buffer(msg), zmq::send_flags::none);
        auto give_up = [&](long got) {
            std::fprintf(stderr, "zmq-lone-message-cpu: the replier stopped after %ld replies\n",
                         got);
            ::kill(child, SIGKILL);
            ::waitpid(child, nullptr, 0);
        };
        if (!dealer.recv(reply)) return give_up(0);
        const long n = std::max(100L, static_cast<long>(seconds * 1000));
        std::int64_t at = monotonic_ns();
        const double cpu0 = process_cpu_ns();
        for (long i = 0; i < n; ++i) {
            sleep_to_next_ms(at);
            drain();  // the replies that came in since the last wake-up
            if (!dealer.send(zmq::buffer(msg), zmq::send_flags::none)) return give_up(replies);
        }
        while (replies < n) {
            if (!dealer.recv(reply)) return give_up(replies);
            ++replies;
        }
        report("zmq-lone-message-cpu", (process_cpu_ns() - cpu0) / static_cast<double>(n),
               "ns/message");
        // The replier's last reply: it is on its way out, or is made to go.
        if (!dealer.send(zmq::str_buffer("end"), zmq::send_flags::none) || !dealer.recv(reply))
            ::kill(child, SIGKILL);
    }
    ::waitpid(child, nullptr, 0);
}

}  // namespace

int main(int argc, char** argv) {
    int size = 64;
    std::string dir = "/tmp";
    double seconds = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        if (arg == "--size")
            size = std::atoi(argv[i + 1]);
        else if (arg == "--dir")
            dir = argv[i + 1];
        else if (arg == "--seconds")
            seconds = std::atof(argv[i + 1]);
        else {
            std::fprintf(stderr,
                         "usage: jobcast-bench-limits [--size 64] [--dir /tmp] [--seconds 2]\n");
            return 2;
        }
    }
    if (!(seconds >= 0.1 && seconds <= 3600) || size < 1 || size > (1 << 20)) {
        std::fprintf(stderr,
                     "jobcast-bench-limits: --seconds must be 0.1 to 3600 and --size 1 to "
                     "1048576\n");
        return 2;
    }
    sqlite_append(dir, size, seconds);
    zmq_dealer_router(size, seconds);
    beast_ws(seconds);
    tcp_loop(100, seconds, "tcp-small-sends", false);
    tcp_loop(65536, seconds, "tcp-bulk", true);
    timer_wakeups(seconds);
    zmq_lone_messages(size, seconds);
    return 0;
}
