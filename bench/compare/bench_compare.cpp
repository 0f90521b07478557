// jobcast-bench: jobcast side by side with nginx + nchan, NATS JetStream and
// HTTP polling, in one run, with one load generator (this program).
//
// For each system it starts the server on loopback (jobcast-broker with a fresh
// database; nginx and nats-server with the configuration files of
// bench/compare/), runs the scenarios, stops it, then measures the machine's raw
// limits (jobcast-bench-limits) and prints one table (and --json PATH).
//
// Publishing the way each system's users do:
//   jobcast  workers on the worker SDK over ZeroMQ (jobcast-bench-worker for
//            ingest, jobcast-bench-stream-worker for fixed-rate and timed
//            streams); jobs submitted over the REST API.
//   nchan    HTTP/1.1 POST /pub?id=CHANNEL on keep-alive connections, pipelined
//            up to --window requests in flight; a 2xx answer counts.
//   NATS     the NATS protocol over TCP, JetStream publish: PUB with a reply
//            inbox, up to --window PubAcks outstanding; a PubAck counts.
// Subscribing over WebSocket, all in one io_context thread of this process:
//   jobcast  /v1/ws, {"op":"subscribe","job":ID,"after":N}.
//   nchan    /sub?id=CHANNEL (new messages) or /resume?id=CHANNEL (oldest first).
//   NATS     the WebSocket listener, core SUB on the stream's subject for live
//            messages; for resume a push consumer with deliver_policy
//            by_start_sequence (ack none, flow control answered).
//
// Every published event carries its intended send time (µs) and, for the peers,
// its number in its channel: {"t":T,"n":N,"p":"xxx"} padded to --size bytes;
// jobcast's data is {"t":T,"text":"xxx"} and its seq numbers the job's events.
// Each subscriber counts gaps and duplicates; latency is receive time minus the
// intended time (coordinated-omission aware at fixed rates).
//
// Scenarios (--scenario ingest,fanout,latency,resume,idle,poll,limits or all):
//   ingest   max events/s accepted and stored: --ingest-events over
//            --publishers connections / workers (jobcast: committed and acked,
//            a job counts when it succeeded; NATS: PubAck from a file stream;
//            nchan: 2xx, message buffer on).
//   fanout   1 channel x --fanout-subs subscribers (--fanout-events), and
//            --fanout-jobs channels x 1 subscriber (--fanout-job-events each):
//            delivered events/s from the first to the last delivery.
//   latency  --latency-rates events/s (fixed schedule) to --latency-subs
//            subscribers of one channel for --latency-seconds: p50/p99/p99.9.
//            With --cpu-hog N each rate runs a second time while N threads of
//            this process spin in a busy loop (rows "..., N CPU hog"): how
//            latency holds up when the cores are shared.
//   resume   --resume-events published while no one listened; a subscriber
//            connects and reads from the start: ms until it has all of them.
//   idle     --idle-conns subscribers connected to a quiet channel: server PSS
//            per connection and CPU while idle.
//   poll     jobcast only: --poll-jobs running jobs at --poll-rate events/s
//            each, --poll-clients clients (WebSocket push, REST polling every
//            1 s and every 100 ms): broker CPU s/min, median staleness. The jobs
//            emit on one schedule (all at once), or with --poll-spread each
//            offset by its share of the period.
//   limits   jobcast-bench-limits: SQLite append loop, ZeroMQ DEALER->ROUTER,
//            one Beast WebSocket writing pre-serialized frames, loopback TCP,
//            the CPU of a wake-up each millisecond and of a lone ZeroMQ
//            message with its reply.
//
//   jobcast-bench [--systems jobcast,nchan,nats] [--scenario all] [--bin-dir DIR]
//       [--conf-dir bench/compare] [--json PATH] [--size 64] [--window 256] ...
//       (see kUsage)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/common/broker_process.hpp"
#include "bench/common/clock.hpp"
#include "bench/common/errors.hpp"
#include "bench/common/histogram.hpp"
#include "bench/common/jobcast_api.hpp"
#include "bench/common/options.hpp"
#include "bench/common/process.hpp"
#include "bench/common/report.hpp"
#include "bench/common/results.hpp"
#include "bench/common/scan.hpp"
#include "bench/common/ws_client.hpp"
#include "bench/common/ws_subscriber.hpp"

