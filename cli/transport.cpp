// The only file with Beast in it. Every operation is an Asio coroutine on an
// io_context private to the call or the connection, run until that one
// operation completes: the blocking interface the CLI wants, with the
// timeouts that only Beast's asynchronous operations have.
//
// TLS (https:// URLs) is built only with JOBCAST_CLI_TLS: instantiating the
// HTTP and WebSocket stacks a second time over an SSL stream more than
// doubles the compile time of this file.
#include "cli/transport.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <optional>

#ifndef JOBCAST_CLI_TLS
#define JOBCAST_CLI_TLS 0
#endif

#if JOBCAST_CLI_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/ssl.hpp>
#endif

#include "cli/errors.hpp"
#include "cli/json_format.hpp"

namespace jobcast::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;

constexpr std::size_t kMaxResponseBody = 64 << 20;
constexpr milliseconds kCloseTimeout{2000};
constexpr const char* kUserAgent = "jobcast-cli/" JOBCAST_VERSION;
[[maybe_unused]] constexpr const char* kNoTls =
    "https:// URLs need a jobcast built with -DJOBCAST_CLI_TLS=ON";

std::string describe(const beast::error_code& ec, const ServerUrl& url) {
    if (ec == beast::error::timeout) return "timed out talking to " + url.authority();
    if (ec == asio::error::eof || ec == http::error::end_of_stream) {
        return "connection closed by " + url.authority();
    }
    return ec.message() + " (" + url.authority() + ")";
}

// Runs `task` on `ioc` until it completes and returns its result. Network
// errors come out as ConnectionError. run_one(), not run(): a WebSocket keeps
// a timer pending between operations, so the context never runs out of work.
template <class T>
T run_task(asio::io_context& ioc, asio::awaitable<T> task, const ServerUrl& url) {
    bool done = false;
    std::exception_ptr error;
    std::optional<std::conditional_t<std::is_void_v<T>, char, T>> value;
    if constexpr (std::is_void_v<T>) {
        asio::co_spawn(ioc, std::move(task), [&](std::exception_ptr e) {
            error = e;
            done = true;
        });
    } else {
        asio::co_spawn(ioc, std::move(task), [&](std::exception_ptr e, T result) {
            error = e;
            if (!e) value.emplace(std::move(result));
            done = true;
        });
    }
    if (ioc.stopped()) ioc.restart();
    while (!done) {
        if (ioc.run_one() == 0) throw ConnectionError("I/O stopped unexpectedly");
    }
    if (error) {
        try {
            std::rethrow_exception(error);
        } catch (const boost::system::system_error& e) {
            throw ConnectionError(describe(e.code(), url));
        }
    }
    if constexpr (!std::is_void_v<T>) return std::move(*value);
}

asio::awaitable<void> connect_tcp(beast::tcp_stream& stream, const TransportConfig& config) {
    tcp::resolver resolver(co_await asio::this_coro::executor);
    const auto endpoints =
        co_await resolver.async_resolve(config.url.host, config.url.port, asio::use_awaitable);
    stream.expires_after(config.connect_timeout);
    co_await stream.async_connect(endpoints, asio::use_awaitable);
    stream.socket().set_option(tcp::no_delay(true));
}

#if JOBCAST_CLI_TLS
namespace ssl = asio::ssl;

std::shared_ptr<ssl::context> make_tls_context(const TransportConfig& config) {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
    if (config.ca_file.empty()) {
        context->set_default_verify_paths();
    } else {
        beast::error_code ec;
        context->load_verify_file(config.ca_file, ec);
        if (ec) {
            throw ConnectionError("cannot use --cacert " + config.ca_file + ": " + ec.message());
        }
    }
    context->set_verify_mode(ssl::verify_peer);
    return context;
}

