#include "broker/config.hpp"

#include <boost/program_options.hpp>
#include <iostream>

#include "broker/security_config.hpp"

namespace po = boost::program_options;

namespace jobcast::broker {

std::optional<BrokerConfig> parse_broker_config(int argc, const char* const argv[]) {
    BrokerConfig c;
    std::string durability = "normal", retention = "0", heartbeat = "1000ms", store_url;
    std::string stall_timeout = "30s", keepalive = "45s", ws_ping_interval = "240s",
                shutdown_timeout = "10s", read_timeout = "30s", stream_long_poll = "20s";
    po::options_description desc(
        "jobcast-broker: streams job progress from workers to clients\n\n"
        "Every option can also be set as JOBCAST_<NAME> (e.g. JOBCAST_HTTP, JOBCAST_DB);\n"
        "the command line wins over the environment.\n\nOptions");
    // clang-format off
    desc.add_options()
        ("help,h", "print this help")
        ("http", po::value(&c.http)->default_value(c.http),
            "HTTP/WebSocket listen address HOST:PORT (port 0 picks a free port)")
        ("zmq", po::value(&c.gateway.endpoint)->default_value(c.gateway.endpoint),
            "ZeroMQ endpoint workers connect to (tcp://HOST:PORT; port * or 0 picks one)")
        ("db", po::value(&c.store.path)->default_value(c.store.path), "SQLite database file")
        ("store", po::value(&store_url),
            "where jobs and events live: sqlite:PATH (the default, same as --db PATH) or "
            "redis-cluster://HOST:PORT[,HOST:PORT...][?partitions=64&wait_timeout=500ms] "
            "(cluster mode: brokers sharing one Redis Cluster)")
        ("durability", po::value(&durability)->default_value(durability),
            "normal (survives a process crash) or full (survives power loss)")
        ("retention", po::value(&retention)->default_value(retention),
            "delete jobs finished longer ago than this (e.g. 7d, 12h); 0 keeps them forever")
        ("heartbeat", po::value(&heartbeat)->default_value(heartbeat),
            "heartbeat interval between broker and workers")
        ("liveness", po::value(&c.gateway.liveness)->default_value(c.gateway.liveness),
            "missed heartbeats before a worker's leases are lost")
        ("http-threads", po::value(&c.http_threads)->default_value(c.http_threads),
            "I/O threads of the HTTP server")
        ("max-body", po::value(&c.max_body_bytes)->default_value(c.max_body_bytes),
            "largest accepted HTTP request body, bytes")
        ("read-timeout", po::value(&read_timeout)->default_value(read_timeout),
            "an HTTP request (header and body) must arrive within this; idle keep-alive "
            "connections are closed after it")
        ("max-frame", po::value(&c.gateway.limits.max_frame_bytes)
            ->default_value(c.gateway.limits.max_frame_bytes),
            "largest accepted worker message, bytes")
        ("batch", po::value(&c.store.max_batch_ops)->default_value(c.store.max_batch_ops),
            "most writes committed in one transaction (group commit cap)")
        ("client-queue-bytes", po::value(&c.streaming.max_queue_bytes)
            ->default_value(c.streaming.max_queue_bytes),
            "bytes queued for one streaming connection before its subscriptions switch to "
            "catch-up from the store")
        ("replay-page", po::value(&c.streaming.replay_page)->default_value(c.streaming.replay_page),
            "events per store read when replaying or catching up")
        ("max-page-bytes", po::value(&c.streaming.replay_page_bytes)
            ->default_value(c.streaming.replay_page_bytes),
            "a page of events (GET .../events, a long-poll's answer, a replay or catch-up read) "
            "ends once its events' data reaches this many bytes; it always holds at least one "
            "event and says where to continue")
        ("connection-buffer-bytes", po::value(&c.streaming.connection_buffer_bytes)
            ->default_value(c.streaming.connection_buffer_bytes),
            "live events one streaming connection keeps buffered across all its subscriptions "
            "while they replay; beyond it, a subscription reads them from the store instead")
        ("max-subscriptions", po::value(&c.streaming.max_subscriptions)
            ->default_value(c.streaming.max_subscriptions),
            "job subscriptions per WebSocket connection")
        ("max-ws-message", po::value(&c.streaming.max_message_bytes)
            ->default_value(c.streaming.max_message_bytes),
            "largest WebSocket message accepted from a client, bytes")
        ("stall-timeout", po::value(&stall_timeout)->default_value(stall_timeout),
            "a client that reads nothing for this long is disconnected (it resumes later)")
        ("keepalive", po::value(&keepalive)->default_value(keepalive),
            "TCP keepalive idle time (3 probes a third of it apart) and SSE comment interval; "
            "a WebSocket write in flight is checked for a stall this often")
        ("ws-ping-interval", po::value(&ws_ping_interval)->default_value(ws_ping_interval),
            "a WebSocket that read and wrote nothing for 3/4 to all of this is pinged; one "
            "that answers nothing by its next check is closed (within 2x this)")
        ("stream-long-poll", po::value(&stream_long_poll)->default_value(stream_long_poll),
            "Durable Streams (/v1/streams/): how long a caught-up live=long-poll read waits "
            "before 204, and how often a quiet live=sse stream gets a control event")
        ("shutdown-timeout", po::value(&shutdown_timeout)->default_value(shutdown_timeout),
            "on SIGTERM, the longest graceful stop (clients told to reconnect, writer flushed, "
            "workers told) before the broker exits anyway; a second signal exits at once")
        ("log-level", po::value(&c.log_level)->default_value(c.log_level),
            "trace, debug, info, warn, error")
        ("log-format", po::value(&c.log_format)->default_value(c.log_format),
            "text or json (one JSON object per line)");
    // clang-format on
    SecurityFlags security_flags;
    add_security_options(desc, c, security_flags);

    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::store(po::parse_environment(desc,
                                        [&desc](const std::string& env) -> std::string {
                                            if (env.rfind("JOBCAST_", 0) != 0) return "";
                                            std::string name = env.substr(8);
                                            for (auto& ch : name) {
                                                ch = ch == '_'
                                                         ? '-'
                                                         : static_cast<char>(std::tolower(ch));
                                            }
                                            return desc.find_nothrow(name, false) ? name : "";
                                        }),
                  vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw ConfigError(e.what());
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return std::nullopt;
    }
    if (durability == "normal")
        c.store.durability = store::Durability::normal;
    else if (durability == "full")
        c.store.durability = store::Durability::full;
    else
        throw ConfigError("--durability must be normal or full, not '" + durability + "'");
    c.store.retention = parse_duration(retention, "retention");
    if (store_url.starts_with("sqlite:")) {
        c.store.path = store_url.substr(7);
        if (c.store.path.empty()) throw ConfigError("--store sqlite:PATH needs a PATH");
    } else if (store_url.starts_with("redis-cluster://")) {
        try {
            c.cluster = cluster::parse_store_url(store_url);
        } catch (const store::StoreError& e) {
            throw ConfigError(std::string("--store: ") + e.what());
        }
        // History lives in the cluster's memory: a retention is required
        // there, and --retention 0 (keep forever) takes the cluster's default.
        if (c.store.retention.count() > 0) c.cluster->retention = c.store.retention;
        c.cluster->max_batch_ops = c.store.max_batch_ops;
    } else if (!store_url.empty()) {
        throw ConfigError("--store must be sqlite:PATH or redis-cluster://HOST:PORT[,...], not '" +
                          store_url + "'");
    }
    c.gateway.heartbeat = parse_duration(heartbeat, "heartbeat");
    c.streaming.stall_timeout = parse_duration(stall_timeout, "stall-timeout");
    c.streaming.keepalive = parse_duration(keepalive, "keepalive");
    c.streaming.ws_ping_interval = parse_duration(ws_ping_interval, "ws-ping-interval");
    c.durable_streams.long_poll_timeout = parse_duration(stream_long_poll, "stream-long-poll");
    if (c.durable_streams.long_poll_timeout < std::chrono::milliseconds(100)) {
        throw ConfigError("--stream-long-poll must be at least 100ms");
    }
    c.shutdown_timeout = parse_duration(shutdown_timeout, "shutdown-timeout");
    c.read_timeout = parse_duration(read_timeout, "read-timeout");
    if (c.read_timeout < std::chrono::milliseconds(100)) {
        throw ConfigError("--read-timeout must be at least 100ms");
    }
    if (c.streaming.keepalive < std::chrono::milliseconds(100) ||
        c.streaming.keepalive > std::chrono::hours(24)) {
        throw ConfigError("--keepalive must be between 100ms and 24h");
    }
    if (c.streaming.ws_ping_interval < std::chrono::milliseconds(100) ||
        c.streaming.ws_ping_interval > std::chrono::hours(24)) {
        throw ConfigError("--ws-ping-interval must be between 100ms and 24h");
    }
    if (c.streaming.max_queue_bytes < 4096)
        throw ConfigError("--client-queue-bytes must be >= 4096");
    if (c.streaming.replay_page < 1) throw ConfigError("--replay-page must be at least 1");
    if (c.streaming.replay_page_bytes < 1) throw ConfigError("--max-page-bytes must be at least 1");
    if (c.gateway.heartbeat < std::chrono::milliseconds(10)) {
        throw ConfigError("--heartbeat must be at least 10ms");
    }
    if (c.gateway.liveness < 1) throw ConfigError("--liveness must be at least 1");
    if (c.http_threads < 1 || c.http_threads > 64) {
        throw ConfigError("--http-threads must be between 1 and 64");
    }
    if (c.http.rfind(':') == std::string::npos) {
        throw ConfigError("--http must be HOST:PORT, not '" + c.http + "'");
    }
    if (c.store.max_batch_ops < 1) throw ConfigError("--batch must be at least 1");
    if (c.log_format != "text" && c.log_format != "json") {
        throw ConfigError("--log-format must be text or json");
    }
    finish_security_config(c, security_flags);
    // Endpoints with port 0 are spelled '*' in ZeroMQ.
    if (c.gateway.endpoint.ends_with(":0")) c.gateway.endpoint.back() = '*';
    return c;
}

}  // namespace jobcast::broker