namespace {

using namespace jobcast::bench;
namespace http = boost::beast::http;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- options

struct Options {
    std::string bin_dir = "build/release/bin";
    std::string conf_dir = "bench/compare";
    std::string dir = "/tmp";
    std::string json;
    std::vector<std::string> systems = {"jobcast", "nchan", "nats"};
    std::set<std::string> scenarios = {"ingest", "fanout", "latency", "resume",
                                       "idle",   "poll",   "limits"};
    int size = 64;
    int window = 256;
    int publishers = 4;
    long ingest_events = 400'000;
    long fanout_events = 10'000;
    int fanout_subs = 1000;
    int fanout_jobs = 1000;
    long fanout_job_events = 200;
    std::vector<int> latency_rates = {1000, 10000};
    int latency_subs = 100;
    double latency_seconds = 5;
    double warmup_seconds = 0.5;
    int cpu_hog = 0;  // busy-loop threads for a second run of each latency row
    long resume_events = 100'000;
    double resume_rate = 0;  // events/s while the subscriber is away (0: as fast as it goes)
    int idle_conns = 15'000;
    double idle_seconds = 10;
    int poll_jobs = 100;
    int poll_clients = 1000;
    int poll_rate = 10;
    double poll_seconds = 15;
    bool poll_spread = false;  // jobs' schedules spread over one period, not all at once
    double timeout = 60;
    int connect_parallel = 256;
    int nchan_port = 18180, nats_port = 18222, nats_ws_port = 18223, jobcast_port = 18080,
        jobcast_zmq_port = 18555;
};

constexpr const char* kUsage =
    "usage: jobcast-bench [--systems jobcast,nchan,nats] [--scenario all|ingest,fanout,\n"
    "         latency,resume,idle,poll,limits] [--bin-dir DIR] [--conf-dir DIR] [--dir /tmp]\n"
    "         [--json PATH] [--size 64] [--window 256] [--publishers 4]\n"
    "         [--ingest-events 400000] [--fanout-events 10000] [--fanout-subs 1000]\n"
    "         [--fanout-jobs 1000] [--fanout-job-events 200] [--latency-rates 1000,10000]\n"
    "         [--latency-subs 100] [--latency-seconds 5] [--warmup-seconds 0.5] [--cpu-hog 0]\n"
    "         [--resume-events 100000] [--resume-rate 0] [--idle-conns 15000] [--idle-seconds "
    "10]\n"
    "         [--poll-jobs 100] [--poll-clients 1000] [--poll-rate 10] [--poll-seconds 15]\n"
    "         [--poll-spread]\n"
    "         [--timeout 60] [--connect-parallel 256]\n";

Options parse_options(int argc, char** argv) {
    Options o;
    Args args(argc, argv, "jobcast-bench", kUsage);
    while (args.next()) {
        const std::string& arg = args.flag();
        if (arg == "--bin-dir")
            o.bin_dir = args.value();
        else if (arg == "--conf-dir")
            o.conf_dir = args.value();
        else if (arg == "--dir")
            o.dir = args.value();
        else if (arg == "--json")
            o.json = args.value();
        else if (arg == "--systems")
            o.systems = split(args.value(), ',');
        else if (arg == "--scenario") {
            const auto v = args.value();
            if (v != "all") {
                auto list = split(v, ',');
                o.scenarios = std::set<std::string>(list.begin(), list.end());
            }
        } else if (arg == "--size")
            o.size = static_cast<int>(args.number());
        else if (arg == "--window")
            o.window = static_cast<int>(args.number());
        else if (arg == "--publishers")
            o.publishers = static_cast<int>(args.number());
        else if (arg == "--ingest-events")
            o.ingest_events = static_cast<long>(args.number());
        else if (arg == "--fanout-events")
            o.fanout_events = static_cast<long>(args.number());
        else if (arg == "--fanout-subs")
            o.fanout_subs = static_cast<int>(args.number());
        else if (arg == "--fanout-jobs")
            o.fanout_jobs = static_cast<int>(args.number());
        else if (arg == "--fanout-job-events")
            o.fanout_job_events = static_cast<long>(args.number());
        else if (arg == "--latency-rates") {
            o.latency_rates.clear();
            for (const auto& r : split(args.value(), ','))
                o.latency_rates.push_back(std::stoi(r));
        } else if (arg == "--latency-subs")
            o.latency_subs = static_cast<int>(args.number());
        else if (arg == "--latency-seconds")
            o.latency_seconds = args.number();
        else if (arg == "--warmup-seconds")
            o.warmup_seconds = args.number();
        else if (arg == "--cpu-hog")
            o.cpu_hog = static_cast<int>(args.integer());
        else if (arg == "--resume-events")
            o.resume_events = static_cast<long>(args.number());
        else if (arg == "--resume-rate")
            o.resume_rate = args.number();
        else if (arg == "--idle-conns")
            o.idle_conns = static_cast<int>(args.number());
        else if (arg == "--idle-seconds")
            o.idle_seconds = args.number();
        else if (arg == "--poll-jobs")
            o.poll_jobs = static_cast<int>(args.number());
        else if (arg == "--poll-clients")
            o.poll_clients = static_cast<int>(args.number());
        else if (arg == "--poll-rate")
            o.poll_rate = static_cast<int>(args.number());
        else if (arg == "--poll-seconds")
            o.poll_seconds = args.number();
        else if (arg == "--poll-spread")
            o.poll_spread = true;
        else if (arg == "--timeout")
            o.timeout = args.number();
        else if (arg == "--connect-parallel")
            o.connect_parallel = static_cast<int>(args.number());
        else
            args.unknown();
    }
    for (const auto& s : o.systems)
        if (s != "jobcast" && s != "nchan" && s != "nats") args.usage("unknown system " + s);
    if (o.cpu_hog < 0 || o.cpu_hog > 64) args.usage("--cpu-hog must be between 0 and 64");
    return o;
}

Results g_results;

// ---------------------------------------------------------------- processes

// Proportional set size (KiB) of a process tree: shared memory counted once.
long tree_pss_kib(pid_t root) {
    long total = 0;
    for (pid_t p : process_tree(root)) {
        std::ifstream in("/proc/" + std::to_string(p) + "/smaps_rollup");
        for (std::string line; std::getline(in, line);)
            if (line.rfind("Pss:", 0) == 0) total += std::atol(line.c_str() + 4);
    }
    return total;
}

// A process tree's PSS once it stopped moving: sampled every 250 ms until the
// last four samples lie within 256 KiB of each other (a server still
// releasing the memory of an earlier scenario, or still growing, moves more),
// at most `timeout_s`. `median` is the median of those four; `settled` says
// whether they agreed before the timeout.
struct SettledPss {
    long median = 0;
    bool settled = false;
};

SettledPss settled_pss_kib(pid_t root, double timeout_s) {
    constexpr std::size_t kSamples = 4;
    constexpr long kSpreadKib = 256;
    std::deque<long> last;
    const auto t0 = Clock::now();
    for (;;) {
        last.push_back(tree_pss_kib(root));
        if (last.size() > kSamples) last.pop_front();
        const auto [lo, hi] = std::minmax_element(last.begin(), last.end());
        const bool settled = last.size() == kSamples && *hi - *lo <= kSpreadKib;
        if (settled || seconds_since(t0) >= timeout_s) {
            std::vector<long> sorted(last.begin(), last.end());
            std::sort(sorted.begin(), sorted.end());
            return {sorted[sorted.size() / 2], settled};
        }
        sleep_ms(250);
    }
}

bool port_open(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// A server under test on loopback; stopped (and its folder removed) at scope exit.
struct Server {
    std::string sys;
    pid_t pid = -1;
    std::string dir;
    std::vector<pid_t> workers;

    Server(const Options& o, const std::string& system) : sys(system) {
        dir = make_temp_dir(o.dir, "jobcast-bench-" + sys);
        const auto conf = fs::absolute(o.conf_dir).string();
        const int port = sys == "jobcast" ? o.jobcast_port
                         : sys == "nchan" ? o.nchan_port
                                          : o.nats_port;
        if (port_open(port))
            fail("port " + std::to_string(port) + " is in use: another " + sys + "?");
        if (sys == "jobcast") {
            // Every client is on this machine: no per-IP connection or
            // socket cap (the socket cap defaults to half of --max-connections,
            // fewer than the idle scenario's 15,000 sockets).
            pid = spawn(
                {o.bin_dir + "/jobcast-broker", "--http",
                 "127.0.0.1:" + std::to_string(o.jobcast_port), "--zmq",
                 "tcp://127.0.0.1:" + std::to_string(o.jobcast_zmq_port), "--db", dir + "/bench.db",
                 "--max-connections-per-ip", "0", "--max-sockets-per-ip", "1000000"},
                dir + "/server.log");
        } else if (sys == "nchan") {
            pid = spawn({"/usr/sbin/nginx", "-p", dir + "/", "-c", conf + "/nginx.conf"},
                        dir + "/server.log");
        } else {
            pid = spawn(
                {"/usr/sbin/nats-server", "-c", conf + "/nats.conf", "-sd", dir + "/jetstream"},
                dir + "/server.log");
        }
        const auto t0 = Clock::now();
        while (!port_open(port) || !alive(pid)) {
            if (!alive(pid)) fail(sys + " exited at start; see " + dir + "/server.log");
            if (seconds_since(t0) > 15) fail(sys + " did not listen within 15 s");
            sleep_ms(20);
        }
        if (sys == "nats")
            while (!port_open(o.nats_ws_port) && seconds_since(t0) < 15)
                sleep_ms(20);
        sleep_ms(200);
    }
    ~Server() {
        for (pid_t w : workers)
            stop_process(w);
        const auto tree = process_tree(pid);
        stop_process(pid, SIGTERM, std::chrono::milliseconds(10'000));
        for (pid_t p : tree)  // nginx workers outliving their master
            if (p != pid) ::kill(p, SIGKILL);
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    void check() const {
        if (!alive(pid)) fail(sys + " died; see " + dir + "/server.log");
    }
};

// ---------------------------------------------------------------- jobcast REST

struct Jobcast {
    const Options& o;
    Server& server;
    JobcastApi api{"127.0.0.1", o.jobcast_port};

    void start_workers(const std::string& binary, int n, int capacity) {
        for (int i = 0; i < n; ++i)
            server.workers.push_back(start_worker(
                o.bin_dir + "/" + binary, "tcp://127.0.0.1:" + std::to_string(o.jobcast_zmq_port),
                binary + "-" + std::to_string(i), capacity,
                server.dir + "/" + binary + "-" + std::to_string(server.workers.size()) + ".log"));
        const auto t0 = Clock::now();
        while (api.metric("jobcast_workers") < static_cast<double>(server.workers.size())) {
            if (seconds_since(t0) > 15) fail("workers did not connect within 15 s");
            sleep_ms(20);
        }
    }
    // jobcast-bench-stream-worker processes serving every timed stream of a run.
    void ensure_stream_workers() {
        if (!server.workers.empty()) return;
        start_workers("jobcast-bench-stream-worker", 4, 260);
    }
    void stop_workers() {
        for (pid_t w : server.workers)
            stop_process(w);
        server.workers.clear();
    }
    void wait_succeeded(const std::vector<std::string>& ids, double timeout) {
        const auto t0 = Clock::now();
        for (const auto& id : ids) {
            for (;;) {
                const auto s = json_string(api.job(id), "state");
                if (s == "succeeded") break;
                if (s == "failed" || s == "cancelled") fail("job " + id + " " + s);
                if (seconds_since(t0) > timeout) fail("timeout waiting for job " + id);
                server.check();
                sleep_ms(5);
            }
        }
    }
    // jobcast's data {"t":T,"text":"xxx"} sized like the peers' payload.
    int text_size() const { return std::max(1, o.size - 32); }
};

// ---------------------------------------------------------------- NATS protocol

void append_payload(std::string& out, std::int64_t t, std::int64_t n, int size) {
    char head[64];
    const int len = std::snprintf(head, sizeof head, R"({"t":%lld,"n":%lld,"p":")",
                                  static_cast<long long>(t), static_cast<long long>(n));
    out.append(head, static_cast<std::size_t>(len));
    out.append(static_cast<std::size_t>(std::max(1, size - len - 2)), 'x');
    out.append("\"}");
}

// ---------------------------------------------------------------- peer publishers

// One blocking publisher connection (nchan: HTTP POST; NATS: JetStream PUB) with
// a writer (run) and a reader thread that counts answers; at most `window`
// unanswered.
class Publisher {
  public:
    Publisher(const std::string& sys, int port, int id) : sys_(sys), id_(id) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            fail(sys + " publisher connect: " + std::strerror(errno));
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        inbox_ = "_INBOX.pub" + std::to_string(id);
        if (sys_ == "nats") send_all(kNatsConnect + "SUB " + inbox_ + ".> 1\r\nPING\r\n");
        reader_ = std::thread([this] { read_loop(); });
        if (sys_ == "nats") {
            const auto t0 = Clock::now();
            while (!ready_.load()) {
                if (seconds_since(t0) > 10) fail("NATS publisher: no PONG");
                sleep_ms(1);
            }
        }
    }
    ~Publisher() {
        ::shutdown(fd_, SHUT_RDWR);
        if (reader_.joinable()) reader_.join();
        ::close(fd_);
    }

    // A JetStream API request; waits for the answer.
    std::string request(const std::string& subject, const std::string& body) {
        const auto before = api_answers_.load();
        send_all("PUB " + subject + " " + inbox_ + ".api " + std::to_string(body.size()) + "\r\n" +
                 body + "\r\n");
        const auto t0 = Clock::now();
        while (api_answers_.load() == before) {
            if (seconds_since(t0) > 10) fail("no answer to " + subject);
            sleep_ms(1);
        }
        std::lock_guard lock(mutex_);
        return api_answer_;
    }

    // Publishes `count` events round robin over `channels` (event i: channel
    // i % C, number i / C + 1); rate 0: as fast as the window allows, else on a
    // fixed schedule from start_us (unix µs). Returns when all are written.
    void run(const std::vector<std::string>& channels, std::int64_t count, double rate,
             std::int64_t start_us, int window, int size) {
        std::string batch;
        const auto steady0 = Clock::now() + std::chrono::microseconds(
                                                std::max<std::int64_t>(0, start_us - unix_us()));
        const double period = rate > 0 ? 1e6 / rate : 0;
        auto due = [&](std::int64_t i) {
            return steady0 + std::chrono::microseconds(static_cast<std::int64_t>(i * period));
        };
        auto flush = [&] {
            if (!batch.empty()) send_all(batch);
            batch.clear();
        };
        const auto C = static_cast<std::int64_t>(channels.size());
        std::string payload;
        for (std::int64_t i = 0; i < count; ++i) {
            if (rate > 0) {
                const auto d = due(i);
                if (Clock::now() < d) {
                    flush();
                    std::this_thread::sleep_until(d);
                }
            }
            for (;;) {
                const auto a = answered_.load();
                if (sent_ - a < static_cast<std::uint64_t>(window)) break;
                flush();
                answered_.wait(a);
            }
            const std::int64_t t =
                rate > 0 ? start_us + static_cast<std::int64_t>(i * period) : unix_us();
            payload.clear();
            append_payload(payload, t, i / C + 1, size);
            const auto& ch = channels[static_cast<std::size_t>(i % C)];
            if (sys_ == "nchan") {
                batch += "POST /pub?id=" + ch + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                         std::to_string(payload.size()) + "\r\n\r\n";
            } else {
                batch +=
                    "PUB " + ch + " " + inbox_ + ".a " + std::to_string(payload.size()) + "\r\n";
            }
            batch += payload;
            if (sys_ == "nats") batch += "\r\n";
            ++sent_;
            if (batch.size() >= 16384 ||
                (rate > 0 && (i + 1 == count || Clock::now() < due(i + 1))))
                flush();
        }
        flush();
    }
    // Waits until every event written was answered (or the timeout).
    bool wait_answered(double timeout) {
        const auto t0 = Clock::now();
        while (answered_.load() < sent_) {
            if (seconds_since(t0) > timeout) return false;
            sleep_ms(1);
        }
        return true;
    }
    std::uint64_t sent() const { return sent_; }
    std::uint64_t answered() const { return answered_.load(); }
    std::uint64_t errors() const { return errors_.load(); }
    std::string first_error() {
        std::lock_guard lock(mutex_);
        return first_error_;
    }

  private:
    void send_all(const std::string& s) {
        std::lock_guard lock(write_mutex_);
        std::size_t off = 0;
        while (off < s.size()) {
            const auto n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0) fail(sys_ + " publisher send: " + std::strerror(errno));
            off += static_cast<std::size_t>(n);
        }
    }
    void error(const std::string& what) {
        errors_.fetch_add(1);
        std::lock_guard lock(mutex_);
        if (first_error_.empty()) first_error_ = what;
    }
    void answered(std::uint64_t n) {
        answered_.fetch_add(n);
        answered_.notify_all();
    }
    void read_loop() {
        std::string buf;
        char chunk[65536];
        for (;;) {
            const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n <= 0) return;
            buf.append(chunk, static_cast<std::size_t>(n));
            std::size_t used = sys_ == "nchan" ? parse_http(buf) : parse_nats(buf);
            buf.erase(0, used);
        }
    }
    std::size_t parse_http(std::string_view buf) {
        std::size_t pos = 0;
        std::uint64_t ok = 0;
        for (;;) {
            const auto head_end = buf.find("\r\n\r\n", pos);
            if (head_end == std::string_view::npos) break;
            const auto head = buf.substr(pos, head_end - pos);
            std::size_t length = 0;
            auto cl = head.find("Content-Length: ");
            if (cl == std::string_view::npos) cl = head.find("content-length: ");
            if (cl != std::string_view::npos)
                length = std::strtoul(std::string(head.substr(cl + 16, 12)).c_str(), nullptr, 10);
            if (head_end + 4 + length > buf.size()) break;
            const int status =
                head.size() > 12 ? std::atoi(std::string(head.substr(9, 3)).c_str()) : 0;
            if (status >= 200 && status < 300)
                ++ok;
            else
                error("HTTP " +
                      std::string(head.substr(0, std::min<std::size_t>(head.size(), 60))));
            if (status < 200 || status >= 300) answered(1);
            pos = head_end + 4 + length;
        }
        if (ok) answered(ok);
        return pos;
    }
    std::size_t parse_nats(std::string_view buf) {
        std::uint64_t ok = 0;
        const auto used = nats_parse(
            buf,
            [&](std::string_view subject, std::string_view, std::string_view payload, bool) {
                if (subject.ends_with(".api")) {
                    std::lock_guard lock(mutex_);
                    api_answer_ = std::string(payload);
                    api_answers_.fetch_add(1);
                    return;
                }
                if (payload.find("\"error\"") != std::string_view::npos) {
                    error(std::string(payload));
                    answered(1);
                } else {
                    ++ok;
                }
            },
            [&](std::string_view line) {
                if (line == "PING")
                    send_all("PONG\r\n");
                else if (line == "PONG")
                    ready_.store(true);
                else if (line.starts_with("-ERR"))
                    error(std::string(line));
            });
        if (ok) answered(ok);
        return used;
    }

    std::string sys_;
    int id_;
    int fd_ = -1;
    std::string inbox_;
    std::thread reader_;
    std::mutex write_mutex_, mutex_;
    std::uint64_t sent_ = 0;
    std::atomic<std::uint64_t> answered_{0}, errors_{0};
    std::atomic<int> api_answers_{0};
    std::atomic<bool> ready_{false};
    std::string api_answer_, first_error_;
};

// ---------------------------------------------------------------- system adapters

// Where a system's subscribers connect, and how they subscribe to a channel.
struct Adapter {
    const Options& o;
    std::string sys;

