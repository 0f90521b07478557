// jobcast-bench-ingest: end-to-end figures of the real processes.
//
// Starts the real jobcast-broker (fresh temp database, ports picked by the
// kernel, "listening http=... zmq=..." read from its log) and N
// jobcast-bench-worker processes, submits "bench.emit" jobs over HTTP/1.1
// (keep-alive, plain sockets), and times them to completion. Two scenarios:
//
//   ingest    W workers x J jobs each (capacity C per worker), every job emitting
//             K token events whose text is S bytes. Timed from the first POST
//             until every job succeeded, watching /metrics
//             (jobcast_jobs_finished_total, jobcast_events_ingested_total). A job
//             succeeds only once its `done` is committed, and the broker commits
//             a job's messages in wseq order, so the terminal state proves every
//             event committed (and acked after that commit). Reports events/s
//             (and the steady rate between 10% and 90% of the events), broker
//             and worker CPU seconds per million events (/proc/<pid>/stat), and
//             checks that exactly W*J*K tokens were ingested.
//   dispatch  D jobs with count=0 are queued first (POSTed and committed before
//             any worker runs), then W workers start; timed from the first
//             worker's fork until all succeeded -> jobs/s. Polls the newest job
//             (a point read) rather than /metrics, whose job-state gauge counts
//             every job in SQLite per scrape (about 1 ms per 10,000 jobs).
//
// Per run it also prints the broker's threads by creation rank (CPU seconds and
// voluntary context switches), the store's commits while timed, and "others":
// the cores other processes kept busy meanwhile (/proc/stat), flagging runs
// that were not measured on a quiet machine. Prints a table and (with --json)
// writes the figures as JSON. Asserts nothing.
//
//   jobcast-bench-ingest [--bin-dir DIR] [--scenario ingest|dispatch|all] [--repeat N]
//       [--workers 4] [--capacity 4] [--jobs-per-worker 4] [--events 100000] [--size 64]
//       [--dispatch-jobs 10000] [--dispatch-capacity 4] [--submit-connections 8]
//       [--poll-ms 20] [--timeout 120] [--dir /tmp] [--keep] [--json PATH]
//       [--broker-arg ARG]... [--worker-arg ARG]...
//       [--perf-out PATH [--perf-args "-F 999 -g"]]   (perf record the broker while timed)
//       [--on-timed-start CMD] [--on-timed-end CMD]      (sh -c CMD, {pid} = the broker's pid;
//                                                          e.g. "callgrind_control -z {pid}")
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/broker_process.hpp"
#include "bench/common/clock.hpp"
#include "bench/common/errors.hpp"
#include "bench/common/http_client.hpp"
#include "bench/common/metrics.hpp"
#include "bench/common/options.hpp"
#include "bench/common/process.hpp"
#include "bench/common/report.hpp"
#include "bench/common/scan.hpp"

namespace {

namespace bench = jobcast::bench;
namespace fs = std::filesystem;
using bench::alive;
using bench::Clock;
using bench::cpu_seconds;
using bench::fail;
using bench::HttpClient;
using bench::json_number;
using bench::kill_all_children;
using bench::load_average;
using bench::metric;
using bench::Metrics;
using bench::seconds_since;
using bench::self_cpu_seconds;
using bench::sleep_ms;
using bench::spawn;
using bench::stop_process;

// ---------------------------------------------------------------- options

struct Options : bench::BrokerRunFlags {
    Options() : BrokerRunFlags("-F 999 -g") {}