asio::awaitable<void> tls_handshake(beast::ssl_stream<beast::tcp_stream>& stream,
                                    const TransportConfig& config) {
    // SNI, and the certificate must name the host we asked for.
    if (!SSL_set_tlsext_host_name(stream.native_handle(), config.url.host.c_str())) {
        throw beast::system_error(beast::error_code(static_cast<int>(::ERR_get_error()),
                                                    asio::error::get_ssl_category()));
    }
    stream.set_verify_callback(ssl::host_name_verification(config.url.host));
    beast::get_lowest_layer(stream).expires_after(config.connect_timeout);
    co_await stream.async_handshake(ssl::stream_base::client, asio::use_awaitable);
}
#endif

// ---- HTTP ----

template <class Stream>
asio::awaitable<HttpResponse> exchange(Stream& stream, const TransportConfig& config,
                                       http::request<http::string_body>& request) {
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_after(config.request_timeout);
    co_await http::async_write(stream, request, asio::use_awaitable);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBody);
    lowest.expires_after(config.request_timeout);
    co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
    // No TLS shutdown or lingering: the connection is dropped right after.
    co_return HttpResponse{static_cast<int>(parser.get().result_int()),
                           std::move(parser.get().body())};
}

asio::awaitable<HttpResponse> plain_request(beast::tcp_stream& stream,
                                            const TransportConfig& config,
                                            http::request<http::string_body>& request) {
    co_await connect_tcp(stream, config);
    co_return co_await exchange(stream, config, request);
}

#if JOBCAST_CLI_TLS
asio::awaitable<HttpResponse> tls_request(beast::ssl_stream<beast::tcp_stream>& stream,
                                          const TransportConfig& config,
                                          http::request<http::string_body>& request) {
    co_await connect_tcp(beast::get_lowest_layer(stream), config);
    co_await tls_handshake(stream, config);
    co_return co_await exchange(stream, config, request);
}
#endif

// ---- WebSocket ----

template <class NextLayer>
class WebSocketStream final : public MessageStream {
    static constexpr bool kTls = !std::is_same_v<NextLayer, beast::tcp_stream>;

  public:
    // `keep` (the TLS context, or null) is held for as long as the stream
    // that `next_layer_args` may refer to.
    template <class... Args>
    WebSocketStream(const TransportConfig& config, std::shared_ptr<void> keep,
                    Args&&... next_layer_args)
        : config_(config),
          keep_(std::move(keep)),
          ws_(ioc_, std::forward<Args>(next_layer_args)...) {}

    void open() { run_task(ioc_, do_open(), config_.url); }

    void send(const std::string& text) override { run_task(ioc_, do_send(text), config_.url); }

    Incoming receive() override { return run_task(ioc_, do_receive(), config_.url); }

