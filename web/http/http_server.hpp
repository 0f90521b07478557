// The HTTP/1.1 server (Boost.Beast, kept out of this header): a listener, a
// few I/O threads each running its own io_context, one session per
// connection on its own strand of one of them (the threads in turn). It
// turns each request into an HttpRequest, lets the Authenticator decide the
// owner, hands it to the Handler (RestApi::handle) and writes the
// HttpResponse back, with keep-alive.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "web/http/http_config.hpp"
#include "web/http/http_message.hpp"
#include "web/http/request_counter.hpp"

namespace jobcast::web {

struct StreamingContext;

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

    // Turns on WebSocket and SSE with `streaming` for the requests that come
    // after, when it was not given at construction (what it needs did not
    // exist yet). Once; any thread.
    // With `durable`, live=sse reads under /v1/streams/ too.
    void serve_streams(std::shared_ptr<StreamingContext> streaming,
                       streams::DurableStreams* durable = nullptr);

    std::vector<RequestCount> request_counts() const;

    // Runs `task` on an I/O thread (the next in turn) after `delay`
    // (long-poll timeouts). Any thread.
    void schedule(std::chrono::milliseconds delay, std::function<void()> task);

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace jobcast::web