    std::string scenario = "all";
    int repeat = 1;
    int workers = 4;
    int capacity = 4;
    int jobs_per_worker = 4;
    long events = 100'000;  // per job
    int size = 64;          // token text bytes
    int dispatch_jobs = 10'000;
    int dispatch_capacity = 4;
    int submit_connections = 8;
    int poll_ms = 20;
    double timeout = 120;
    std::vector<std::string> worker_args;
    std::string on_timed_start, on_timed_end;
};

constexpr const char* kUsage =
    "usage: jobcast-bench-ingest [--bin-dir DIR] [--scenario ingest|dispatch|all]\n"
    "  [--repeat N] [--workers W] [--capacity C] [--jobs-per-worker J] [--events K]\n"
    "  [--size S] [--dispatch-jobs D] [--dispatch-capacity C] [--submit-connections N]\n"
    "  [--poll-ms MS] [--timeout SECONDS] [--dir DIR] [--keep] [--json PATH] [--broker-arg "
    "ARG]...\n"
    "  [--worker-arg ARG]... [--perf-out PATH] [--perf-args ARGS]\n"
    "  [--on-timed-start CMD] [--on-timed-end CMD]\n";

Options parse_options(int argc, char** argv) {
    Options o;
    bench::Args args(argc, argv, "jobcast-bench-ingest", kUsage);
    while (args.next()) {
        const std::string& arg = args.flag();
        auto integer = [&](int& field) { field = static_cast<int>(args.integer()); };
        if (o.take(args)) continue;
        if (arg == "--scenario") {
            o.scenario = args.value();
        } else if (arg == "--repeat") {
            integer(o.repeat);
        } else if (arg == "--workers") {
            integer(o.workers);
        } else if (arg == "--capacity") {
            integer(o.capacity);
        } else if (arg == "--jobs-per-worker") {
            integer(o.jobs_per_worker);
        } else if (arg == "--events") {
            o.events = args.integer();
        } else if (arg == "--size") {
            integer(o.size);
        } else if (arg == "--dispatch-jobs") {
            integer(o.dispatch_jobs);
        } else if (arg == "--dispatch-capacity") {
            integer(o.dispatch_capacity);
        } else if (arg == "--submit-connections") {
            integer(o.submit_connections);
        } else if (arg == "--poll-ms") {
            integer(o.poll_ms);
        } else if (arg == "--timeout") {
            o.timeout = static_cast<double>(args.integer());
        } else if (arg == "--worker-arg") {
            o.worker_args.push_back(args.value());
        } else if (arg == "--on-timed-start") {
            o.on_timed_start = args.value();
        } else if (arg == "--on-timed-end") {
            o.on_timed_end = args.value();
        } else {
            args.unknown();
        }
    }
    if (o.scenario != "ingest" && o.scenario != "dispatch" && o.scenario != "all") {
        args.usage("--scenario must be ingest, dispatch or all");
    }
    if (o.repeat < 1 || o.workers < 1 || o.capacity < 1 || o.jobs_per_worker < 1 || o.events < 0 ||
        o.size < 0 || o.dispatch_jobs < 1 || o.dispatch_capacity < 1 || o.submit_connections < 1 ||
        o.poll_ms < 1) {
        args.usage("counts must be positive");
    }
    return o;
}

// ---------------------------------------------------------------- processes

struct ThreadCpu {
    std::string comm;
    double seconds = 0;
    double switches = 0;  // voluntary context switches (sleeps: wake-ups to come)
};

double voluntary_switches(const std::string& status_path) {
    std::ifstream in(status_path);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stod(line.substr(24));
    }
    return 0;
}

// Per thread of `pid`, keyed by the thread's rank in creation order (1 = the
// main thread): the broker starts its threads in a fixed order, so a rank names
// the same thread in every run (thread ids themselves interleave with other
// processes' pids).
std::map<int, ThreadCpu> thread_cpu(pid_t pid) {
    std::map<int, ThreadCpu> by_tid;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        ThreadCpu t;
        if (auto s = bench::cpu_seconds_of(entry.path().string() + "/stat", &t.comm)) {
            t.seconds = *s;
            t.switches = voluntary_switches(entry.path().string() + "/status");
            by_tid[std::stoi(entry.path().filename().string())] = t;
        }
    }
    std::map<int, ThreadCpu> out;
    int rank = 0;
    for (auto& [tid, t] : by_tid)
        out[++rank] = std::move(t);
    return out;
}

// CPU seconds the whole machine spent busy (every core; /proc/stat), to tell
// how much of it went to processes other than the benchmark's own.
double machine_busy_seconds() {
    std::ifstream in("/proc/stat");
    std::string cpu;
    double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    static const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return (user + nice + system + irq + softirq + steal) / tick;
}

// ---------------------------------------------------------------- broker

bench::BrokerProcess start_broker(const Options& o, const std::string& run_dir) {
    return bench::start_broker(o.bin_dir, run_dir, o.broker_args);
}

pid_t start_worker(const Options& o, const bench::BrokerProcess& b, const std::string& run_dir,
                   int index, int capacity) {
    return bench::start_worker(
        o.bin_dir + "/jobcast-bench-worker", b.zmq, "bench-" + std::to_string(index), capacity,
        run_dir + "/worker-" + std::to_string(index) + ".log", o.worker_args);
}

// Scrapes answered and the time they took (the broker counts job states in
// SQLite for each one): the load generator's own cost to the broker.
struct ScrapeStats {
    int count = 0;
    double seconds = 0;
};
ScrapeStats g_scrapes;

Metrics scrape(HttpClient& http) {
    const auto started = Clock::now();
    auto r = http.request("GET", "/metrics");
    g_scrapes.count++;
    g_scrapes.seconds += seconds_since(started);
    if (r.status != 200) fail("GET /metrics answered " + std::to_string(r.status));
    return bench::parse_metrics(r.body);
}