    int ws_port() const {
        return sys == "jobcast" ? o.jobcast_port : sys == "nchan" ? o.nchan_port : o.nats_ws_port;
    }
    // `channel`: a jobcast job id, an nchan channel id or a NATS subject.
    void add_live(Loop& loop, const std::string& channel, std::int64_t expect) const {
        if (sys == "jobcast")
            loop.add(sys, "/v1/ws", R"({"op":"subscribe","job":")" + channel + R"(","after":0})",
                     expect);
        else if (sys == "nchan")
            loop.add(sys, "/sub?id=" + channel, "", expect);
        else
            loop.add(sys, "/", kNatsConnect + "SUB " + channel + " 1\r\nPING\r\n", expect);
    }
};

std::string nats_stream_config(const std::string& name, const std::string& subjects) {
    return R"({"name":")" + name + R"(","subjects":[")" + subjects +
           R"("],"storage":"file","retention":"limits","discard":"old","max_msgs":-1,"max_bytes":-1,"num_replicas":1})";
}

// For NATS: a fresh file stream per scenario (deleted at scope exit).
struct NatsStream {
    Publisher* api = nullptr;
    std::string name;
    NatsStream(Publisher* p, const std::string& n, const std::string& subjects) : api(p), name(n) {
        if (!api) return;
        const auto r =
            api->request("$JS.API.STREAM.CREATE." + name, nats_stream_config(name, subjects));
        if (r.find("\"error\"") != std::string::npos) fail("stream create: " + r);
    }
    ~NatsStream() {
        if (api) api->request("$JS.API.STREAM.DELETE." + name, "");
    }
};

