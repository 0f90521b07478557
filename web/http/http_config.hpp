// What the HTTP server and each of its sessions run with: sizes, timeouts,
// the security context and TLS. Plain values, no Beast.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace jobcast::web {

class SecurityContext;
class TlsServer;
namespace streams {
class DurableStreams;
}

struct HttpConfig {
    std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free port
    std::size_t io_threads = 2;  // each runs its own io_context; connections go to them in turn
    std::size_t header_limit = 16 * 1024;  // request line + fields; beyond -> 431
    std::size_t body_limit = 1024 * 1024;  // beyond -> 413
    // A request (header and body) must arrive within this, and an idle
    // keep-alive connection is closed after it: slowloris cannot pin a socket.
    std::chrono::milliseconds read_timeout{30'000};
    std::chrono::milliseconds write_timeout{30'000};
    // After an error response, how long unread input is drained before closing
    // (so the client reads the 413/431/400 instead of a connection reset).
    std::chrono::milliseconds linger_timeout{2'000};
    // stop(): how long in-flight requests may take to be answered before open
    // connections are closed regardless.
    std::chrono::milliseconds stop_timeout{5'000};
    // Origin allow-list, CORS, streaming connection limits and limit counters.
    // Null: every origin is accepted and nothing is limited beyond the sizes above.
    std::shared_ptr<SecurityContext> security;
    // HTTPS, wss:// and SSE over TLS on the listen port; a plain HTTP request
    // there is answered 400. Null: plain HTTP.
    std::shared_ptr<TlsServer> tls;
};

}  // namespace jobcast::web