void wait_for_workers(HttpClient& http, int count) {
    const auto deadline = Clock::now() + std::chrono::seconds(15);
    while (Clock::now() < deadline) {
        if (metric(scrape(http), "jobcast_workers") >= count) return;
        sleep_ms(10);
    }
    fail("workers did not connect within 15 s");
}

struct Submitted {
    double seconds = 0;
    std::string oldest_id;  // the smallest job id (ULIDs sort by creation time)
    std::string newest_id;  // the greatest
};

std::int64_t unix_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// POSTs `count` jobs over `connections` keep-alive connections.
Submitted submit_jobs(const bench::BrokerProcess& b, int count, int connections,
                      const std::string& body) {
    std::atomic<int> next{0};
    bench::Errors failures;
    std::vector<std::string> newest(static_cast<std::size_t>(std::min(connections, count)));
    std::vector<std::string> oldest(newest.size());
    const auto started = Clock::now();
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < newest.size(); ++c) {
        threads.emplace_back([&, c] {
            try {
                HttpClient http(b.http_host, b.http_port);
                while (next.fetch_add(1) < count) {
                    auto r = http.request("POST", "/v1/jobs", body);
                    if (r.status != 201) {
                        fail("POST /v1/jobs answered " + std::to_string(r.status) + ": " + r.body);
                    }
                    const std::string id = bench::json_string(r.body, "id");
                    newest[c] = std::max(newest[c], id);
                    if (oldest[c].empty() || id < oldest[c]) oldest[c] = id;
                }
            } catch (const std::exception& e) {
                failures.error(e.what());
            }
        });
    }
    for (auto& t : threads)
        t.join();
    if (failures.errors > 0) fail("submitting jobs failed: " + failures.first_error);
    Submitted out;
    out.seconds = seconds_since(started);
    out.newest_id = *std::max_element(newest.begin(), newest.end());
    out.oldest_id = *std::min_element(oldest.begin(), oldest.end());
    return out;
}

struct Sample {
    double t;
    double tokens;
    double succeeded;
    double commits;         // store transactions so far
    double commit_seconds;  // their summed duration
};

Sample sample_of(const Metrics& m, double t) {
    return {t, metric(m, "jobcast_events_ingested_total{kind=\"token\"}"),
            metric(m, "jobcast_jobs_finished_total{outcome=\"succeeded\"}"),
            metric(m, "jobcast_store_commit_seconds_count"),
            metric(m, "jobcast_store_commit_seconds_sum")};
}

// Polls /metrics until `jobs` jobs have succeeded; returns the samples. With
// `watch`, first polls that job (a cheap point read) until it has finished:
// each /metrics scrape counts the jobs by state in SQLite, which costs the
// broker about a millisecond per 10,000 jobs.
std::vector<Sample> wait_for_jobs(HttpClient& http, int jobs, Clock::time_point t0, double timeout,
                                  pid_t broker, int poll_ms, const std::string& watch = {}) {
    std::vector<Sample> samples;
    while (!watch.empty()) {
        const auto r = http.request("GET", "/v1/jobs/" + watch);
        if (r.status != 200)
            fail("GET /v1/jobs/" + watch + " answered " + std::to_string(r.status));
        const std::string state = bench::json_string(r.body, "state");
        if (state != "queued" && state != "running") break;
        if (seconds_since(t0) > timeout) break;
        if (!alive(broker)) fail("the broker died");
        sleep_ms(poll_ms);
    }
    for (;;) {
        const Metrics m = scrape(http);
        const double t = seconds_since(t0);
        const Sample s = sample_of(m, t);
        samples.push_back(s);
        const double bad = metric(m, "jobcast_jobs_finished_total{outcome=\"failed\"}") +
                           metric(m, "jobcast_jobs_finished_total{outcome=\"cancelled\"}");
        if (bad > 0)
            fail(std::to_string(static_cast<long>(bad)) + " jobs failed or were cancelled");
        if (s.succeeded >= jobs) return samples;
        if (t > timeout) {
            fail("timeout after " + std::to_string(timeout) + " s: " +
                 std::to_string(static_cast<long>(s.succeeded)) + "/" + std::to_string(jobs) +
                 " jobs succeeded, " + std::to_string(static_cast<long>(s.tokens)) + " tokens");
        }
        if (!alive(broker)) fail("the broker died");
        sleep_ms(poll_ms);
    }
}

// ---------------------------------------------------------------- perf

pid_t start_perf(const Options& o, pid_t broker, const std::string& run_dir, int run) {
    if (o.perf_out.empty()) return -1;
    std::vector<std::string> argv = {"/usr/bin/perf", "record"};
    std::istringstream extra(o.perf_args);
    for (std::string a; extra >> a;)
        argv.push_back(a);
    std::string out = o.perf_out;
    if (run > 0) out += "." + std::to_string(run);
    argv.insert(argv.end(), {"-p", std::to_string(broker), "-o", out});
    const pid_t pid = spawn(argv, run_dir + "/perf.log");
    sleep_ms(300);  // let it attach before the timed part
    return pid;
}