// Peer publishers (`n` connections), channels split round robin between them.
struct PeerPublish {
    std::vector<std::unique_ptr<Publisher>> pubs;
    std::vector<std::thread> threads;
    std::int64_t total = 0;

    PeerPublish(const Options& o, const std::string& sys, int n) {
        const int port = sys == "nchan" ? o.nchan_port : o.nats_port;
        for (int i = 0; i < n; ++i)
            pubs.push_back(std::make_unique<Publisher>(sys, port, i));
    }
    // Channels split over the publishers; `count_per_channel` events each.
    void start(const std::vector<std::string>& channels, std::int64_t count_per_channel,
               double rate, std::int64_t start_us, int window, int size) {
        const auto n = pubs.size();
        for (std::size_t p = 0; p < n; ++p) {
            std::vector<std::string> mine;
            for (std::size_t c = p; c < channels.size(); c += n)
                mine.push_back(channels[c]);
            if (mine.empty()) continue;
            const auto count = count_per_channel * static_cast<std::int64_t>(mine.size());
            total += count;
            threads.emplace_back([this, p, mine, count, rate, start_us, window, size] {
                try {
                    pubs[p]->run(mine, count, rate, start_us, window, size);
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "publisher: %s\n", e.what());
                }
            });
        }
    }
    void join() {
        for (auto& t : threads)
            t.join();
        threads.clear();
    }
    bool wait_answered(double timeout) {
        join();
        bool ok = true;
        for (auto& p : pubs)
            ok = p->wait_answered(timeout) && ok;
        return ok;
    }
    std::uint64_t answered() const {
        std::uint64_t a = 0;
        for (auto& p : pubs)
            a += p->answered();
        return a;
    }
    std::uint64_t errors() const {
        std::uint64_t e = 0;
        for (auto& p : pubs)
            e += p->errors();
        return e;
    }
    std::string first_error() {
        for (auto& p : pubs)
            if (auto e = p->first_error(); !e.empty()) return e;
        return {};
    }
};

void report_checks(const std::string& prefix, const std::string& sys, const Loop::Totals& t,
                   Shared& shared) {
    g_results.set(prefix + " gaps+missing / dups", sys, static_cast<double>(t.gaps + t.missing));
    auto* c = &g_results.cells[prefix + " gaps+missing / dups"][sys];
    c->text += " / " + std::to_string(t.dups);
    std::printf("    (%s dups %lld)\n", sys.c_str(), static_cast<long long>(t.dups));
    if (shared.errors.load())
        g_results.note(sys + " " + prefix + ": " + std::to_string(shared.errors.load()) +
                       " errors, first: " + shared.first_error.substr(0, 200));
}

// ---------------------------------------------------------------- scenarios

void scenario_ingest(const Options& o, Server& server, const std::string& sys) {
    std::printf("[%s] 1 ingest: %ld events of %d bytes, %d publishers\n", sys.c_str(),
                o.ingest_events, o.size, o.publishers);
    std::fflush(stdout);
    double seconds = 0;
    std::int64_t events = o.ingest_events;
    const double cpu0 = tree_cpu_seconds(server.pid);
    if (sys == "jobcast") {
        Jobcast jc{o, server};
        jc.start_workers("jobcast-bench-worker", o.publishers, 4);
        const int jobs = o.publishers * 4;
        const long per_job = o.ingest_events / jobs;
        events = per_job * jobs;
        const auto t0 = Clock::now();
        std::vector<std::string> ids;
        for (int j = 0; j < jobs; ++j)
            ids.push_back(jc.api.submit("bench.emit", R"({"count":)" + std::to_string(per_job) +
                                                          R"(,"size":)" +
                                                          std::to_string(jc.text_size()) + "}"));
        jc.wait_succeeded(ids, o.timeout);
        seconds = seconds_since(t0);
        jc.stop_workers();
    } else {
        PeerPublish pp(o, sys, o.publishers);
        std::unique_ptr<NatsStream> stream;
        if (sys == "nats") stream = std::make_unique<NatsStream>(pp.pubs[0].get(), "S1", "s1.>");
        std::vector<std::string> channels;
        for (int p = 0; p < o.publishers; ++p)
            channels.push_back(sys == "nats" ? "s1.i" + std::to_string(p)
                                             : "i" + std::to_string(p));
        const auto per = o.ingest_events / o.publishers;
        events = per * o.publishers;
        const auto t0 = Clock::now();
        pp.start(channels, per, 0, 0, o.window, o.size);
        if (!pp.wait_answered(o.timeout))
            g_results.note(sys + " ingest: answers missing at timeout");
        seconds = seconds_since(t0);
        if (pp.errors())
            g_results.note(sys + " ingest: " + std::to_string(pp.errors()) +
                           " errors, first: " + pp.first_error().substr(0, 200));
        events = static_cast<std::int64_t>(pp.answered() - pp.errors());
    }
    const double cpu = tree_cpu_seconds(server.pid) - cpu0;
    g_results.set("1 ingest, events/s stored", sys, static_cast<double>(events) / seconds);
    g_results.set("1 ingest, server CPU s per 1M events", sys,
                  cpu / static_cast<double>(events) * 1e6, 2);
}

