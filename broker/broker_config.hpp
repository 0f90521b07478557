// The broker's configuration as a value: what every part of the broker runs
// with, and the primitive parsers shared by the flag groups (config.cpp,
// security_config.cpp).
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "broker/gateway_config.hpp"
#include "cluster/redis_store.hpp"
#include "persistence/store.hpp"
#include "web/http/tls.hpp"
#include "web/security/security.hpp"
#include "web/stream/streaming_config.hpp"
#include "web/streams/durable_streams.hpp"

namespace jobcast::broker {

// Each HTTP I/O thread runs its own io_context and keeps its connections;
// on a host of two cores or fewer a second one splits the subscribers in two
// halves, and the half whose thread waits for a core (the writer, gateway
// and workers need them too) waits with it: at 10,000 events/s its p99 was
// worse than one thread's (README "Under contention"), so it gets one.
inline int default_http_threads() {
    return std::thread::hardware_concurrency() <= 2 ? 1 : 2;
}

struct BrokerConfig {
    std::string http = "127.0.0.1:8080";
    int http_threads = default_http_threads();
    std::size_t max_body_bytes = 1 << 20;
    // A request's header and body must arrive within this (slowloris), and an
    // idle keep-alive connection is closed after it.
    std::chrono::milliseconds read_timeout{30'000};
    store::StoreConfig store;
    // Cluster mode (--store redis-cluster://...): the Redis store instead of
    // SQLite (store.path unused; store.retention carried over).
    std::optional<cluster::RedisStoreConfig> cluster;
    GatewayConfig gateway;
    web::StreamingConfig streaming;
    web::streams::DurableStreamsConfig durable_streams;  // /v1/streams/
    // SIGTERM/SIGINT: longest graceful stop before the process exits anyway.
    std::chrono::milliseconds shutdown_timeout{10'000};
    web::SecurityConfig security;
    web::TlsConfig tls;  // HTTPS/wss on the --http port when a certificate is given
    bool insecure_no_auth = false;
    bool insecure_no_curve = false;
    std::string log_level = "info";
    std::string log_format = "text";  // text | json
};

struct ConfigError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// "500ms", "30s", "15m", "24h", "7d", or a bare number of seconds (fractions
// allowed); `what` names the flag in the ConfigError for anything else.
std::chrono::milliseconds parse_duration(const std::string& text, const char* what);

}  // namespace jobcast::broker
