// jobcast-broker: see --help.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "broker/broker.hpp"
#include "broker/config.hpp"
#include "common/logging.hpp"

int main(int argc, char** argv) {
    using namespace jobcast;
    std::optional<broker::BrokerConfig> config;
    try {
        config = broker::parse_broker_config(argc, argv);
    } catch (const broker::ConfigError& e) {
        std::cerr << "jobcast-broker: " << e.what() << "\n(see --help)\n";
        return 2;
    }
    if (!config) return 0;
    configure_logging(config->log_level, config->log_format);

    // Signals are taken synchronously by this thread; every other thread
    // inherits the blocked mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    const auto log = module_logger("broker");
    broker::Broker b(*config);
    try {
        b.start();
    } catch (const std::exception& e) {
        log->critical("event=start_failed error=\"{}\"", e.what());
        return 1;
    }
    // SIGHUP reloads the TLS certificate (renewed on disk); the others stop.
    // In cluster mode the start may still go on (the engine is awaited): if
    // it gives up, so does the broker.
    int sig = 0;
    for (;;) {
        timespec tick{0, 100'000'000};
        sig = sigtimedwait(&signals, nullptr, &tick);
        if (sig == SIGHUP) {
            log->info("event=signal signal=SIGHUP");
            b.reload_tls();
        } else if (sig > 0) {
            break;
        } else if (auto failure = b.failure()) {
            b.stop();
            log->info("event=exit reason=start_failed");
            return 1;
        }
    }
    log->info("event=signal signal={}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    // The graceful stop is bounded: after --shutdown-timeout, or at a second
    // signal, the process exits without waiting (what was committed is safe
    // either way: acks only follow COMMIT).
    std::atomic<bool> stopped{false};
    std::thread watchdog([&] {
        const auto deadline = std::chrono::steady_clock::now() + config->shutdown_timeout;
        while (!stopped.load()) {
            timespec tick{0, 50'000'000};
            const char* reason = nullptr;
            const int got = sigtimedwait(&signals, nullptr, &tick);
            if (got > 0 && got != SIGHUP) reason = "second_signal";
            if (std::chrono::steady_clock::now() >= deadline) reason = "timeout";
            if (reason != nullptr && !stopped.load()) {
                log->error("event=shutdown_forced reason={}", reason);
                log->flush();
                std::_Exit(1);
            }
        }
    });
    b.stop();
    stopped = true;
    watchdog.join();
    log->info("event=exit");
    return 0;
}
