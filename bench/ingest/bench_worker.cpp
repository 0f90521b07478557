// jobcast-bench-worker: a worker built on the SDK (workers/worker.hpp) that
// serves one job type, "bench.emit" {count, size}: it emits `count` token
// events whose text is `size` bytes, as fast as the SDK takes them, then
// returns {"emitted":count}. Used by jobcast-bench-ingest; runs until SIGTERM.
//
//   jobcast-bench-worker --broker tcp://127.0.0.1:5555 [--capacity N] [--name NAME]
//                        [--max-unacked-bytes B] [--log-level info]
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/logging.hpp"
#include "workers/log.hpp"
#include "workers/worker.hpp"

namespace wk = jobcast::worker;

namespace {

std::atomic<wk::Worker*> g_worker{nullptr};

void on_signal(int) {
    if (auto* worker = g_worker.load()) worker->stop();
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "jobcast-bench-worker: %s\n"
                 "usage: jobcast-bench-worker --broker ENDPOINT [--capacity N] [--name NAME]\n"
                 "       [--max-unacked-bytes B] [--log-level LEVEL]\n",
                 why);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    wk::WorkerConfig config;
    config.types = {"bench.emit"};
    config.capacity = 4;
    std::string log_level = "info";
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
            return argv[++i];
        };
        if (arg == "--broker") {
            config.broker = value();
        } else if (arg == "--capacity") {
            config.capacity = std::atoi(value().c_str());
        } else if (arg == "--name") {
            config.name = value();
        } else if (arg == "--max-unacked-bytes") {
            config.max_unacked_bytes = std::strtoull(value().c_str(), nullptr, 10);
        } else if (arg == "--log-level") {
            log_level = value();
        } else if (arg == "--help" || arg == "-h") {
            usage("help");
        } else {
            usage(("unknown argument " + arg).c_str());
        }
    }
    jobcast::configure_logging(log_level, "text");

    try {
        wk::Worker worker(config);
        worker.handle("bench.emit", [](wk::JobContext& job) -> wk::JobOutcome {
            const auto count = job.param_int("count", 0);
            const auto size = job.param_int("size", 64);
            if (count < 0 || size < 0 || size > (1 << 20)) {
                return wk::Failure("bench.emit: bad count or size", false);
            }
            // Plain ASCII: the SDK's JSON escaping scans it but changes nothing.
            std::string text(static_cast<std::size_t>(size), 'x');
            std::int64_t emitted = 0;
            for (; emitted < count && !job.cancelled(); ++emitted)
                job.token(text);
            return std::string("{\"emitted\":") + std::to_string(emitted) + "}";
        });
        g_worker.store(&worker);
        struct sigaction action {};
        action.sa_handler = on_signal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, nullptr);
        sigaction(SIGTERM, &action, nullptr);
        signal(SIGPIPE, SIG_IGN);
        worker.run();
        g_worker.store(nullptr);
        const auto s = worker.stats();
        wk::worker_logger()->info(
            "bench worker stopped emitted={} sent={} resent={} acks={} emit_waits={} "
            "succeeded={} failed={}",
            s.events_emitted, s.messages_sent, s.messages_resent, s.acks_received, s.emit_waits,
            s.jobs_succeeded, s.jobs_failed);
    } catch (const std::exception& e) {
        g_worker.store(nullptr);
        std::fprintf(stderr, "jobcast-bench-worker: %s\n", e.what());
        return 1;
    }
    return 0;
}