// J channels x K subscribers each, E events per channel at max rate.
void scenario_fanout(const Options& o, Server& server, const std::string& sys, int J, int K,
                     std::int64_t E, const std::string& label) {
    std::printf("[%s] 2 fan-out %s: %d channels x %d subscribers, %lld events each\n", sys.c_str(),
                label.c_str(), J, K, static_cast<long long>(E));
    std::fflush(stdout);
    Adapter ad{o, sys};
    Shared shared;
    shared.latency_from_us = std::numeric_limits<std::int64_t>::max();
    Loop loop(shared, ad.ws_port(), o.connect_parallel);
    std::vector<std::string> channels;
    std::unique_ptr<PeerPublish> pp;
    std::unique_ptr<NatsStream> stream;
    Jobcast jc{o, server};
    if (sys == "jobcast") {
        jc.ensure_stream_workers();
        // Every job sleeps until start_us, then emits E events as fast as it can.
        const auto start_us = unix_us() + 4'000'000 + J * 2'000;
        for (int j = 0; j < J; ++j)
            channels.push_back(jc.api.submit(
                "bench.stream", R"({"count":)" + std::to_string(E) + R"(,"rate":0,"size":)" +
                                    std::to_string(jc.text_size()) + R"(,"start_us":)" +
                                    std::to_string(start_us) + "}"));
    } else {
        pp = std::make_unique<PeerPublish>(o, sys, J > 1 ? o.publishers : 1);
        if (sys == "nats")
            stream =
                std::make_unique<NatsStream>(pp->pubs[0].get(), "S2" + label, "s2" + label + ".>");
        for (int j = 0; j < J; ++j)
            channels.push_back(sys == "nats" ? "s2" + label + ".c" + std::to_string(j)
                                             : "f" + label + std::to_string(j));
    }
    for (int j = 0; j < J; ++j)
        for (int k = 0; k < K; ++k)
            ad.add_live(loop, channels[static_cast<std::size_t>(j)], E);
    loop.start();
    if (!loop.wait_ready(o.timeout))
        g_results.note(sys + " fan-out " + label +
                       ": not all subscribers ready: " + shared.first_error);
    if (pp) pp->start(channels, E, 0, 0, o.window, o.size);
    const auto expect = static_cast<std::uint64_t>(J) * K * static_cast<std::uint64_t>(E);
    loop.wait_delivered(expect, 5, o.timeout);
    if (pp) pp->wait_answered(10);
    const auto first = shared.first_ns.load(), last = shared.last_ns.load();
    const auto t = loop.totals(E);
    const double secs = static_cast<double>(last - first) / 1e9;
    g_results.set("2 fan-out " + label + ", delivered events/s", sys,
                  secs > 0 ? static_cast<double>(t.got) / secs : 0);
    report_checks("2 fan-out " + label, sys, t, shared);
    if (pp && pp->errors())
        g_results.note(sys + " fan-out " + label + " publish errors: " +
                       std::to_string(pp->errors()) + " " + pp->first_error().substr(0, 200));
}

// `threads` threads spinning in a busy loop from construction to destruction:
// other work competing for the cores, at the default priority.
class CpuHog {
  public:
    explicit CpuHog(int threads) {
        for (int i = 0; i < threads; ++i)
            threads_.emplace_back([this] {
                while (!stop_.load(std::memory_order_relaxed)) {
                }
            });
    }
    ~CpuHog() {
        stop_ = true;
        for (auto& t : threads_)
            t.join();
    }
    CpuHog(const CpuHog&) = delete;
    CpuHog& operator=(const CpuHog&) = delete;

  private:
    std::atomic<bool> stop_{false};
    std::vector<std::thread> threads_;
};

// One latency row: `rate` events/s to --latency-subs subscribers, with `hogs`
// busy-loop threads running from before the subscribers connect to the end.
void scenario_latency(const Options& o, Server& server, const std::string& sys, int rate,
                      int hogs) {
    const int subs = o.latency_subs;
    const auto count = static_cast<std::int64_t>(rate * o.latency_seconds);
    std::printf("[%s] 3 latency: %d events/s x %.0f s -> %d subscribers%s\n", sys.c_str(), rate,
                o.latency_seconds, subs,
                hogs ? (", " + std::to_string(hogs) + " CPU hog").c_str() : "");
    std::fflush(stdout);
    const CpuHog hog(hogs);
    Adapter ad{o, sys};
    Shared shared;
    Loop loop(shared, ad.ws_port(), o.connect_parallel);
    std::string channel;
    std::unique_ptr<PeerPublish> pp;
    std::unique_ptr<NatsStream> stream;
    Jobcast jc{o, server};
    std::int64_t start_us = 0;
    if (sys == "jobcast") {
        jc.ensure_stream_workers();
        start_us = unix_us() + 3'000'000;
        channel =
            jc.api.submit("bench.stream", R"({"count":)" + std::to_string(count) + R"(,"rate":)" +
                                              std::to_string(rate) + R"(,"size":)" +
                                              std::to_string(jc.text_size()) + R"(,"start_us":)" +
                                              std::to_string(start_us) + "}");
    } else {
        pp = std::make_unique<PeerPublish>(o, sys, 1);
        const auto name = "S3r" + std::to_string(rate);
        if (sys == "nats")
            stream = std::make_unique<NatsStream>(pp->pubs[0].get(), name,
                                                  "s3r" + std::to_string(rate) + ".>");
        channel = sys == "nats" ? "s3r" + std::to_string(rate) + ".c" : "l" + std::to_string(rate);
    }
    for (int k = 0; k < subs; ++k)
        ad.add_live(loop, channel, count);
    loop.start();
    if (!loop.wait_ready(o.timeout))
        g_results.note(sys + " latency: not all subscribers ready: " + shared.first_error);
    if (pp) {
        start_us = unix_us() + 200'000;
        shared.latency_from_us = start_us + static_cast<std::int64_t>(o.warmup_seconds * 1e6);
        pp->start({channel}, count, rate, start_us, o.window, o.size);
    } else {
        shared.latency_from_us = start_us + static_cast<std::int64_t>(o.warmup_seconds * 1e6);
        if (unix_us() > start_us)
            g_results.note("jobcast latency: subscribers were late for the start");
    }
    const double cpu0 = tree_cpu_seconds(server.pid);
    loop.wait_delivered(static_cast<std::uint64_t>(count) * subs, 5, o.latency_seconds + o.timeout);
    if (pp) pp->wait_answered(10);
    const double cpu = tree_cpu_seconds(server.pid) - cpu0;
    const auto t = loop.totals(count);
    const auto r = std::to_string(rate / 1000) + "k/s";
    const auto row = "3 latency " + r + " x" + std::to_string(subs) +
                     (hogs ? ", " + std::to_string(hogs) + " CPU hog" : "");
    // The server's CPU per delivered event: what the wall-clock figures of a
    // shared machine cannot show.
    g_results.set(row + ", server CPU us/delivery", sys,
                  cpu * 1e6 / static_cast<double>(std::max<std::int64_t>(1, t.got)), 2);
    g_results.set(row + ", p50 ms", sys, loop.hist.quantile_ms(0.5), 2);
    g_results.set(row + ", p99 ms", sys, loop.hist.quantile_ms(0.99), 2);
    g_results.set(row + ", p99.9 ms", sys, loop.hist.quantile_ms(0.999), 2);
    g_results.set(row + ", max ms", sys, loop.hist.max_ms(), 1);
    report_checks("3 latency " + r + (hogs ? " (hog)" : ""), sys, t, shared);
}

