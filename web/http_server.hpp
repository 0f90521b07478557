// The HTTP/1.1 server (Boost.Beast, kept out of this header): a listener, a
// few I/O threads running one io_context, one session per connection on its
// own strand. It turns each request into an HttpRequest, lets the
// Authenticator decide the owner, hands it to the Handler (RestApi::handle)
// and writes the HttpResponse back, with keep-alive.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "web/http_message.hpp"
#include "web/request_counter.hpp"

namespace jobcast::web {

struct StreamingContext;
class SecurityContext;
class TlsServer;

struct HttpConfig {
    std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free port
    std::size_t io_threads = 2;
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

// Decides who is calling: sets request.owner, or returns the response that
// turns the caller away (e.g. 401). Runs on the connection's I/O thread.
using Authenticator = std::function<std::optional<HttpResponse>(HttpRequest& request)>;
// Authenticates nobody: every request's owner is "anonymous" (auth off).
Authenticator anonymous_authenticator();

// Answers one request by calling the Reply exactly once, from any thread.
using Handler = std::function<void(HttpRequest request, Reply reply)>;

class HttpServer {
  public:
    // With `streaming`, GET /v1/ws upgrades to a WebSocket session and
    // GET /v1/jobs/{id}/events with Accept: text/event-stream becomes an SSE
    // stream; everything else goes to `handler`.
    HttpServer(HttpConfig config, Handler handler,
               Authenticator authenticator = anonymous_authenticator(),
               std::shared_ptr<StreamingContext> streaming = nullptr);
    ~HttpServer();  // stop()
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds (SO_REUSEADDR), listens and starts the I/O threads. Throws
    // std::runtime_error for a bad address or a port that cannot be bound.
    void start();
    // "127.0.0.1:8080", with the real port when the config asked for port 0.
    std::string bound_endpoint() const;

    // Stops accepting, lets in-flight requests be answered (new responses carry
    // Connection: close), closes idle connections, then joins the I/O threads.
    // Every pending Reply must be called before stop() returns, so stop the
    // server before whatever completes them (the blocking pool, the store).
    // Idempotent.
    void stop();

    std::vector<RequestCount> request_counts() const;

    // Runs `task` on an I/O thread after `delay` (long-poll timeouts). Any thread.
    void schedule(std::chrono::milliseconds delay, std::function<void()> task);

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace jobcast::web