// Runs a --on-timed-* hook (sh -c, {pid} replaced by the broker's pid) and waits for it.
void run_hook(const std::string& command, pid_t broker) {
    if (command.empty()) return;
    std::string cmd = command;
    for (auto at = cmd.find("{pid}"); at != std::string::npos; at = cmd.find("{pid}", at)) {
        cmd.replace(at, 5, std::to_string(broker));
    }
    if (std::system(cmd.c_str()) != 0)
        std::fprintf(stderr, "warning: hook failed: %s\n", cmd.c_str());
}

void stop_perf(pid_t pid) {
    if (pid > 0) stop_process(pid, SIGINT, std::chrono::milliseconds(30'000));
}

// ---------------------------------------------------------------- scenarios

struct ThreadShare {
    std::string name;  // comm#rank in creation order
    double seconds;
    double switches;
};

std::vector<ThreadShare> thread_deltas(const std::map<int, ThreadCpu>& before,
                                       const std::map<int, ThreadCpu>& after) {
    std::vector<ThreadShare> out;
    for (const auto& [rank, t] : after) {
        ThreadCpu base;
        if (auto it = before.find(rank); it != before.end()) base = it->second;
        if (t.seconds - base.seconds >= 0.005) {
            out.push_back({t.comm + "#" + std::to_string(rank), t.seconds - base.seconds,
                           t.switches - base.switches});
        }
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.seconds > b.seconds; });
    return out;
}

struct IngestResult {
    int workers = 0, capacity = 0, jobs = 0;
    long events_per_job = 0;
    int size = 0;
    double expected_events = 0, ingested_tokens = 0;
    double submit_seconds = 0, seconds = 0;
    double events_per_second = 0, steady_events_per_second = 0;
    double broker_cpu = 0, worker_cpu = 0, loadgen_cpu = 0;
    double other_cores = 0;  // CPU the rest of the machine used while timed, in cores
    ScrapeStats scrapes;     // while timed
    double commits = 0, commit_seconds = 0;
    std::vector<ThreadShare> broker_threads;
    std::string load_before, load_after;
};

struct DispatchResult {
    int workers = 0, capacity = 0, jobs = 0;
    double submit_seconds = 0, seconds = 0, jobs_per_second = 0;
    // From the first job's start (the broker's started_at of the oldest job, the
    // first one dispatched) to the end: without the workers' process start.
    double first_assign_seconds = 0, jobs_per_second_after_first = 0;
    double broker_cpu = 0, worker_cpu = 0;
    double other_cores = 0;  // CPU the rest of the machine used while timed, in cores
    ScrapeStats scrapes;     // while timed
    double commits = 0, commit_seconds = 0;
    std::vector<ThreadShare> broker_threads;
    std::string load_before, load_after;
};

void cleanup_run(const Options& o, const std::string& run_dir, pid_t broker,
                 const std::vector<pid_t>& workers, bool failed) {
    for (pid_t w : workers)
        stop_process(w);
    const int status = stop_process(broker, SIGTERM, std::chrono::milliseconds(15'000));
    if (status != 0 && !failed) {
        std::fprintf(stderr, "warning: the broker exited with status %d (see %s/broker.log)\n",
                     status, run_dir.c_str());
    }
    if (!o.keep && !failed) {
        std::error_code ec;
        fs::remove_all(run_dir, ec);
    } else {
        std::fprintf(stderr, "logs and database kept in %s\n", run_dir.c_str());
    }
}

IngestResult run_ingest(const Options& o, int run) {
    IngestResult r;
    r.workers = o.workers;
    r.capacity = o.capacity;
    r.jobs = o.workers * o.jobs_per_worker;
    r.events_per_job = o.events;
    r.size = o.size;
    r.expected_events = static_cast<double>(r.jobs) * static_cast<double>(o.events);
    r.load_before = load_average();

    const std::string run_dir = bench::make_temp_dir(o.dir, "jobcast-bench");
    bench::BrokerProcess b;
    std::vector<pid_t> workers;
    bool failed = true;
    try {
        b = start_broker(o, run_dir);
        HttpClient http(b.http_host, b.http_port);
        for (int i = 0; i < o.workers; ++i) {
            workers.push_back(start_worker(o, b, run_dir, i, o.capacity));
        }
        wait_for_workers(http, o.workers);
        const pid_t perf = start_perf(o, b.pid, run_dir, run);
        run_hook(o.on_timed_start, b.pid);

        const std::string body =
            "{\"type\":\"bench.emit\",\"params\":{\"count\":" + std::to_string(o.events) +
            ",\"size\":" + std::to_string(o.size) + "}}";
        const Sample base = sample_of(scrape(http), 0);
        const double broker_cpu0 = cpu_seconds(b.pid);
        const auto threads0 = thread_cpu(b.pid);
        const double self_cpu0 = self_cpu_seconds();
        const double busy0 = machine_busy_seconds();
        g_scrapes = {};
        const auto t0 = Clock::now();
        r.submit_seconds =
            submit_jobs(b, r.jobs, std::min(o.submit_connections, r.jobs), body).seconds;
        const auto samples = wait_for_jobs(http, r.jobs, t0, o.timeout, b.pid, o.poll_ms);
        r.seconds = samples.back().t;
        r.scrapes = g_scrapes;
        r.commits = samples.back().commits - base.commits;
        r.commit_seconds = samples.back().commit_seconds - base.commit_seconds;
        r.broker_cpu = cpu_seconds(b.pid) - broker_cpu0;
        r.broker_threads = thread_deltas(threads0, thread_cpu(b.pid));
        r.loadgen_cpu = self_cpu_seconds() - self_cpu0;
        const double busy = machine_busy_seconds() - busy0;
        stop_perf(perf);
        run_hook(o.on_timed_end, b.pid);
        for (pid_t w : workers)
            r.worker_cpu += cpu_seconds(w);
        r.other_cores =
            std::max(0.0, busy - r.broker_cpu - r.worker_cpu - r.loadgen_cpu) / r.seconds;
        r.ingested_tokens = samples.back().tokens;
        r.events_per_second = r.ingested_tokens / r.seconds;
        // Between 10% and 90% of the events: the rate without ramp-up and tail.
        const Sample* lo = nullptr;
        const Sample* hi = nullptr;
        for (const auto& s : samples) {
            if (!lo && s.tokens >= 0.1 * r.expected_events) lo = &s;
            if (!hi && s.tokens >= 0.9 * r.expected_events) hi = &s;
        }
        if (lo && hi && hi->t > lo->t)
            r.steady_events_per_second = (hi->tokens - lo->tokens) / (hi->t - lo->t);
        r.load_after = load_average();
        failed = false;
    } catch (...) {
        cleanup_run(o, run_dir, b.pid, workers, true);
        throw;
    }
    cleanup_run(o, run_dir, b.pid, workers, failed);
    return r;
}

DispatchResult run_dispatch(const Options& o, int run) {
    DispatchResult r;
    r.workers = o.workers;
    r.capacity = o.dispatch_capacity;
    r.jobs = o.dispatch_jobs;
    r.load_before = load_average();
    const std::string run_dir = bench::make_temp_dir(o.dir, "jobcast-bench");
    bench::BrokerProcess b;
    std::vector<pid_t> workers;
    bool failed = true;
    try {
        b = start_broker(o, run_dir);
        HttpClient http(b.http_host, b.http_port);
        const std::string body = R"({"type":"bench.emit","params":{"count":0,"size":0}})";
        const Submitted submitted = submit_jobs(b, r.jobs, o.submit_connections, body);
        r.submit_seconds = submitted.seconds;
        // Every POST answered 201 after its commit; the dispatcher enqueues on that commit.
        const auto queued_deadline = Clock::now() + std::chrono::seconds(10);
        while (metric(scrape(http), "jobcast_queue_depth") < r.jobs) {
            if (Clock::now() > queued_deadline) fail("the jobs did not all reach the queue");
            sleep_ms(5);
        }
        const pid_t perf = start_perf(o, b.pid, run_dir, run);
        run_hook(o.on_timed_start, b.pid);
        const Sample base = sample_of(scrape(http), 0);
        const double broker_cpu0 = cpu_seconds(b.pid);
        const auto threads0 = thread_cpu(b.pid);
        const double self_cpu0 = self_cpu_seconds();
        const double busy0 = machine_busy_seconds();
        g_scrapes = {};
        const auto t0 = Clock::now();
        const auto t0_unix_ms = unix_ms();
        for (int i = 0; i < o.workers; ++i) {
            workers.push_back(start_worker(o, b, run_dir, i, o.dispatch_capacity));
        }
        const auto samples =
            wait_for_jobs(http, r.jobs, t0, o.timeout, b.pid, o.poll_ms, submitted.newest_id);
        const auto end_unix_ms = unix_ms();
        r.seconds = samples.back().t;
        r.scrapes = g_scrapes;
        r.commits = samples.back().commits - base.commits;
        r.commit_seconds = samples.back().commit_seconds - base.commit_seconds;
        r.broker_cpu = cpu_seconds(b.pid) - broker_cpu0;
        r.broker_threads = thread_deltas(threads0, thread_cpu(b.pid));
        const double loadgen_cpu = self_cpu_seconds() - self_cpu0;
        const double busy = machine_busy_seconds() - busy0;
        stop_perf(perf);
        run_hook(o.on_timed_end, b.pid);
        for (pid_t w : workers)
            r.worker_cpu += cpu_seconds(w);
        r.other_cores = std::max(0.0, busy - r.broker_cpu - r.worker_cpu - loadgen_cpu) / r.seconds;
        r.jobs_per_second = r.jobs / r.seconds;
        const auto first = http.request("GET", "/v1/jobs/" + submitted.oldest_id);
        const double first_started = json_number(first.body, "started_at");
        if (first.status == 200 && first_started > 0) {
            r.first_assign_seconds = (first_started - static_cast<double>(t0_unix_ms)) / 1e3;
            r.jobs_per_second_after_first =
                r.jobs / ((static_cast<double>(end_unix_ms) - first_started) / 1e3);
        }
        r.load_after = load_average();
        failed = false;
    } catch (...) {
        cleanup_run(o, run_dir, b.pid, workers, true);
        throw;
    }
    cleanup_run(o, run_dir, b.pid, workers, failed);
    return r;
}

// ---------------------------------------------------------------- output

std::string threads_text(const std::vector<ThreadShare>& threads, std::size_t max = 5) {
    std::string out;
    char buf[160];
    for (std::size_t i = 0; i < threads.size() && i < max; ++i) {
        std::snprintf(buf, sizeof buf, "%s%s %.2fs/%.0fcs", out.empty() ? "" : ", ",
                      threads[i].name.c_str(), threads[i].seconds, threads[i].switches);
        out += buf;
    }
    return out;
}

std::string json_threads(const std::vector<ThreadShare>& threads) {
    std::string out = "[";
    char buf[64];
    for (std::size_t i = 0; i < threads.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%.3f,\"voluntary_switches\":%.0f", threads[i].seconds,
                      threads[i].switches);
        out += (i ? "," : "") + std::string("{\"thread\":") + bench::json_quote(threads[i].name) +
               ",\"cpu_seconds\":" + buf + "}";
    }
    return out + "]";
}

double median(std::vector<double> v);

// A run during which other processes kept more than this many cores busy is
// flagged: its throughput says more about them than about jobcast.
constexpr double kBusyOthers = 0.25;

void note_others(double other_cores) {
    if (other_cores > kBusyOthers) {
        std::printf(
            "     NOTE: other processes kept %.2f cores busy while timed: this figure is "
            "understated\n",
            other_cores);
    }
}

// "median X, best Y" over every run, and over the quiet runs when some were not.
void print_summary(const std::vector<std::pair<double, double>>& runs, const char* unit) {
    std::vector<double> all, quiet;
    for (const auto& [rate, others] : runs) {
        all.push_back(rate);
        if (others <= kBusyOthers) quiet.push_back(rate);
    }
    std::printf("median %.0f %s, best %.0f %s over %zu runs", median(all), unit,
                *std::max_element(all.begin(), all.end()), unit, all.size());
    if (quiet.size() != all.size()) {
        if (quiet.empty()) {
            std::printf("; none was quiet (others > %.2f cores): rerun when the machine is idle",
                        kBusyOthers);
        } else {
            std::printf("; quiet runs only: median %.0f %s (%zu runs)", median(quiet), unit,
                        quiet.size());
        }
    }
    std::printf("\n");
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const auto n = v.size();
    return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse_options(argc, argv);
    for (const char* bin : {"jobcast-broker", "jobcast-bench-worker"}) {
        if (::access((o.bin_dir + "/" + bin).c_str(), X_OK) != 0) {
            std::fprintf(stderr, "jobcast-bench-ingest: %s/%s is missing (see --bin-dir)\n",
                         o.bin_dir.c_str(), bin);
            return 2;
        }
    }
    ::signal(SIGPIPE, SIG_IGN);
    std::vector<IngestResult> ingest;
    std::vector<DispatchResult> dispatch;
    try {
        for (int run = 0; run < o.repeat; ++run) {
            if (o.scenario == "ingest" || o.scenario == "all") {
                ingest.push_back(run_ingest(o, run));
                const auto& r = ingest.back();
                std::printf(
                    "ingest   run %d: %d workers x %d jobs x %ld events of %d B: %.0f events/s "
                    "(steady %.0f) in %.2f s; broker CPU %.2f s (%.2f s per M events); "
                    "worker CPU %.2f s; load %s\n",
                    run + 1, r.workers, o.jobs_per_worker, r.events_per_job, r.size,
                    r.events_per_second, r.steady_events_per_second, r.seconds, r.broker_cpu,
                    r.broker_cpu / (r.ingested_tokens / 1e6), r.worker_cpu, r.load_before.c_str());
                std::fflush(stdout);
            }
            if (o.scenario == "dispatch" || o.scenario == "all") {
                dispatch.push_back(run_dispatch(o, run));
                const auto& r = dispatch.back();
                std::printf(
                    "dispatch run %d: %d jobs on %d workers (capacity %d): %.0f jobs/s in %.2f s; "
                    "broker CPU %.2f s; worker CPU %.2f s; submit %.0f jobs/s; load %s\n",
                    run + 1, r.jobs, r.workers, r.capacity, r.jobs_per_second, r.seconds,
                    r.broker_cpu, r.worker_cpu, r.jobs / r.submit_seconds, r.load_before.c_str());
                std::fflush(stdout);
            }
        }
    } catch (const std::exception& e) {
        kill_all_children();
        std::fprintf(stderr, "jobcast-bench-ingest: %s\n", e.what());
        return 1;
    }

    std::printf("\n");
    if (!ingest.empty()) {
        std::printf(
            "INGEST (worker SDK -> broker -> committed -> acked), target >= 300000 events/s\n");
        std::printf("%-4s %8s %8s %9s %9s %9s %9s %9s %9s %7s %7s  %s\n", "run", "events",
                    "seconds", "events/s", "steady/s", "brokerCPU", "brk s/Mev", "workerCPU",
                    "wrk s/Mev", "loadgen", "others", "load avg (before)");
        for (std::size_t i = 0; i < ingest.size(); ++i) {
            const auto& r = ingest[i];
            const double mev = r.ingested_tokens / 1e6;
            std::printf("%-4zu %8.0f %8.2f %9.0f %9.0f %9.2f %9.2f %9.2f %9.2f %7.2f %7.2f  %s\n",
                        i + 1, r.ingested_tokens, r.seconds, r.events_per_second,
                        r.steady_events_per_second, r.broker_cpu, r.broker_cpu / mev, r.worker_cpu,
                        r.worker_cpu / mev, r.loadgen_cpu, r.other_cores, r.load_before.c_str());
            note_others(r.other_cores);
            if (r.ingested_tokens != r.expected_events) {
                std::printf("     WARNING: ingested %.0f tokens, expected %.0f\n",
                            r.ingested_tokens, r.expected_events);
            }
            std::printf("     broker threads (CPU/voluntary switches): %s\n",
                        threads_text(r.broker_threads).c_str());
            std::printf(
                "     %.0f commits (%.0f events and %.3f ms each); %d /metrics polls (%.2f ms "
                "each); POSTs took %.3f s\n",
                r.commits, r.commits ? r.ingested_tokens / r.commits : 0.0,
                r.commits ? r.commit_seconds * 1e3 / r.commits : 0.0, r.scrapes.count,
                r.scrapes.count ? r.scrapes.seconds * 1e3 / r.scrapes.count : 0.0,
                r.submit_seconds);
        }
        std::vector<std::pair<double, double>> runs;
        for (const auto& r : ingest)
            runs.emplace_back(r.events_per_second, r.other_cores);
        print_summary(runs, "events/s");
        std::printf(
            "(steady/s: between 10%% and 90%% of the events; others: cores other processes kept "
            "busy while timed)\n\n");
    }
    if (!dispatch.empty()) {
        std::printf("DISPATCH (%d queued jobs, count=0, to %d workers), target >= 10000 jobs/s\n",
                    o.dispatch_jobs, o.workers);
        std::printf("%-4s %6s %8s %8s %8s %9s %9s %9s %11s %9s %7s  %s\n", "run", "jobs",
                    "capacity", "seconds", "jobs/s", "1st asgn", "jobs/s'", "brokerCPU",
                    "brk ms/kjob", "workerCPU", "others", "load avg (before)");
        for (std::size_t i = 0; i < dispatch.size(); ++i) {
            const auto& r = dispatch[i];
            std::printf("%-4zu %6d %8d %8.2f %8.0f %8.3fs %9.0f %9.2f %11.1f %9.2f %7.2f  %s\n",
                        i + 1, r.jobs, r.capacity, r.seconds, r.jobs_per_second,
                        r.first_assign_seconds, r.jobs_per_second_after_first, r.broker_cpu,
                        r.broker_cpu * 1e3 / (r.jobs / 1e3), r.worker_cpu, r.other_cores,
                        r.load_before.c_str());
            note_others(r.other_cores);
            std::printf("     broker threads (CPU/voluntary switches): %s\n",
                        threads_text(r.broker_threads).c_str());
            std::printf(
                "     %.0f commits (%.2f jobs and %.3f ms each); %d /metrics polls (%.2f ms each); "
                "submitted beforehand at %.0f jobs/s over HTTP\n",
                r.commits, r.commits ? r.jobs / r.commits : 0.0,
                r.commits ? r.commit_seconds * 1e3 / r.commits : 0.0, r.scrapes.count,
                r.scrapes.count ? r.scrapes.seconds * 1e3 / r.scrapes.count : 0.0,
                r.jobs / r.submit_seconds);
        }
        std::vector<std::pair<double, double>> runs;
        for (const auto& r : dispatch)
            runs.emplace_back(r.jobs_per_second, r.other_cores);
        print_summary(runs, "jobs/s");
        std::printf(
            "(timed from the workers' process start; jobs/s' from the first job's start, by the "
            "broker's ms clock)\n");
    }

    if (!o.json_path.empty()) {
        std::ofstream out(o.json_path);
        char buf[512];
        out << "{\"config\":{";
        std::snprintf(
            buf, sizeof buf,
            "\"workers\":%d,\"capacity\":%d,\"jobs_per_worker\":%d,\"events_per_job\":%ld,"
            "\"size\":%d,\"dispatch_jobs\":%d,\"dispatch_capacity\":%d,\"repeat\":%d",
            o.workers, o.capacity, o.jobs_per_worker, o.events, o.size, o.dispatch_jobs,
            o.dispatch_capacity, o.repeat);
        out << buf << ",\"nproc\":" << std::thread::hardware_concurrency() << "},\"ingest\":[";
        for (std::size_t i = 0; i < ingest.size(); ++i) {
            const auto& r = ingest[i];
            std::snprintf(
                buf, sizeof buf,
                "{\"events\":%.0f,\"expected_events\":%.0f,\"seconds\":%.4f,\"events_per_second\":"
                "%.1f,\"steady_events_per_second\":%.1f,\"submit_seconds\":%.4f,"
                "\"broker_cpu_seconds\":%.3f,\"broker_cpu_seconds_per_million\":%.3f,"
                "\"worker_cpu_seconds\":%.3f,\"worker_cpu_seconds_per_million\":%.3f,"
                "\"loadgen_cpu_seconds\":%.3f,",
                r.ingested_tokens, r.expected_events, r.seconds, r.events_per_second,
                r.steady_events_per_second, r.submit_seconds, r.broker_cpu,
                r.broker_cpu / (r.ingested_tokens / 1e6), r.worker_cpu,
                r.worker_cpu / (r.ingested_tokens / 1e6), r.loadgen_cpu);
            out << (i ? "," : "") << buf << "\"other_cores\":" << r.other_cores
                << ",\"quiet\":" << (r.other_cores <= kBusyOthers ? "true" : "false")
                << ",\"metrics_polls\":" << r.scrapes.count << ",\"commits\":" << r.commits
                << ",\"commit_seconds\":" << r.commit_seconds
                << ",\"load_before\":" << bench::json_quote(r.load_before)
                << ",\"load_after\":" << bench::json_quote(r.load_after)
                << ",\"broker_threads\":" << json_threads(r.broker_threads) << "}";
        }
        out << "],\"dispatch\":[";
        for (std::size_t i = 0; i < dispatch.size(); ++i) {
            const auto& r = dispatch[i];
            std::snprintf(buf, sizeof buf,
                          "{\"jobs\":%d,\"workers\":%d,\"capacity\":%d,\"seconds\":%.4f,"
                          "\"jobs_per_second\":%.1f,\"submit_seconds\":%.4f,"
                          "\"broker_cpu_seconds\":%.3f,\"worker_cpu_seconds\":%.3f,"
                          "\"first_assign_seconds\":%.4f,\"jobs_per_second_after_first_assign\":"
                          "%.1f,",
                          r.jobs, r.workers, r.capacity, r.seconds, r.jobs_per_second,
                          r.submit_seconds, r.broker_cpu, r.worker_cpu, r.first_assign_seconds,
                          r.jobs_per_second_after_first);
            out << (i ? "," : "") << buf << "\"other_cores\":" << r.other_cores
                << ",\"quiet\":" << (r.other_cores <= kBusyOthers ? "true" : "false")
                << ",\"metrics_polls\":" << r.scrapes.count << ",\"commits\":" << r.commits
                << ",\"commit_seconds\":" << r.commit_seconds
                << ",\"load_before\":" << bench::json_quote(r.load_before)
                << ",\"load_after\":" << bench::json_quote(r.load_after)
                << ",\"broker_threads\":" << json_threads(r.broker_threads) << "}";
        }
        out << "]}\n";
        std::printf("\nwrote %s\n", o.json_path.c_str());
    }
    return 0;
}