void scenario_resume(const Options& o, Server& server, const std::string& sys) {
    const auto E = o.resume_events;
    std::printf("[%s] 4 resume: %ld events missed, then read from the start\n", sys.c_str(), E);
    std::fflush(stdout);
    Adapter ad{o, sys};
    Shared shared;
    shared.latency_from_us = std::numeric_limits<std::int64_t>::max();
    Loop loop(shared, ad.ws_port(), 1);
    std::unique_ptr<PeerPublish> pp;
    std::unique_ptr<NatsStream> stream;
    if (sys == "jobcast") {
        Jobcast jc{o, server};
        jc.ensure_stream_workers();
        const auto id = jc.api.submit("bench.stream", R"({"burst":)" + std::to_string(E) +
                                                          R"(,"count":0,"size":)" +
                                                          std::to_string(jc.text_size()) + "}");
        jc.wait_succeeded({id}, o.timeout);
        ad.add_live(loop, id, E);
    } else {
        pp = std::make_unique<PeerPublish>(o, sys, 1);
        if (sys == "nats") stream = std::make_unique<NatsStream>(pp->pubs[0].get(), "S4", "s4.>");
        pp->start({sys == "nats" ? "s4.r" : "r"}, E, o.resume_rate, unix_us(), o.window, o.size);
        pp->wait_answered(o.timeout);
        if (sys == "nchan") {
            loop.add(sys, "/resume?id=r", "", E);
        } else {
            const std::string cfg =
                R"({"stream_name":"S4","config":{"deliver_subject":"_d.r","deliver_policy":"by_start_sequence","opt_start_seq":1,"ack_policy":"none","replay_policy":"instant","flow_control":true,"idle_heartbeat":5000000000}})";
            loop.add(
                sys, "/",
                kNatsConnect +
                    "SUB _d.r 1\r\nSUB _INBOX.c.> 2\r\nPUB $JS.API.CONSUMER.CREATE.S4 _INBOX.c.1 " +
                    std::to_string(cfg.size()) + "\r\n" + cfg + "\r\nPING\r\n",
                E);
        }
    }
    const auto t0 = Clock::now();
    loop.start();
    loop.wait_delivered(static_cast<std::uint64_t>(E), 20, o.timeout);
    auto& s = *loop.subs[0];
    const auto t = loop.totals(E);
    if (!s.done_ns)
        g_results.note(sys + " resume: " + std::to_string(s.got) + " of " + std::to_string(E) +
                       " events after " + std::to_string(seconds_since(t0)) + " s, last n " +
                       std::to_string(s.next_n - 1));
    g_results.set("4 resume " + std::to_string(E / 1000) + "k missed, ms to catch up", sys,
                  s.done_ns ? static_cast<double>(s.done_ns - s.start_ns) / 1e6 : -1, 1);
    report_checks("4 resume", sys, t, shared);
}

void scenario_idle(const Options& o, Server& server, const std::string& sys) {
    const int N = o.idle_conns;
    std::printf("[%s] 5 idle: %d subscribers of a quiet channel\n", sys.c_str(), N);
    std::fflush(stdout);
    Adapter ad{o, sys};
    Shared shared;
    Loop loop(shared, ad.ws_port(), o.connect_parallel);
    std::string channel = sys == "nats" ? "s5.idle" : "idle";
    Jobcast jc{o, server};
    if (sys == "jobcast") {
        jc.ensure_stream_workers();
        channel =
            jc.api.submit("bench.stream", R"({"count":1,"rate":1,"start_us":)" +
                                              std::to_string(unix_us() + 3'600'000'000LL) + "}");
    }
    // The baseline once the server stopped moving (it may still be releasing
    // what the earlier scenarios used).
    const auto pss0 = settled_pss_kib(server.pid, 15);
    for (int i = 0; i < N; ++i)
        ad.add_live(loop, channel, 0);
    const auto t0 = Clock::now();
    loop.start();
    const bool ok = loop.wait_ready(o.timeout * 2);
    const double connect_s = seconds_since(t0);
    if (!ok)
        g_results.note(sys + " idle: " + std::to_string(shared.ready.load()) + " of " +
                       std::to_string(N) + " ready: " + shared.first_error);
    const auto pss1 = settled_pss_kib(server.pid, 15);
    const double cpu0 = tree_cpu_seconds(server.pid);
    const auto c0 = Clock::now();
    sleep_ms(static_cast<int>(o.idle_seconds * 1000));
    const double cpu = tree_cpu_seconds(server.pid) - cpu0;
    const double secs = seconds_since(c0);
    const int ready = shared.ready.load();
    // Only a growth between two settled samples is a figure: anything else
    // (a baseline that would not settle, memory released meanwhile) is
    // reported as not measured, with the samples.
    const auto mem_row = "5 idle " + std::to_string(N / 1000) + "k subs, KiB per connection (PSS)";
    const long grown = pss1.median - pss0.median;
    if (ready > 0 && pss0.settled && pss1.settled && grown > 0) {
        g_results.set(mem_row, sys, static_cast<double>(grown) / ready, 1);
    } else {
        g_results.unmeasured(mem_row, sys,
                             "PSS " + std::to_string(pss0.median) + " KiB before (" +
                                 (pss0.settled ? "settled" : "still moving") + "), " +
                                 std::to_string(pss1.median) + " KiB with " +
                                 std::to_string(ready) + " connections (" +
                                 (pss1.settled ? "settled" : "still moving") + ")");
    }
    g_results.set("5 idle, server CPU % of a core", sys, cpu / secs * 100, 2);
    g_results.set("5 idle, seconds to connect all", sys, connect_s, 1);
    loop.stop();
    if (sys == "jobcast") jc.api.cancel(channel);
}

// ------------------------------------------------ 6: polling vs push (jobcast)

// A REST client that polls one job's events every `interval`.
class Poller : public std::enable_shared_from_this<Poller> {
  public:
    Poller(net::io_context& ioc, tcp::endpoint ep, std::string job, std::chrono::microseconds every,
           Histogram& hist, std::atomic<std::uint64_t>& requests, Shared& shared)
        : ioc_(ioc),
          ep_(ep),
          job_(std::move(job)),
          every_(every),
          hist_(hist),
          requests_(requests),
          shared_(shared),
          socket_(ioc),
          timer_(ioc) {}
    void start(std::chrono::microseconds offset) {
        socket_.async_connect(ep_, [self = shared_from_this(), offset](beast::error_code ec) {
            if (ec) return self->shared_.error("poll connect: " + ec.message());
            self->socket_.set_option(tcp::no_delay(true));
            self->next_ = Clock::now() + offset;
            self->shared_.ready.fetch_add(1);
            self->wait();
        });
    }
    void stop() {
        stopped_ = true;
        beast::error_code ignored;
        socket_.close(ignored);
        timer_.cancel();
    }

  private:
    void wait() {
        if (stopped_) return;
        timer_.expires_at(next_);
        timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (ec || self->stopped_) return;
            self->next_ += self->every_;
            self->get();
        });
    }
    void get() {
        req_ = {http::verb::get, "/v1/jobs/" + job_ + "/events?after=" + std::to_string(after_),
                11};
        req_.set(http::field::host, "127.0.0.1");
        http::async_write(
            socket_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
                if (ec) return self->fail_once("poll write: " + ec.message());
                self->res_ = {};
                http::async_read(self->socket_, self->buffer_, self->res_,
                                 [self](beast::error_code ec, std::size_t) {
                                     if (ec) return self->fail_once("poll read: " + ec.message());
                                     self->on_body();
                                     self->wait();
                                 });
            });
    }
    void fail_once(const std::string& what) {
        if (!stopped_) shared_.error(what);
    }
    void on_body() {
        requests_.fetch_add(1, std::memory_order_relaxed);
        const auto now_us = unix_us();
        const std::string& b = res_.body();
        const char* p = b.data();
        const char* const end = p + b.size();
        std::uint64_t n = 0;
        for (;;) {
            p = static_cast<const char*>(
                ::memmem(p, static_cast<std::size_t>(end - p), "\"seq\":", 6));
            if (!p) break;
            p += 6;
            const auto seq = static_cast<std::uint64_t>(parse_int(p, end));
            if (seq <= after_) continue;
            after_ = seq;
            if (!eat(p, end, R"(,"kind":"token")")) continue;
            const char* d = static_cast<const char*>(
                ::memmem(p, static_cast<std::size_t>(end - p), "\"data\":{\"t\":", 12));
            if (!d) continue;
            d += 12;
            hist_.record(now_us - parse_int(d, end));
            ++n;
        }
        if (n) shared_.delivered.fetch_add(n, std::memory_order_relaxed);
    }

    net::io_context& ioc_;
    tcp::endpoint ep_;
    std::string job_;
    std::chrono::microseconds every_;
    Histogram& hist_;
    std::atomic<std::uint64_t>& requests_;
    Shared& shared_;
    tcp::socket socket_;
    net::steady_timer timer_;
    beast::flat_buffer buffer_;
    http::request<http::empty_body> req_;
    http::response<http::string_body> res_;
    Clock::time_point next_;
    std::uint64_t after_ = 0;
    bool stopped_ = false;
};

