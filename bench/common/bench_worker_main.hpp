// The process shell shared by the benchmark workers (jobcast-bench-worker,
// jobcast-bench-stream-worker): flags, logging, SIGINT/SIGTERM and the SDK's
// run loop around one job type's handler.
//
//   PROGRAM --broker tcp://127.0.0.1:5555[,tcp://…] [--capacity N] [--name NAME]
//           [--max-unacked-bytes B] [--log-level info]
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/common/options.hpp"
#include "common/logging.hpp"
#include "workers/log.hpp"
#include "workers/worker.hpp"

namespace jobcast::bench {

namespace detail {
inline std::atomic<worker::Worker*> g_worker{nullptr};
inline void on_signal(int) {
    if (auto* w = g_worker.load()) w->stop();  // stop() is async-signal-safe
}
}  // namespace detail

// Serves `type` with `handler` until SIGINT/SIGTERM; returns the exit code.
inline int run_bench_worker(int argc, char** argv, const char* program, const char* type,
                            worker::Handler handler) {
    auto usage = [program](const std::string& why) {
        std::fprintf(
            stderr,
            "%s: %s\nusage: %s --broker ENDPOINT[,ENDPOINT...] [--capacity N] [--name NAME]\n"
            "       [--max-unacked-bytes B] [--log-level LEVEL]\n",
            program, why.c_str(), program);
        std::exit(2);
    };
    worker::WorkerConfig config;
    config.types = {type};
    config.capacity = 4;
    std::string log_level = "info";
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage("missing value for " + arg);
            return argv[++i];
        };
        if (arg == "--broker") {
            config.brokers = split(value(), ',');  // several: fail over in turn (cluster mode)
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
            usage("unknown argument " + arg);
        }
    }
    configure_logging(log_level, "text");

    try {
        worker::Worker w(config);
        w.handle(type, std::move(handler));
        detail::g_worker.store(&w);
        struct sigaction action {};
        action.sa_handler = detail::on_signal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, nullptr);
        sigaction(SIGTERM, &action, nullptr);
        signal(SIGPIPE, SIG_IGN);
        w.run();
        detail::g_worker.store(nullptr);
        const auto s = w.stats();
        worker::worker_logger()->info(
            "bench worker stopped emitted={} sent={} resent={} acks={} emit_waits={} "
            "succeeded={} failed={}",
            s.events_emitted, s.messages_sent, s.messages_resent, s.acks_received, s.emit_waits,
            s.jobs_succeeded, s.jobs_failed);
    } catch (const std::exception& e) {
        detail::g_worker.store(nullptr);
        std::fprintf(stderr, "%s: %s\n", program, e.what());
        return 1;
    }
    return 0;
}

}  // namespace jobcast::bench
