// Internal to the web module: the per-connection HTTP session and the state it
// shares with the server. This is the one web header that includes Beast; only
// web/*.cpp files that already speak Beast include it (the server, the
// sessions), never a public header.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "web/http/flex_stream.hpp"
#include "web/http/http_config.hpp"
#include "web/http/http_message.hpp"
#include "web/http/request_counter.hpp"
#include "web/security/security_stats.hpp"
#include "web/stream/admission.hpp"
#include "web/stream/stream_session.hpp"

namespace jobcast::web {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

class HttpSession;

// What the server and its sessions share. Sessions hold it by shared_ptr, so it
// outlives the io_context that may destroy the last session.
struct ServerShared {
    ServerShared(HttpConfig config, Handler handler, Authenticator authenticator,
                 std::shared_ptr<StreamingContext> streaming)
        : config(std::move(config)),
          handler(std::move(handler)),
          authenticator(std::move(authenticator)),
          streaming(std::move(streaming)) {}

    const HttpConfig config;
    const Handler handler;
    const Authenticator authenticator;
    // Null: no WebSocket/SSE (yet: HttpServer::serve_streams sets it once).
    std::atomic<std::shared_ptr<StreamingContext>> streaming;
    // live=sse reads under /v1/streams/ (web/streams/stream_sse.hpp), with
    // the streaming sessions; null: not served. Set before `streaming`.
    std::atomic<streams::DurableStreams*> durable_streams{nullptr};
    RequestCounter counter;

    // Streaming sessions the HTTP sessions handed their connections to, so
    // stop() can tell them to close (1012: reconnect and resume).
    std::mutex streams_mutex;
    std::vector<std::weak_ptr<StreamSession>> streams;
    void add_stream(const std::shared_ptr<StreamSession>& stream);
    std::vector<std::shared_ptr<StreamSession>> live_streams();

    std::atomic<bool> stopping{false};
    std::atomic<std::size_t> pending_replies{0};  // handed to the Handler, not yet released
    std::atomic<std::size_t> refusing{0};         // connections being answered 503/429 at accept
    std::atomic<std::uint64_t> next_connection{1};

    // Live sessions, so stop() can reach them. Weak: a session lives by its
    // pending operations (shared_from_this), not by being listed here.
    std::mutex sessions_mutex;
    std::unordered_map<std::uint64_t, std::weak_ptr<HttpSession>> sessions;
    std::size_t live_sessions();
};

// Streams are admitted through its StreamDoor (see web/stream/admission.hpp).
class HttpSession : public std::enable_shared_from_this<HttpSession>, public StreamDoor {
  public:
    // `ticket`: the connection's place under the accept-time caps, kept for
    // as long as the socket is open (handed on to a WebSocket or SSE session).
    HttpSession(tcp::socket&& socket, std::shared_ptr<ServerShared> shared,
                std::shared_ptr<void> ticket = nullptr);
    ~HttpSession() override;
    HttpSession(const HttpSession&) = delete;
    HttpSession& operator=(const HttpSession&) = delete;

    // Registers with the server and starts reading the first request.
    void run();
    // From any thread. Closes the connection if it is between requests (or
    // `force`); otherwise the response in progress goes out with
    // Connection: close and the session ends after it.
    void notify_stop(bool force);

  private:
    enum class Phase { reading, handling, writing, lingering, closed };

    // On a TLS port: plain HTTP is answered 400, TLS is handshaken.
    void detect_tls();
    void on_detect_tls(beast::error_code ec, bool is_tls);
    void on_handshake(beast::error_code ec, std::size_t);
    void count_tls_failure(TlsFailure failure, std::string_view detail);
    void do_read();
    void on_read_header(beast::error_code ec, std::size_t bytes);
    void on_continue_written(beast::error_code ec, std::size_t bytes);
    void read_body();
    void on_read_body(beast::error_code ec, std::size_t bytes);
    void on_read_error(beast::error_code ec, const char* what);
    void on_request();
    void dispatch(HttpRequest request);
    // StreamDoor
    const std::string& remote() const override;
    const std::optional<std::string>& cors_origin() const override;
    std::optional<HttpResponse> authenticate(HttpRequest& request) override;
    void send(HttpResponse response) override;
    void resume(std::function<void()> next) override;
    void hand_over(int status, const Open& open) override;
    // Host (DNS rebinding), then the Origin allow-list and CORS preflight; the
    // response when the request ends there.
    std::optional<HttpResponse> check_origin(const HttpRequest& request);
    void on_write(bool close, beast::error_code ec, std::size_t bytes);
    void reject(int status, std::string_view code, const std::string& message);
    void linger();
    void on_linger_read(beast::error_code ec, std::size_t bytes);
    void shutdown_send();
    // TLS close_notify, then the session ends (bounded by the linger timeout).
    void tls_shutdown();
    void on_stop(bool force);
    void fail(beast::error_code ec, const char* what);

    FlexStream stream_;
    beast::flat_buffer buffer_;
    // A fresh parser per request: Beast parsers are single-message.
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::empty_body> continue_response_;
    http::response<http::string_body> response_;  // one write outstanding at a time
    std::shared_ptr<ServerShared> shared_;
    std::shared_ptr<void> ticket_;  // see the constructor
    const std::uint64_t id_;
    std::string remote_;
    Phase phase_ = Phase::reading;

    // The request being answered.
    unsigned version_ = 11;
    bool keep_alive_ = false;
    bool linger_after_write_ = false;
    std::string method_;
    std::string target_;
    std::string route_;
    std::optional<std::string> cors_origin_;  // Access-Control-Allow-Origin of the answer
    std::chrono::steady_clock::time_point started_;

    std::array<char, 4096> drain_{};
    std::size_t drained_ = 0;
};

}  // namespace jobcast::web