void scenario_poll(const Options& o, Server& server) {
    Jobcast jc{o, server};
    jc.ensure_stream_workers();
    double baseline = 0;  // broker CPU s/min with the jobs running and no client
    for (const std::string mode : {"none", "push", "poll-1s", "poll-100ms"}) {
        std::printf("[jobcast] 6 %s: %d clients following %d jobs at %d events/s each\n",
                    mode.c_str(), o.poll_clients, o.poll_jobs, o.poll_rate);
        std::fflush(stdout);
        const double lead = 3, tail = 1;
        const auto start_us = unix_us() + static_cast<std::int64_t>(lead * 1e6);
        const auto count = static_cast<std::int64_t>(o.poll_rate * (o.poll_seconds + lead + tail));
        std::vector<std::string> jobs;
        // Every job on one schedule (all emit at once, once a period), or,
        // with --poll-spread, each offset by its share of the period.
        const std::int64_t period_us = 1'000'000 / std::max(1, o.poll_rate);
        for (int j = 0; j < o.poll_jobs; ++j) {
            const std::int64_t offset = o.poll_spread ? period_us * j / o.poll_jobs : 0;
            jobs.push_back(jc.api.submit("bench.stream",
                                         R"({"count":)" + std::to_string(count) + R"(,"rate":)" +
                                             std::to_string(o.poll_rate) + R"(,"size":)" +
                                             std::to_string(jc.text_size()) + R"(,"start_us":)" +
                                             std::to_string(start_us + offset) + "}"));
        }
        Shared shared;
        shared.latency_from_us = start_us + 1'000'000;
        Histogram poll_hist;
        std::atomic<std::uint64_t> requests{0};
        std::unique_ptr<Loop> loop;
        net::io_context ioc{1};
        std::vector<std::shared_ptr<Poller>> pollers;
        std::thread poll_thread;
        if (mode == "none") {
        } else if (mode == "push") {
            loop = std::make_unique<Loop>(shared, o.jobcast_port, o.connect_parallel);
            Adapter ad{o, "jobcast"};
            for (int c = 0; c < o.poll_clients; ++c)
                ad.add_live(*loop, jobs[static_cast<std::size_t>(c % o.poll_jobs)], 0);
            loop->start();
            loop->wait_ready(o.timeout);
        } else {
            const auto every = std::chrono::microseconds(mode == "poll-1s" ? 1'000'000 : 100'000);
            for (int c = 0; c < o.poll_clients; ++c) {
                auto p = std::make_shared<Poller>(
                    ioc,
                    tcp::endpoint(net::ip::make_address("127.0.0.1"),
                                  static_cast<unsigned short>(o.jobcast_port)),
                    jobs[static_cast<std::size_t>(c % o.poll_jobs)], every, poll_hist, requests,
                    shared);
                p->start(every * c / o.poll_clients);  // spread over the interval
                pollers.push_back(p);
            }
            poll_thread = std::thread([&ioc] {
                auto guard = net::make_work_guard(ioc);
                ioc.run();
            });
        }
        // Measure from 1 s after the start for poll_seconds.
        while (unix_us() < start_us + 1'000'000)
            sleep_ms(10);
        const double cpu0 = cpu_seconds(server.pid);
        const auto r0 = requests.load();
        const auto t0 = Clock::now();
        sleep_ms(static_cast<int>(o.poll_seconds * 1000));
        const double secs = seconds_since(t0);
        const double cpu = cpu_seconds(server.pid) - cpu0;
        const auto reqs = requests.load() - r0;
        const Histogram& h = mode == "push" ? loop->hist : poll_hist;
        if (loop) {
            loop->stop();
        } else if (poll_thread.joinable()) {
            net::post(ioc, [&] {
                for (auto& p : pollers)
                    p->stop();
                ioc.stop();
            });
            poll_thread.join();
        }
        for (const auto& id : jobs)
            jc.api.cancel(id);
        if (mode == "none") {
            baseline = cpu / secs * 60;
            g_results.set("6 follow: the jobs alone (no client), CPU s/min", "jobcast", baseline,
                          2);
            continue;
        }
        const std::string col = mode == "push" ? "jobcast" : mode;
        g_results.set("6 follow 100 jobs x1000 clients, server CPU s/min", col, cpu / secs * 60, 2);
        g_results.set("6 follow, CPU s/min for the clients (- no-client)", col,
                      cpu / secs * 60 - baseline, 2);
        g_results.set("6 follow, median staleness ms", col, h.quantile_ms(0.5), 1);
        g_results.set("6 follow, requests/s", col, static_cast<double>(reqs) / secs);
        if (shared.errors.load())
            g_results.note(mode + ": " + std::to_string(shared.errors.load()) +
                           " errors, first: " + shared.first_error);
    }
}

// ---------------------------------------------------------------- limits

void scenario_limits(const Options& o) {
    std::printf("[machine] raw limits (jobcast-bench-limits)\n");
    std::fflush(stdout);
    const std::string out = o.dir + "/jobcast-bench-limits.out";
    const pid_t pid = spawn(
        {o.bin_dir + "/jobcast-bench-limits", "--size", std::to_string(o.size), "--dir", o.dir},
        out);
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::ifstream in(out);
    for (std::string line; std::getline(in, line);) {
        // "limit <name> <value> <unit>"
        std::istringstream ls(line);
        std::string tag, name, unit;
        double v = 0;
        if (!(ls >> tag >> name >> v >> unit) || tag != "limit") continue;
        g_results.set("L " + name + ", " + unit, "machine", v);
    }
    std::error_code ec;
    fs::remove(out, ec);
}

// ---------------------------------------------------------------- table

void print_table(const Options& o) {
    std::vector<std::string> cols;
    for (const auto& s : o.systems)
        cols.push_back(s);
    for (const std::string c : {"poll-1s", "poll-100ms", "machine"})
        for (const auto& [row, m] : g_results.cells)
            if (m.count(c) && std::find(cols.begin(), cols.end(), c) == cols.end())
                cols.push_back(c);
    g_results.print_table(cols);
}

// jobcast's figures against the best peer and the raw limits.
void print_ratios() {
    std::printf("\nratios (same run):\n");
    auto ratio = [](const std::string& what, const Results::Cell* a, const Results::Cell* b,
                    const std::string& target) {
        if (!a || !b || b->value == 0 || !std::isfinite(a->value) || !std::isfinite(b->value))
            return;
        std::printf("  %-58s %8.2f  (target %s)\n", what.c_str(), a->value / b->value,
                    target.c_str());
        g_results.notes.push_back("ratio " + what + " = " + std::to_string(a->value / b->value));
    };
    const std::string ing = "1 ingest, events/s stored";
    ratio("ingest jobcast / NATS JetStream", g_results.get(ing, "jobcast"),
          g_results.get(ing, "nats"), ">= 2");
    ratio("ingest jobcast / nchan", g_results.get(ing, "jobcast"), g_results.get(ing, "nchan"),
          ">= 5");
    for (const auto& row : g_results.rows) {
        if (row.rfind("2 fan-out", 0) == 0 && row.find("events/s") != std::string::npos) {
            const auto* a = g_results.get(row, "nats");
            const auto* b = g_results.get(row, "nchan");
            const auto* best = (a && (!b || a->value > b->value)) ? a : b;
            ratio(row + ": jobcast / best peer", g_results.get(row, "jobcast"), best, ">= 2");
        }
        if (row.rfind("3 latency 10k", 0) == 0 && row.find("p99 ms") != std::string::npos) {
            const auto* a = g_results.get(row, "nats");
            const auto* b = g_results.get(row, "nchan");
            const auto* best = (a && (!b || a->value < b->value)) ? a : b;
            const bool hog = row.find("CPU hog") != std::string::npos;
            ratio(std::string("p99 at 10k/s") + (hog ? " with CPU hog" : "") +
                      ": jobcast / best peer",
                  g_results.get(row, "jobcast"), best, "<= 0.5");
        }
    }
    const std::string cpu = "6 follow 100 jobs x1000 clients, server CPU s/min";
    ratio("push CPU / 1 Hz polling CPU", g_results.get(cpu, "jobcast"),
          g_results.get(cpu, "poll-1s"), "<= 0.25");
    const std::string extra = "6 follow, CPU s/min for the clients (- no-client)";
    ratio("same, without the jobs' own CPU", g_results.get(extra, "jobcast"),
          g_results.get(extra, "poll-1s"), "<= 0.25");
    auto lim = [&](const std::string& name) -> const Results::Cell* {
        for (const auto& row : g_results.rows)
            if (row.rfind("L " + name + ",", 0) == 0) return g_results.get(row, "machine");
        return nullptr;
    };
    ratio("ingest jobcast / SQLite append loop", g_results.get(ing, "jobcast"),
          lim("sqlite-append"), "(fraction)");
    ratio("ingest jobcast / ZeroMQ DEALER->ROUTER", g_results.get(ing, "jobcast"),
          lim("zmq-dealer-router"), "(fraction)");
    ratio("fan-out 1x1000 jobcast / one Beast WS writer (frames/s)",
          g_results.get("2 fan-out 1x1000, delivered events/s", "jobcast"), lim("beast-ws-frames"),
          "(fraction)");
    ratio("fan-out 1x1000 jobcast / loopback TCP 100-byte sends",
          g_results.get("2 fan-out 1x1000, delivered events/s", "jobcast"), lim("tcp-small-sends"),
          "(fraction)");
    std::fflush(stdout);
}

void write_json(const Options& o, const std::string& uptime_before,
                const std::string& uptime_after) {
    if (o.json.empty()) return;
    std::ofstream out(o.json);
    out << "{\"load_before\":\"" << uptime_before << "\",\"load_after\":\"" << uptime_after
        << "\",\"cores\":" << std::thread::hardware_concurrency() << ",\"size\":" << o.size << ",";
    g_results.write_json(out);
    out << "}\n";
}

void run_system(const Options& o, const std::string& sys) {
    g_results.set("load average (1 min) before", sys, load1(), 2);
    std::optional<Server> server(std::in_place, o, sys);
    auto want = [&](const char* s) { return o.scenarios.count(s) > 0; };
    auto guarded = [&](const char* what, auto&& fn) {
        try {
            fn();
        } catch (const std::exception& e) {
            g_results.note(sys + " " + what + " failed: " + e.what());
        }
        server->check();
    };
    if (want("ingest")) guarded("ingest", [&] { scenario_ingest(o, *server, sys); });
    if (want("fanout")) {
        guarded("fanout 1x1000", [&] {
            scenario_fanout(o, *server, sys, 1, o.fanout_subs, o.fanout_events,
                            "1x" + std::to_string(o.fanout_subs));
        });
        guarded("fanout 1000x1", [&] {
            scenario_fanout(o, *server, sys, o.fanout_jobs, 1, o.fanout_job_events,
                            std::to_string(o.fanout_jobs) + "x1");
        });
    }
    if (want("latency"))
        for (int rate : o.latency_rates) {
            guarded("latency", [&] { scenario_latency(o, *server, sys, rate, 0); });
            if (o.cpu_hog > 0)
                guarded("latency with CPU hog",
                        [&] { scenario_latency(o, *server, sys, rate, o.cpu_hog); });
        }
    if (want("resume")) guarded("resume", [&] { scenario_resume(o, *server, sys); });
    if (want("idle")) {
        // On a fresh server: what the scenarios before left in its allocator
        // would take the connections in without its PSS growing (a figure
        // near 0 KiB per connection).
        if (want("ingest") || want("fanout") || want("latency") || want("resume")) {
            server.reset();
            server.emplace(o, sys);
        }
        guarded("idle", [&] { scenario_idle(o, *server, sys); });
    }
    if (want("poll") && sys == "jobcast") guarded("poll", [&] { scenario_poll(o, *server); });
    g_results.set("load average (1 min) after", sys, load1(), 2);
}

}  // namespace

int main(int argc, char** argv) {
    const auto o = parse_options(argc, argv);
    ::signal(SIGPIPE, SIG_IGN);
    kill_children_on_signal("jobcast-bench");
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
    const auto load_before = load_average();
    std::printf("jobcast-bench: %u cores, load average %s, fd limit %lu, payload %d bytes\n",
                std::thread::hardware_concurrency(), load_before.c_str(),
                static_cast<unsigned long>(nofile.rlim_cur), o.size);
    std::fflush(stdout);
    int rc = 0;
    try {
        for (const auto& sys : o.systems)
            run_system(o, sys);
        if (o.scenarios.count("limits")) scenario_limits(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jobcast-bench: %s\n", e.what());
        rc = 1;
    }
    const auto load_after = load_average();
    print_table(o);
    print_ratios();
    std::printf("load average before %s, after %s\n", load_before.c_str(), load_after.c_str());
    write_json(o, load_before, load_after);
    kill_all_children();
    return rc;
}