    void close() noexcept override {
        try {
            // Do not wait long for the server's half of the close handshake.
            auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::client);
            timeouts.handshake_timeout = kCloseTimeout;
            ws_.set_option(timeouts);
            run_task(ioc_, do_close(), config_.url);
        } catch (const std::exception&) {
            // Closing is a courtesy: the process is about to end either way.
        }
    }

  private:
    std::string target() const {
        std::string target = config_.url.target("/v1/ws");
        // Browsers cannot set headers on a WebSocket, so the broker also takes
        // the token in the query; we send both.
        if (!config_.token.empty()) target += "?access_token=" + percent_encode(config_.token);
        return target;
    }

    asio::awaitable<void> do_open() {
        auto& lowest = beast::get_lowest_layer(ws_);
        co_await connect_tcp(lowest, config_);
#if JOBCAST_CLI_TLS
        if constexpr (kTls) co_await tls_handshake(ws_.next_layer(), config_);
#endif
        // From here on the WebSocket times itself; the TCP timer must be off.
        lowest.expires_never();
        websocket::stream_base::timeout timeouts{};
        timeouts.handshake_timeout = config_.connect_timeout;
        timeouts.idle_timeout = config_.idle_timeout;
        timeouts.keep_alive_pings = true;
        ws_.set_option(timeouts);
        ws_.set_option(websocket::stream_base::decorator(
            [token = config_.token](websocket::request_type& request) {
                request.set(http::field::user_agent, kUserAgent);
                if (!token.empty()) request.set(http::field::authorization, "Bearer " + token);
            }));
        ws_.read_message_max(kMaxResponseBody);
        websocket::response_type response;
        auto [ec] = co_await ws_.async_handshake(response, config_.url.authority(), target(),
                                                 asio::as_tuple(asio::use_awaitable));
        if (ec == websocket::error::upgrade_declined) {
            const auto status = static_cast<int>(response.result_int());
            throw HandshakeRejected(status, http_error_message(status, response.body()) +
                                                " (HTTP " + std::to_string(status) + " from " +
                                                config_.url.authority() + ")");
        }
        if (ec) throw beast::system_error(ec);
        ws_.text(true);
    }

    asio::awaitable<void> do_send(const std::string& text) {
        co_await ws_.async_write(asio::buffer(text), asio::use_awaitable);
    }

    asio::awaitable<Incoming> do_receive() {
        buffer_.clear();
        auto [ec, bytes] = co_await ws_.async_read(buffer_, asio::as_tuple(asio::use_awaitable));
        if (ec == websocket::error::closed) {
            const auto& reason = ws_.reason();
            co_return ServerClosed{reason.code,
                                   std::string(reason.reason.data(), reason.reason.size())};
        }
        if (ec) throw beast::system_error(ec);
        co_return beast::buffers_to_string(buffer_.data());
    }

    asio::awaitable<void> do_close() {
        co_await ws_.async_close(websocket::close_code::normal, asio::use_awaitable);
    }

    TransportConfig config_;
    // Declared before the stream and destroyed after it: the stream's pending
    // timer lives in it.
    asio::io_context ioc_;
    std::shared_ptr<void> keep_;
    websocket::stream<NextLayer> ws_;
    beast::flat_buffer buffer_;
};

class WebSocketConnector final : public Connector {
  public:
    explicit WebSocketConnector(TransportConfig config) : config_(std::move(config)) {}

    std::unique_ptr<MessageStream> connect() override {
        if (config_.url.tls) {
#if JOBCAST_CLI_TLS
            auto tls = make_tls_context(config_);
            auto stream = std::make_unique<WebSocketStream<beast::ssl_stream<beast::tcp_stream>>>(
                config_, tls, *tls);
            stream->open();
            return stream;
#else
            throw ConnectionError(kNoTls);
#endif
        }
        auto stream = std::make_unique<WebSocketStream<beast::tcp_stream>>(config_, nullptr);
        stream->open();
        return stream;
    }

  private:
    TransportConfig config_;
};

}  // namespace

HttpResponse http_request(const TransportConfig& config, std::string_view method,
                          const std::string& target, const std::string& body,
                          const HttpHeaders& headers) {
    const auto verb = http::string_to_verb(method);
    if (verb == http::verb::unknown) throw std::invalid_argument("unknown HTTP method");
    http::request<http::string_body> request{verb, config.url.target(target), 11};
    request.set(http::field::host, config.url.authority());
    request.set(http::field::user_agent, kUserAgent);
    request.set(http::field::accept, "application/json");
    if (!config.token.empty()) request.set(http::field::authorization, "Bearer " + config.token);
    if (!body.empty()) request.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : headers)
        request.set(name, value);
    request.body() = body;
    request.prepare_payload();

    asio::io_context ioc;
    if (!config.url.tls) {
        beast::tcp_stream stream(ioc);
        return run_task(ioc, plain_request(stream, config, request), config.url);
    }
#if JOBCAST_CLI_TLS
    const auto tls = make_tls_context(config);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, *tls);
    return run_task(ioc, tls_request(stream, config, request), config.url);
#else
    throw ConnectionError(kNoTls);
#endif
}

std::unique_ptr<Connector> websocket_connector(TransportConfig config) {
    return std::make_unique<WebSocketConnector>(std::move(config));
}

bool tls_supported() {
    return JOBCAST_CLI_TLS != 0;
}

}  // namespace jobcast::cli
