// jobcast-conformance-worker: the C++ SDK's test worker for the SDK conformance
// suite (tests/conformance). It serves `conformance.count` exactly as every
// SDK's conformance worker does, so that their output is byte-comparable:
//
//     jobcast-conformance-worker --broker tcp://127.0.0.1:P1[,tcp://127.0.0.1:P2...]
//                                --name NAME --capacity K [--heartbeat-ms MS] [--max-unacked N]
//
// It prints "ready" on stdout once its worker is started, logs to stderr, and
// exits 0 on SIGTERM after a graceful stop. --heartbeat-ms is the broker's to
// choose in this SDK (welcome.heartbeat_ms); it is accepted for the common
// command line. --max-unacked is the worker's unacknowledged-bytes bound.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "common/logging.hpp"
#include "workers/worker.hpp"

namespace wk = jobcast::worker;

namespace {

constexpr std::int64_t kMaxCount = 1'000'000;

std::atomic<wk::Worker*> g_worker{nullptr};

void on_signal(int) {
    if (auto* worker = g_worker.load()) worker->stop();
}

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "jobcast-conformance-worker: " << why
              << "\nusage: jobcast-conformance-worker --broker ENDPOINT[,ENDPOINT...] --name NAME "
                 "--capacity K [--heartbeat-ms MS] [--max-unacked BYTES]\n";
    std::exit(2);
}

std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> items;
    std::stringstream stream(text);
    std::string item;
    while (std::getline(stream, item, ','))
        if (!item.empty()) items.push_back(item);
    return items;
}

std::int64_t number(const std::string& text, const std::string& flag) {
    char* end = nullptr;
    const auto value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || value < 0) usage(flag + " needs a non-negative integer");
    return value;
}

// The contract (tests/conformance/README.md), step by step.
wk::JobOutcome count(wk::JobContext& job) {
    const std::int64_t n = job.has_param("count") ? job.param_int("count", 0) : -1;
    if (n < 0 || n > kMaxCount) {
        return wk::Failure("param 'count' must be an integer 0.." + std::to_string(kMaxCount),
                           false);
    }
    const auto every_ms = job.param_int("every_ms", 0);
    const auto checkpoint_every = job.param_int("checkpoint_every", 0);
    const auto progress_every = job.param_int("progress_every", 0);
    const bool fails = job.has_param("fail_at");
    const auto fail_at = job.param_int("fail_at", 0);
    const auto message = job.param_string("message", "failed at " + std::to_string(fail_at));
    const bool retryable = job.param_bool("retryable", false);
    const std::int64_t start = job.checkpoint().empty() ? 0 : std::stoll(job.checkpoint());

    for (std::int64_t i = start; i < n; ++i) {
        if (job.cancelled()) break;
        if (fails && fail_at == i) return wk::Failure(message, retryable);
        job.token(std::to_string(i) + " ");
        if (progress_every > 0 && (i + 1) % progress_every == 0) {
            job.progress(static_cast<double>(i + 1) / static_cast<double>(n));
        }
        if (checkpoint_every > 0 && (i + 1) % checkpoint_every == 0) {
            job.save_checkpoint(std::to_string(i + 1));
        }
        if (every_ms > 0) job.wait_cancelled_for(std::chrono::milliseconds{every_ms});
    }
    return R"({"count":)" + std::to_string(n) + R"(,"start":)" + std::to_string(start) + "}";
}

}  // namespace

int main(int argc, char** argv) {
    wk::WorkerConfig config;
    config.types = {"conformance.count"};
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) usage("missing value for " + flag);
        const std::string value = argv[++i];
        if (flag == "--broker") {
            config.brokers = split_commas(value);
        } else if (flag == "--name") {
            config.name = value;
        } else if (flag == "--capacity") {
            config.capacity = static_cast<int>(number(value, flag));
        } else if (flag == "--heartbeat-ms") {
            number(value, flag);  // the broker's welcome sets the interval
        } else if (flag == "--max-unacked") {
            config.max_unacked_bytes = static_cast<std::size_t>(number(value, flag));
        } else {
            usage("unknown argument " + flag);
        }
    }
    if (config.brokers.empty()) usage("--broker is required");
    jobcast::configure_logging("info", "text");

    try {
        wk::Worker worker(config);
        worker.handle("conformance.count", count);
        g_worker.store(&worker);
        struct sigaction action {};
        action.sa_handler = on_signal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, nullptr);
        sigaction(SIGTERM, &action, nullptr);
        std::cout << "ready" << std::endl;
        worker.run();
        g_worker.store(nullptr);
    } catch (const std::exception& e) {
        g_worker.store(nullptr);
        std::cerr << "jobcast-conformance-worker: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
