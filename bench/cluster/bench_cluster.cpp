// jobcast-bench-cluster: one node (SQLite) and a cluster (3 brokers on a Redis
// Cluster of 3 primaries with one replica each, the strict layout that
// scripts/redis_cluster.py starts) side by side, in one run on this machine,
// with one load generator (this program; the WebSocket subscribers of
// bench/common/ws_subscriber.hpp, as bench/compare uses them).
//
// For each mode it starts the set-up on loopback (fresh database or fresh Redis
// nodes), runs the scenarios, stops it, then prints one table (and --json PATH)
// with the load average before and after each mode.
//
//   ingest        --ingest-workers jobcast-bench-worker processes (capacity
//                 --ingest-capacity; in the cluster each lists every broker from
//                 its own), one bench.emit job per slot, --ingest-events token
//                 events of --size bytes in all, jobs submitted on the brokers in
//                 turn: events/s from the first POST to the last job's success;
//                 broker and Redis CPU per event; in the cluster, the primaries'
//                 used_memory before/after divided by the events (one copy: the
//                 replicas hold as much again). --perf-out records the brokers
//                 and Redis nodes of the --perf-mode set-up meanwhile (or
//                 during the resume with --perf-scenario resume).
//   dispatch      --dispatch-jobs empty jobs queued before any worker, then the
//                 workers: jobs/s from the first start to the last finish (the
//                 jobs' own started_at/finished_at), and memory per finished job;
//                 then --dispatch-probes jobs submitted at --dispatch-probe-rate
//                 to idle workers: started_at - created_at, p50/p99.
//   fanout        one bench.stream job (--fanout-events, as fast as it goes) to
//                 --fanout-subs WebSocket subscribers, in the cluster all on the
//                 brokers other than the one its worker is connected to.
//   latency       one bench.stream job at --latency-rate events/s for
//                 --latency-seconds to --latency-subs subscribers on the worker's
//                 broker (local) and as many on the others (remote): receive time
//                 - intended send time, commit included, p50/p99.
//   resume        a finished job of --resume-events events read from the start
//                 by one subscriber (in the cluster on another broker than the
//                 worker's): ms until it has all, --resume-repeat times.
//   primary-kill  (cluster) --kill-jobs bench.stream jobs at --kill-rate events/s,
//   broker-kill   each followed by a subscriber on every broker (one that loses
//                 its broker subscribes on the next, after its last seq); SIGKILL
//                 the Redis primary that holds the first job (its replica takes
//                 over after the node timeout; scripts/redis_cluster.py starts the
//                 old one again as a replica), or the broker the first job's
//                 worker is connected to (its workers move to the next broker of
//                 their list). Measured from the kill: for each subscriber, the
//                 first event it receives that was due after the kill; for each
//                 job whose worker (or whose shard) was hit, the first such event
//                 any of its subscribers on a surviving broker receives, i.e. the
//                 worker's next chunk that was committed (and so acknowledged).
//
// Every subscriber checks that seqs go 1, 2, 3, ... (gaps, duplicates).
//
//   jobcast-bench-cluster [--modes single,cluster] [--scenario all|ingest,dispatch,
//       fanout,latency,resume,primary-kill,broker-kill] [--bin-dir DIR]
//       [--redis-script scripts/redis_cluster.py] [--node-timeout-ms 2000] ...
//       (see kUsage)
#include <hiredis.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "bench/common/broker_process.hpp"
#include "bench/common/clock.hpp"
#include "bench/common/histogram.hpp"
#include "bench/common/http_client.hpp"
#include "bench/common/jobcast_api.hpp"
#include "bench/common/options.hpp"
#include "bench/common/process.hpp"
#include "bench/common/results.hpp"
#include "bench/common/scan.hpp"
#include "bench/common/ws_subscriber.hpp"

