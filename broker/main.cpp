// jobcast-broker: see --help.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

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
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    broker::Broker b(*config);
    try {
        b.start();
    } catch (const std::exception& e) {
        spdlog::critical("event=start_failed error=\"{}\"", e.what());
        return 1;
    }
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("event=signal signal={}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    b.stop();
    return 0;
}