namespace {

using namespace jobcast::bench;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- options

struct Options : BrokerRunFlags {
    Options() : BrokerRunFlags("-g") {}
    std::vector<std::string> modes = {"single", "cluster"};
    std::set<std::string> scenarios = {"ingest", "dispatch",     "fanout",     "latency",
                                       "resume", "primary-kill", "broker-kill"};
    std::string redis_script = "scripts/redis_cluster.py";
    std::string perf_mode = "cluster";
    std::string perf_scenario = "ingest";
    int brokers = 3;
    int node_timeout_ms = 2000;
    int size = 64;
    int ingest_workers = 4;
    int ingest_capacity = 4;
    long ingest_events = 400'000;
    int dispatch_jobs = 2'000;
    int dispatch_probes = 200;
    double dispatch_probe_rate = 50;
    int stream_workers = 3;
    int fanout_subs = 500;
    long fanout_events = 10'000;
    int latency_rate = 1'000;
    int latency_subs = 50;
    double latency_seconds = 5;
    double warmup_seconds = 0.5;
    long resume_events = 100'000;
    int resume_repeat = 3;
    int kill_jobs = 6;
    int kill_rate = 200;
    double kill_wait = 12;
    double timeout = 120;
    int connect_parallel = 256;
};

constexpr const char* kUsage =
    "usage: jobcast-bench-cluster [--modes single,cluster] [--scenario all|ingest,dispatch,\n"
    "         fanout,latency,resume,primary-kill,broker-kill] [--bin-dir DIR] [--dir /tmp]\n"
    "         [--keep] [--json PATH] [--broker-arg ARG]... [--redis-script PATH]\n"
    "         [--brokers 3] [--node-timeout-ms 2000] [--size 64]\n"
    "         [--ingest-workers 4] [--ingest-capacity 4] [--ingest-events 400000]\n"
    "         [--dispatch-jobs 2000] [--dispatch-probes 200] [--dispatch-probe-rate 50]\n"
    "         [--stream-workers 3] [--fanout-subs 500] [--fanout-events 10000]\n"
    "         [--latency-rate 1000] [--latency-subs 50] [--latency-seconds 5]\n"
    "         [--warmup-seconds 0.5] [--resume-events 100000] [--resume-repeat 3]\n"
    "         [--kill-jobs 6] [--kill-rate 200] [--kill-wait 12] [--timeout 120]\n"
    "         [--connect-parallel 256] [--perf-out PATH [--perf-mode cluster|single]\n"
    "         [--perf-scenario ingest|resume] [--perf-args \"-g\"]]\n";

Options parse_options(int argc, char** argv) {
    Options o;
    Args args(argc, argv, "jobcast-bench-cluster", kUsage);
    auto integer = [&](auto& field) {
        field = static_cast<std::decay_t<decltype(field)>>(args.integer());
    };
    while (args.next()) {
        const std::string& arg = args.flag();
        if (o.take(args)) continue;
        if (arg == "--modes") {
            o.modes = split(args.value(), ',');
        } else if (arg == "--scenario") {
            const auto v = args.value();
            if (v != "all") {
                const auto list = split(v, ',');
                o.scenarios = std::set<std::string>(list.begin(), list.end());
            }
        } else if (arg == "--redis-script") {
            o.redis_script = args.value();
        } else if (arg == "--perf-mode") {
            o.perf_mode = args.value();
        } else if (arg == "--perf-scenario") {
            o.perf_scenario = args.value();
        } else if (arg == "--brokers") {
            integer(o.brokers);
        } else if (arg == "--node-timeout-ms") {
            integer(o.node_timeout_ms);
        } else if (arg == "--size") {
            integer(o.size);
        } else if (arg == "--ingest-workers") {
            integer(o.ingest_workers);
        } else if (arg == "--ingest-capacity") {
            integer(o.ingest_capacity);
        } else if (arg == "--ingest-events") {
            integer(o.ingest_events);
        } else if (arg == "--dispatch-jobs") {
            integer(o.dispatch_jobs);
        } else if (arg == "--dispatch-probes") {
            integer(o.dispatch_probes);
        } else if (arg == "--dispatch-probe-rate") {
            o.dispatch_probe_rate = args.number();
        } else if (arg == "--stream-workers") {
            integer(o.stream_workers);
        } else if (arg == "--fanout-subs") {
            integer(o.fanout_subs);
        } else if (arg == "--fanout-events") {
            integer(o.fanout_events);
        } else if (arg == "--latency-rate") {
            integer(o.latency_rate);
        } else if (arg == "--latency-subs") {
            integer(o.latency_subs);
        } else if (arg == "--latency-seconds") {
            o.latency_seconds = args.number();
        } else if (arg == "--warmup-seconds") {
            o.warmup_seconds = args.number();
        } else if (arg == "--resume-events") {
            integer(o.resume_events);
        } else if (arg == "--resume-repeat") {
            integer(o.resume_repeat);
        } else if (arg == "--kill-jobs") {
            integer(o.kill_jobs);
        } else if (arg == "--kill-rate") {
            integer(o.kill_rate);
        } else if (arg == "--kill-wait") {
            o.kill_wait = args.number();
        } else if (arg == "--timeout") {
            o.timeout = args.number();
        } else if (arg == "--connect-parallel") {
            integer(o.connect_parallel);
        } else {
            args.unknown();
        }
    }
    for (const auto& m : o.modes)
        if (m != "single" && m != "cluster") args.usage("unknown mode " + m);
    if (o.brokers < 2) args.usage("--brokers must be at least 2");
    if (o.ingest_workers < 1 || o.ingest_capacity < 1 || o.stream_workers < 1 || o.kill_jobs < 1 ||
        o.kill_rate < 1 || o.latency_subs < 1 || o.fanout_subs < 1 || o.resume_repeat < 1 ||
        o.size < 33)
        args.usage("counts must be at least 1 and --size at least 33");
    return o;
}

Results g_results;

// ---------------------------------------------------------------- Redis

using Reply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

// One command to the node on 127.0.0.1:PORT (its own connection).
Reply redis(int port, const std::vector<std::string>& args) {
    const timeval timeout{2, 0};
    std::unique_ptr<redisContext, decltype(&redisFree)> c(
        redisConnectWithTimeout("127.0.0.1", port, timeout), &redisFree);
    if (!c || c->err)
        fail("redis 127.0.0.1:" + std::to_string(port) + ": " + (c ? c->errstr : "no memory"));
    redisSetTimeout(c.get(), timeout);
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (!r) fail("redis 127.0.0.1:" + std::to_string(port) + ": " + c->errstr);
    return Reply(r, &freeReplyObject);
}

// A field of INFO SECTION ("" when missing).
std::string info_field(int port, const std::string& section, const std::string& field) {
    const auto r = redis(port, {"INFO", section});
    if (r->type != REDIS_REPLY_STRING) return {};
    const std::string text(r->str, r->len);
    const auto at = text.find("\r\n" + field + ":");
    if (at == std::string::npos) return {};
    const auto from = at + 3 + field.size();
    return text.substr(from, text.find("\r\n", from) - from);
}

bool is_primary(int port) {
    try {
        const auto r = redis(port, {"ROLE"});
        return r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
               std::string(r->element[0]->str, r->element[0]->len) == "master";
    } catch (const std::exception&) {
        return false;  // down
    }
}

// The node's first key that matches `pattern` ("" when none; SCAN: a node
// lists only its own keys).
std::string find_key(int port, const std::string& pattern) {
    std::string cursor = "0";
    do {
        const auto r = redis(port, {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) fail("SCAN: unexpected reply");
        cursor.assign(r->element[0]->str, r->element[0]->len);
        if (r->element[1]->elements > 0)
            return std::string(r->element[1]->element[0]->str, r->element[1]->element[0]->len);
    } while (cursor != "0");
    return {};
}

// ---------------------------------------------------------------- set-ups

bool ready(const BrokerProcess& b) {
    try {
        HttpClient http(b.http_host, b.http_port);
        return http.request("GET", "/readyz").status == 200;
    } catch (const std::exception&) {
        return false;
    }
}

// One broker on SQLite, or brokers on a Redis Cluster of their own; stopped,
// and its folder removed (unless --keep), at scope exit.
class Setup {
  public:
    Setup(const Options& o, std::string mode) : mode(std::move(mode)), o_(o) {
        dir = make_temp_dir(o.dir, "jobcast-bench-" + this->mode);
        std::vector<std::string> args = {"--max-connections-per-ip", "0", "--max-sockets-per-ip",
                                         "1000000"};
        int n = 1;
        if (cluster()) {
            start_redis();
            args.insert(args.end(), {"--store", store, "--retention", "1d"});
            n = o.brokers;
        }
        args.insert(args.end(), o.broker_args.begin(), o.broker_args.end());
        for (int b = 0; b < n; ++b) {
            const auto bdir = dir + "/broker-" + std::to_string(b + 1);
            fs::create_directories(bdir);
            brokers.push_back(start_broker(o.bin_dir, bdir, args));
        }
        const auto t0 = Clock::now();
        for (const auto& b : brokers)
            while (!ready(b)) {
                if (!alive(b.pid)) fail("a broker exited at start; see " + b.log_path);
                if (seconds_since(t0) > 60) fail("a broker was not ready within 60 s");
                sleep_ms(50);
            }
    }
    ~Setup() {
        stop_workers();
        for (const auto& b : brokers)
            if (alive(b.pid)) stop_process(b.pid, SIGTERM, std::chrono::milliseconds(15'000));
        if (redis_ > 0) stop_process(redis_, SIGTERM, std::chrono::milliseconds(15'000));
        std::error_code ec;
        if (!o_.keep) fs::remove_all(dir, ec);
    }
    Setup(const Setup&) = delete;
    Setup& operator=(const Setup&) = delete;

    bool cluster() const { return mode == "cluster"; }
    int size() const { return static_cast<int>(brokers.size()); }
    JobcastApi api(int b) const {
        return JobcastApi(brokers[static_cast<std::size_t>(b)].http_host,
                          brokers[static_cast<std::size_t>(b)].http_port);
    }
    int http_port(int b) const { return brokers[static_cast<std::size_t>(b)].http_port; }
    bool up(int b) const { return alive(brokers[static_cast<std::size_t>(b)].pid); }
    // A broker that is up, `from` first.
    int live_broker(int from = 0) const {
        for (int i = 0; i < size(); ++i)
            if (up((from + i) % size())) return (from + i) % size();
        fail("no broker is up");
    }

    // `n` workers of BIN_DIR/binary; worker i lists every broker from i % size()
    // on, its home: the broker it talks to until that one dies.
    void start_workers(const std::string& binary, int n, int capacity) {
        for (int i = 0; i < n; ++i) {
            const int home = i % size();
            std::string list;
            for (int k = 0; k < size(); ++k)
                list += (k ? "," : "") + brokers[static_cast<std::size_t>((home + k) % size())].zmq;
            const auto name = binary + "-" + std::to_string(i);
            homes_[name] = home;
            workers_.push_back(start_worker(o_.bin_dir + "/" + binary, list, name, capacity,
                                            dir + "/" + name + ".log"));
        }
        const auto t0 = Clock::now();
        for (;;) {
            double connected = 0;
            for (int b = 0; b < size(); ++b)
                if (up(b)) connected += api(b).metric("jobcast_workers");
            if (connected >= static_cast<double>(workers_.size())) break;
            if (seconds_since(t0) > 30) fail("workers did not connect within 30 s");
            sleep_ms(50);
        }
    }
    void stop_workers() {
        for (pid_t w : workers_)
            stop_process(w);
        workers_.clear();
    }
    bool has_workers() const { return !workers_.empty(); }
    // The broker a worker named in a job's JSON was started on.
    int home_of(const std::string& worker) const {
        auto it = homes_.find(worker);
        if (it == homes_.end()) fail("unknown worker " + worker);
        return it->second;
    }

    double broker_cpu() const {
        double s = 0;
        for (const auto& b : brokers)
            s += cpu_seconds(b.pid);
        return s;
    }
    double redis_cpu() const { return redis_ > 0 ? tree_cpu_seconds(redis_) : 0; }
    std::vector<pid_t> server_pids() const {
        std::vector<pid_t> out;
        for (const auto& b : brokers)
            out.push_back(b.pid);
        if (redis_ > 0)
            for (pid_t p : process_tree(redis_))
                if (p != redis_) out.push_back(p);
        return out;
    }

    std::vector<int> primaries() const {
        std::vector<int> out;
        for (int p : redis_ports)
            if (is_primary(p)) out.push_back(p);
        return out;
    }
    // used_memory summed over the primaries (one copy of the data).
    double primaries_memory() const {
        double sum = 0;
        for (int p : primaries())
            sum += std::strtod(info_field(p, "memory", "used_memory").c_str(), nullptr);
        return sum;
    }
    int primary_holding(const std::string& job) const {
        for (int p : primaries())
            if (!find_key(p, "*job:" + job).empty()) return p;
        fail("no primary holds job " + job);
    }
    // MEMORY USAGE of the job's event stream, bytes.
    double stream_memory(const std::string& job) const {
        const int port = primary_holding(job);
        const auto r =
            redis(port, {"MEMORY", "USAGE", find_key(port, "*ev:" + job), "SAMPLES", "0"});
        if (r->type != REDIS_REPLY_INTEGER) fail("MEMORY USAGE: unexpected reply");
        return static_cast<double>(r->integer);
    }
    pid_t redis_pid(int port) const {
        std::ifstream in(dir + "/redis/node-" + std::to_string(port) + "/redis.pid");
        pid_t pid = -1;
        if (!(in >> pid)) fail("no pid file for redis node " + std::to_string(port));
        return pid;
    }
    // Every shard has a primary with a replica in sync again (after a kill).
    void wait_replicated(double timeout) {
        const auto t0 = Clock::now();
        for (;;) {
            int ok = 0;
            for (int p : primaries())
                if (info_field(p, "replication", "connected_slaves") == "1") ++ok;
            if (ok == static_cast<int>(redis_ports.size()) / 2) return;
            if (seconds_since(t0) > timeout) fail("the Redis cluster did not heal");
            sleep_ms(200);
        }
    }

    const std::string mode;
    std::string dir;
    std::string store;
    std::vector<int> redis_ports;
    std::vector<BrokerProcess> brokers;

  private:
    void start_redis() {
        const auto log = dir + "/redis-cluster.log";
        redis_ = spawn({"/usr/bin/python3", "-u", fs::absolute(o_.redis_script).string(), "--dir",
                        dir + "/redis", "--node-timeout-ms", std::to_string(o_.node_timeout_ms)},
                       log);
        const auto t0 = Clock::now();
        while (store.empty()) {
            std::ifstream in(log);
            std::string line;
            if (std::getline(in, line) && line.rfind("redis-cluster://", 0) == 0 && !in.eof()) {
                store = line;
                break;
            }
            if (!alive(redis_)) fail("the Redis cluster did not start; see " + log);
            if (seconds_since(t0) > 120) fail("the Redis cluster did not start within 120 s");
            sleep_ms(100);
        }
        for (const auto& seed : split(store.substr(16), ','))
            redis_ports.push_back(std::stoi(seed.substr(seed.rfind(':') + 1)));
    }

    const Options& o_;
    pid_t redis_ = -1;
    std::vector<pid_t> workers_;
    std::map<std::string, int> homes_;
};

// ---------------------------------------------------------------- helpers

std::string stream_params(long count, int rate, int size, std::int64_t start_us, long burst = 0) {
    return R"({"count":)" + std::to_string(count) + R"(,"rate":)" + std::to_string(rate) +
           R"(,"size":)" + std::to_string(size - 32) + R"(,"start_us":)" +
           std::to_string(start_us) + R"(,"burst":)" + std::to_string(burst) + "}";
}

// Waits until job `id` is in one of `states`; its JSON.
std::string wait_state(const Setup& s, const std::string& id, std::set<std::string> states,
                       double timeout) {
    const auto t0 = Clock::now();
    const int b = s.live_broker();
    HttpClient http(s.brokers[static_cast<std::size_t>(b)].http_host, s.http_port(b));
    for (;;) {
        const auto r = http.request("GET", "/v1/jobs/" + id);
        const auto state = json_string(r.body, "state");
        if (states.count(state)) return r.body;
        if (state == "failed" || state == "cancelled") fail("job " + id + " " + state);
        if (seconds_since(t0) > timeout) fail("job " + id + " still " + state);
        sleep_ms(2);
    }
}

// A bench.stream job submitted on broker `b`, once a worker runs it: its id
// and its worker's broker.
std::pair<std::string, int> submit_running(const Setup& s, int b, const std::string& params,
                                           double timeout) {
    const auto id = s.api(b).submit("bench.stream", params);
    const auto job = wait_state(s, id, {"running", "succeeded"}, timeout);
    return {id, s.home_of(json_string(job, "worker"))};
}

std::string subscribe_hello(const std::string& job) {
    return R"({"op":"subscribe","job":")" + job + R"(","after":0})";
}

void ensure_stream_workers(const Options& o, Setup& s) {
    if (!s.has_workers()) s.start_workers("jobcast-bench-stream-worker", o.stream_workers, 64);
}

// Subscribers' errors: how many, and the first.
struct ErrorCount {
    int count = 0;
    std::string first;
    void add(const Shared& shared) {
        if (!shared.errors.load()) return;
        if (first.empty()) first = shared.first_error;
        count += shared.errors.load();
    }
};

void report_checks(const std::string& row, const std::string& col, std::int64_t gaps,
                   std::int64_t dups, const ErrorCount& errors) {
    g_results.set(row + ", gaps+missing / dups", col, static_cast<double>(gaps), 0,
                  " / " + std::to_string(dups));
    if (errors.count)
        g_results.note(col + " " + row + ": " + std::to_string(errors.count) +
                       " errors, first: " + errors.first.substr(0, 200));
}

// Records the brokers and Redis nodes with perf while alive, when asked for
// this set-up and scenario.
class Perf {
  public:
    Perf(const Options& o, const Setup& s, const std::string& scenario) {
        if (o.perf_out.empty() || o.perf_mode != s.mode || o.perf_scenario != scenario) return;
        std::string pids;
        for (pid_t p : s.server_pids())
            pids += (pids.empty() ? "" : ",") + std::to_string(p);
        std::vector<std::string> argv = {"/usr/bin/perf", "record"};
        for (const auto& a : split(o.perf_args, ' '))
            argv.push_back(a);
        argv.insert(argv.end(), {"-p", pids, "-o", o.perf_out});
        pid_ = spawn(argv, s.dir + "/perf.log");
        sleep_ms(500);  // perf attaches
    }
    ~Perf() {
        if (pid_ > 0) stop_process(pid_, SIGINT, std::chrono::milliseconds(30'000));
    }

  private:
    pid_t pid_ = -1;
};

// A row only the cluster fills: set there from value(), kept in its place
// (under the rows both fill) for one node.
template <class Value>
void cluster_row(const Setup& s, const std::string& row, Value&& value, int digits = 0) {
    if (s.cluster())
        g_results.set(row, s.mode, value(), digits);
    else
        g_results.reserve(row);
}

// ---------------------------------------------------------------- scenarios

void scenario_ingest(const Options& o, Setup& s) {
    const int jobs = o.ingest_workers * o.ingest_capacity;
    const long per_job = o.ingest_events / jobs;
    const auto events = static_cast<double>(per_job) * jobs;
    std::printf("[%s] ingest: %d jobs x %ld events of %d bytes\n", s.mode.c_str(), jobs, per_job,
                o.size);
    std::fflush(stdout);
    s.start_workers("jobcast-bench-worker", o.ingest_workers, o.ingest_capacity);
    const double memory0 = s.cluster() ? s.primaries_memory() : 0;
    const double broker0 = s.broker_cpu(), redis0 = s.redis_cpu();
    double seconds = 0;
    std::vector<std::string> ids;
    {
        Perf perf(o, s, "ingest");
        const auto t0 = Clock::now();
        for (int j = 0; j < jobs; ++j)
            ids.push_back(s.api(j % s.size())
                              .submit("bench.emit", R"({"count":)" + std::to_string(per_job) +
                                                        R"(,"size":)" + std::to_string(o.size) +
                                                        "}"));
        for (const auto& id : ids)
            wait_state(s, id, {"succeeded"}, o.timeout);
        seconds = seconds_since(t0);
    }
    s.stop_workers();
    g_results.set("ingest, events/s stored", s.mode, events / seconds);
    g_results.set("ingest, broker CPU s per 1M events", s.mode,
                  (s.broker_cpu() - broker0) / events * 1e6, 2);
    cluster_row(
        s, "ingest, Redis CPU s per 1M events (6 nodes)",
        [&] { return (s.redis_cpu() - redis0) / events * 1e6; }, 2);
    cluster_row(s, "Redis memory per event, B (one copy)",
                [&] { return (s.primaries_memory() - memory0) / events; });
    cluster_row(s, "  of which the event streams (MEMORY USAGE), B", [&] {
        double streams = 0;
        for (const auto& id : ids)
            streams += s.stream_memory(id);
        return streams / events;
    });
}

void scenario_dispatch(const Options& o, Setup& s) {
    std::printf("[%s] dispatch: %d jobs queued, then %d workers (capacity %d)\n", s.mode.c_str(),
                o.dispatch_jobs, o.ingest_workers, o.ingest_capacity);
    std::fflush(stdout);
    const double memory0 = s.cluster() ? s.primaries_memory() : 0;
    std::vector<std::string> ids;
    {
        std::vector<std::unique_ptr<HttpClient>> http;
        for (const auto& b : s.brokers)
            http.push_back(std::make_unique<HttpClient>(b.http_host, b.http_port));
        for (int j = 0; j < o.dispatch_jobs; ++j) {
            const auto r = http[static_cast<std::size_t>(j % s.size())]->request(
                "POST", "/v1/jobs", R"({"type":"bench.emit","params":{"count":0}})");
            if (r.status != 201) fail("POST /v1/jobs answered " + std::to_string(r.status));
            ids.push_back(json_string(r.body, "id"));
        }
    }
    s.start_workers("jobcast-bench-worker", o.ingest_workers, o.ingest_capacity);
    double first_start = 1e300, last_finish = 0;
    for (const auto& id : ids) {
        const auto job = wait_state(s, id, {"succeeded"}, o.timeout);
        first_start = std::min(first_start, json_number(job, "started_at"));
        last_finish = std::max(last_finish, json_number(job, "finished_at"));
    }
    g_results.set("dispatch, queued jobs run per second", s.mode,
                  o.dispatch_jobs / std::max(1.0, last_finish - first_start) * 1000);
    cluster_row(s, "Redis memory per finished job, B (one copy)",
                [&] { return (s.primaries_memory() - memory0) / o.dispatch_jobs; });

    // Idle workers: submit -> running of jobs arriving one by one.
    std::printf("[%s] dispatch: %d jobs at %.0f/s to idle workers\n", s.mode.c_str(),
                o.dispatch_probes, o.dispatch_probe_rate);
    std::fflush(stdout);
    ids.clear();
    const auto t0 = Clock::now();
    for (int j = 0; j < o.dispatch_probes; ++j) {
        std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<std::int64_t>(
                                               j * 1e6 / o.dispatch_probe_rate)));
        ids.push_back(s.api(j % s.size()).submit("bench.emit", R"({"count":0})"));
    }
    Histogram h;
    for (const auto& id : ids) {
        const auto job = wait_state(s, id, {"succeeded"}, o.timeout);
        h.record(static_cast<std::int64_t>(
            (json_number(job, "started_at") - json_number(job, "created_at")) * 1000));
    }
    s.stop_workers();
    g_results.set("dispatch, submit -> running p50 ms", s.mode, h.quantile_ms(0.5), 1);
    g_results.set("dispatch, submit -> running p99 ms", s.mode, h.quantile_ms(0.99), 1);
}

// Subscribers of one set-up, a loop per broker they start on.
struct Loops {
    std::vector<std::unique_ptr<Shared>> shared;
    std::vector<std::unique_ptr<Loop>> loops;

    Loop& on(const Setup& s, int b, int parallel) {
        shared.push_back(std::make_unique<Shared>());
        loops.push_back(std::make_unique<Loop>(*shared.back(), s.http_port(b), parallel));
        return *loops.back();
    }
    void start() {
        for (auto& l : loops)
            l->start();
    }
    bool wait_ready(double timeout) {
        bool ok = true;
        for (auto& l : loops)
            ok = l->wait_ready(timeout) && ok;
        return ok;
    }
    std::uint64_t delivered() const {
        std::uint64_t d = 0;
        for (const auto& sh : shared)
            d += sh->delivered.load();
        return d;
    }
    // Until `expect` deliveries in all, or no progress for `stall` seconds.
    void wait_delivered(std::uint64_t expect, double stall, double timeout) {
        const auto t0 = Clock::now();
        auto last_change = Clock::now();
        std::uint64_t last = 0;
        for (;;) {
            const auto d = delivered();
            if (d >= expect || seconds_since(t0) > timeout) return;
            if (d != last) {
                last = d;
                last_change = Clock::now();
            } else if (d > 0 && seconds_since(last_change) > stall) {
                return;
            }
            sleep_ms(5);
        }
    }
    // Stops every loop and sums their subscribers (missing: below expect_each).
    Loop::Totals totals(std::int64_t expect_each) {
        Loop::Totals t;
        for (auto& l : loops) {
            const auto lt = l->totals(expect_each);
            t.got += lt.got;
            t.gaps += lt.gaps;
            t.dups += lt.dups;
            t.missing += lt.missing;
        }
        return t;
    }
    ErrorCount errors() const {
        ErrorCount all;
        for (const auto& sh : shared)
            all.add(*sh);
        return all;
    }
};

// Brokers other than `home` (all of them on one node).
std::vector<int> other_brokers(const Setup& s, int home) {
    std::vector<int> out;
    for (int b = 0; b < s.size(); ++b)
        if (b != home || s.size() == 1) out.push_back(b);
    return out;
}

void scenario_fanout(const Options& o, Setup& s) {
    const int subs = o.fanout_subs;
    const auto E = o.fanout_events;
    std::printf("[%s] fan-out: 1 job x %d subscribers, %ld events\n", s.mode.c_str(), subs, E);
    std::fflush(stdout);
    ensure_stream_workers(o, s);
    const auto start_us = unix_us() + 5'000'000 + subs * 2'000;
    const auto [id, home] = submit_running(s, 0, stream_params(E, 0, o.size, start_us), o.timeout);
    Loops loops;
    const auto targets = other_brokers(s, home);
    for (std::size_t i = 0; i < targets.size(); ++i) {
        auto& loop = loops.on(s, targets[i], o.connect_parallel);
        loop.shared.latency_from_us = std::numeric_limits<std::int64_t>::max();
        const int n = subs / static_cast<int>(targets.size()) +
                      (static_cast<int>(i) < subs % static_cast<int>(targets.size()) ? 1 : 0);
        for (int k = 0; k < n; ++k)
            loop.add("jobcast", "/v1/ws", subscribe_hello(id), E);
    }
    loops.start();
    if (!loops.wait_ready(o.timeout))
        g_results.note(s.mode + " fan-out: not all subscribers ready");
    if (unix_us() > start_us)
        g_results.note(s.mode + " fan-out: subscribers were late for the start");
    loops.wait_delivered(static_cast<std::uint64_t>(subs) * static_cast<std::uint64_t>(E), 5,
                         o.timeout);
    std::int64_t first = std::numeric_limits<std::int64_t>::max(), last = 0;
    for (const auto& sh : loops.shared) {
        if (sh->first_ns.load()) first = std::min(first, sh->first_ns.load());
        last = std::max(last, sh->last_ns.load());
    }
    const auto t = loops.totals(E);
    const double secs = static_cast<double>(last - first) / 1e9;
    const std::string row =
        "fan-out 1 job x " + std::to_string(subs) + " subs (cluster: other brokers)";
    g_results.set(row + ", events/s", s.mode, secs > 0 ? static_cast<double>(t.got) / secs : 0);
    report_checks("fan-out", s.mode, t.gaps + t.missing, t.dups, loops.errors());
}

void scenario_latency(const Options& o, Setup& s) {
    const auto count = static_cast<long>(o.latency_rate * o.latency_seconds);
    std::printf("[%s] latency: %d events/s x %.0f s -> %d local + %d remote subscribers\n",
                s.mode.c_str(), o.latency_rate, o.latency_seconds, o.latency_subs,
                s.cluster() ? o.latency_subs : 0);
    std::fflush(stdout);
    ensure_stream_workers(o, s);
    const auto start_us = unix_us() + 4'000'000;
    const auto [id, home] =
        submit_running(s, 0, stream_params(count, o.latency_rate, o.size, start_us), o.timeout);
    Loops loops;
    const auto warm = start_us + static_cast<std::int64_t>(o.warmup_seconds * 1e6);
    auto& local = loops.on(s, home, o.connect_parallel);
    for (int k = 0; k < o.latency_subs; ++k)
        local.add("jobcast", "/v1/ws", subscribe_hello(id), count);
    if (s.cluster()) {
        const auto targets = other_brokers(s, home);
        for (std::size_t i = 0; i < targets.size(); ++i) {
            auto& loop = loops.on(s, targets[i], o.connect_parallel);
            const int n = o.latency_subs / static_cast<int>(targets.size()) +
                          (static_cast<int>(i) < o.latency_subs % static_cast<int>(targets.size()));
            for (int k = 0; k < n; ++k)
                loop.add("jobcast", "/v1/ws", subscribe_hello(id), count);
        }
    }
    for (auto& sh : loops.shared)
        sh->latency_from_us = warm;
    loops.start();
    if (!loops.wait_ready(o.timeout))
        g_results.note(s.mode + " latency: not all subscribers ready");
    if (unix_us() > start_us)
        g_results.note(s.mode + " latency: subscribers were late for the start");
    const auto subs = o.latency_subs * (s.cluster() ? 2 : 1);
    loops.wait_delivered(static_cast<std::uint64_t>(count) * static_cast<std::uint64_t>(subs), 5,
                         o.latency_seconds + o.timeout);
    const auto t = loops.totals(count);
    Histogram remote;
    for (std::size_t i = 1; i < loops.loops.size(); ++i)
        remote.merge(loops.loops[i]->hist);
    const auto r = std::to_string(o.latency_rate / 1000) + "k/s";
    g_results.set("latency " + r + ", local subscribers p50 ms", s.mode,
                  local.hist.quantile_ms(0.5), 2);
    g_results.set("latency " + r + ", local subscribers p99 ms", s.mode,
                  local.hist.quantile_ms(0.99), 2);
    cluster_row(
        s, "latency " + r + ", remote subscribers p50 ms", [&] { return remote.quantile_ms(0.5); },
        2);
    cluster_row(
        s, "latency " + r + ", remote subscribers p99 ms", [&] { return remote.quantile_ms(0.99); },
        2);
    report_checks("latency", s.mode, t.gaps + t.missing, t.dups, loops.errors());
}

void scenario_resume(const Options& o, Setup& s) {
    const auto E = o.resume_events;
    std::printf("[%s] resume: a finished job of %ld events, read from the start\n", s.mode.c_str(),
                E);
    std::fflush(stdout);
    ensure_stream_workers(o, s);
    const auto [id, home] = submit_running(s, 0, stream_params(0, 0, o.size, 0, E), o.timeout);
    wait_state(s, id, {"succeeded"}, o.timeout);
    const int reader = s.cluster() ? (home + 1) % s.size() : 0;
    std::vector<double> ms;
    std::int64_t gaps = 0, dups = 0;
    ErrorCount errors;
    Perf perf(o, s, "resume");
    for (int i = 0; i < o.resume_repeat; ++i) {
        Shared shared;
        shared.latency_from_us = std::numeric_limits<std::int64_t>::max();
        Loop loop(shared, s.http_port(reader), 1);
        loop.add("jobcast", "/v1/ws", subscribe_hello(id), E);
        loop.start();
        loop.wait_delivered(static_cast<std::uint64_t>(E), 20, o.timeout);
        const auto& sub = *loop.subs[0];
        const auto t = loop.totals(E);
        gaps += t.gaps + t.missing;
        dups += t.dups;
        if (sub.done_ns) ms.push_back(static_cast<double>(sub.done_ns - sub.start_ns) / 1e6);
        errors.add(shared);
    }
    std::sort(ms.begin(), ms.end());
    const std::string row =
        "resume " + std::to_string(E / 1000) + "k events (cluster: another broker)";
    g_results.set(row + ", ms (median)", s.mode, ms.empty() ? -1 : ms[ms.size() / 2], 1);
    g_results.set(row + ", ms (best)", s.mode, ms.empty() ? -1 : ms.front(), 1);
    report_checks("resume", s.mode, gaps, dups, errors);
}

// A SIGKILL of a broker or of a Redis primary under running streams.
void scenario_kill(const Options& o, Setup& s, const std::string& what) {
    const int J = o.kill_jobs;
    std::printf("[%s] %s SIGKILL: %d jobs at %d events/s, a subscriber of each on every broker\n",
                s.mode.c_str(), what.c_str(), J, o.kill_rate);
    std::fflush(stdout);
    ensure_stream_workers(o, s);
    const double lead = 3, before = 2, tail = 3;
    const auto start_us = unix_us() + static_cast<std::int64_t>(lead * 1e6);
    const auto count = static_cast<long>(o.kill_rate * (before + o.kill_wait + tail));
    std::vector<std::string> ids;
    std::vector<int> homes;
    for (int j = 0; j < J; ++j) {
        const auto [id, home] = submit_running(
            s, j % s.size(), stream_params(count, o.kill_rate, o.size, start_us), o.timeout);
        ids.push_back(id);
        homes.push_back(home);
    }
    // Subscribers: for each broker b, one per job, failing over to b+1, b+2, ...
    Loops loops;
    std::vector<int> broker_of_loop;
    for (int b = 0; b < s.size(); ++b) {
        auto& loop = loops.on(s, b, o.connect_parallel);
        loop.shared.latency_from_us = std::numeric_limits<std::int64_t>::max();
        broker_of_loop.push_back(b);
        std::vector<tcp::endpoint> next;
        for (int k = 1; k < s.size(); ++k)
            next.emplace_back(net::ip::make_address("127.0.0.1"),
                              static_cast<unsigned short>(s.http_port((b + k) % s.size())));
        for (const auto& id : ids)
            loop.add("jobcast", "/v1/ws", subscribe_hello(id), 0).fail_over_to(next, id);
    }
    loops.start();
    if (!loops.wait_ready(o.timeout))
        g_results.note(s.mode + " " + what + ": subscribers not ready");

    // Which jobs the kill hits: their worker's broker, or the shard holding them.
    int victim_broker = -1, victim_port = -1;
    std::vector<bool> hit(ids.size());
    if (what == "broker") {
        victim_broker = homes[0];
        for (std::size_t j = 0; j < ids.size(); ++j)
            hit[j] = homes[j] == victim_broker;
    } else {
        victim_port = s.primary_holding(ids[0]);
        for (std::size_t j = 0; j < ids.size(); ++j)
            hit[j] = s.primary_holding(ids[j]) == victim_port;
    }
    while (unix_us() < start_us + static_cast<std::int64_t>(before * 1e6))
        sleep_ms(5);
    const pid_t victim = what == "broker" ? s.brokers[static_cast<std::size_t>(victim_broker)].pid
                                          : s.redis_pid(victim_port);
    const auto kill_us = unix_us();
    ::kill(victim, SIGKILL);
    for (auto& sh : loops.shared)
        sh->mark_us.store(kill_us);
    if (what == "broker") stop_process(victim, SIGKILL);  // reaped: up() says it is gone
    std::printf("  killed %s (pid %d) at %lld; waiting %.0f s\n",
                what == "broker" ? ("broker " + std::to_string(victim_broker + 1)).c_str()
                                 : ("primary 127.0.0.1:" + std::to_string(victim_port)).c_str(),
                victim, static_cast<long long>(kill_us), o.kill_wait);
    std::fflush(stdout);
    sleep_ms(static_cast<int>(o.kill_wait * 1000));
    const auto t = loops.totals(0);

    Histogram subscribers;  // µs from the kill
    int stalled = 0, failovers = 0;
    std::vector<std::int64_t> worker_us(ids.size(), std::numeric_limits<std::int64_t>::max());
    for (std::size_t l = 0; l < loops.loops.size(); ++l) {
        const auto& subs = loops.loops[l]->subs;
        for (std::size_t j = 0; j < subs.size(); ++j) {
            const auto& sub = *subs[j];
            failovers += sub.failovers;
            if (!sub.after_mark_us) {
                ++stalled;
                continue;
            }
            const auto us = sub.after_mark_us - kill_us;
            subscribers.record(us);
            if (broker_of_loop[l] != victim_broker) worker_us[j] = std::min(worker_us[j], us);
        }
    }
    double worker_max = 0;
    int hit_jobs = 0;
    for (std::size_t j = 0; j < ids.size(); ++j) {
        if (!hit[j]) continue;
        ++hit_jobs;
        worker_max = std::max(worker_max, worker_us[j] == std::numeric_limits<std::int64_t>::max()
                                              ? o.kill_wait
                                              : static_cast<double>(worker_us[j]) / 1e6);
    }
    const std::string row = what + " SIGKILL";
    g_results.set(row + ": every subscriber continues, s (max)", s.mode,
                  stalled ? o.kill_wait : subscribers.max_ms() / 1000, 2,
                  stalled ? " (" + std::to_string(stalled) + " stalled)" : "");
    g_results.set(row + ": subscribers continue, s (p50)", s.mode,
                  subscribers.quantile_ms(0.5) / 1000, 2);
    g_results.set(row + ": workers hit continue, s (max)", s.mode, worker_max, 2,
                  " (" + std::to_string(hit_jobs) + " of " + std::to_string(J) + " jobs)");
    report_checks(row, s.mode, t.gaps, t.dups, loops.errors());
    if (what == "broker")
        g_results.note(s.mode + " broker SIGKILL: " + std::to_string(failovers) +
                       " subscriber failovers to another broker");
    const int b = s.live_broker();
    for (const auto& id : ids)
        s.api(b).cancel(id);
    if (what == "primary") s.wait_replicated(60);
}

// ---------------------------------------------------------------- report

void write_json(const Options& o, const std::string& load_before, const std::string& load_after) {
    if (o.json_path.empty()) return;
    std::ofstream out(o.json_path);
    out << "{\"load_before\":" << json_quote(load_before)
        << ",\"load_after\":" << json_quote(load_after)
        << ",\"cores\":" << std::thread::hardware_concurrency() << ",\"size\":" << o.size
        << ",\"brokers\":" << o.brokers << ",\"node_timeout_ms\":" << o.node_timeout_ms << ",";
    g_results.write_json(out);
    out << "}\n";
}

void run_mode(const Options& o, const std::string& mode) {
    g_results.set("load average (1 min) before", mode, load1(), 2);
    Setup s(o, mode);
    auto want = [&](const char* name) { return o.scenarios.count(name) > 0; };
    auto guarded = [&](const char* what, auto&& fn) {
        try {
            fn();
        } catch (const std::exception& e) {
            g_results.note(mode + " " + what + " failed: " + e.what());
        }
    };
    if (want("ingest")) guarded("ingest", [&] { scenario_ingest(o, s); });
    if (want("dispatch")) guarded("dispatch", [&] { scenario_dispatch(o, s); });
    if (want("fanout")) guarded("fanout", [&] { scenario_fanout(o, s); });
    if (want("latency")) guarded("latency", [&] { scenario_latency(o, s); });
    if (want("resume")) guarded("resume", [&] { scenario_resume(o, s); });
    if (s.cluster()) {
        // The primary first: the broker kill moves workers for good.
        if (want("primary-kill")) guarded("primary-kill", [&] { scenario_kill(o, s, "primary"); });
        if (want("broker-kill")) guarded("broker-kill", [&] { scenario_kill(o, s, "broker"); });
    }
    g_results.set("load average (1 min) after", mode, load1(), 2);
}

}  // namespace

int main(int argc, char** argv) {
    const auto o = parse_options(argc, argv);
    ::signal(SIGPIPE, SIG_IGN);
    kill_children_on_signal("jobcast-bench-cluster");
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
    const auto load_before = load_average();
    std::printf(
        "jobcast-bench-cluster: %u cores, load average %s, %d brokers, node timeout %d ms\n",
        std::thread::hardware_concurrency(), load_before.c_str(), o.brokers, o.node_timeout_ms);
    std::fflush(stdout);
    int rc = 0;
    try {
        for (const auto& mode : o.modes)
            run_mode(o, mode);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jobcast-bench-cluster: %s\n", e.what());
        rc = 1;
    }
    const auto load_after = load_average();
    g_results.print_table(o.modes);
    std::printf("load average before %s, after %s\n", load_before.c_str(), load_after.c_str());
    write_json(o, load_before, load_after);
    kill_all_children();
    return rc;
}
