// Internal to web/: one client connection's byte stream, plain TCP or TLS over
// it, so the HTTP, WebSocket and SSE sessions are written once for both. The
// choice is made per connection (after the first bytes, see HttpSession::run)
// and costs one branch per read or write. Includes Beast and Asio's SSL: only
// the session .cpp files include it.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <memory>
#include <utility>
#include <variant>

namespace jobcast::web {

class FlexStream {
  public:
    using Plain = boost::beast::tcp_stream;
    using Tls = boost::beast::ssl_stream<boost::beast::tcp_stream>;
    using executor_type = Plain::executor_type;

    explicit FlexStream(boost::asio::ip::tcp::socket&& socket)
        : stream_(std::in_place_type<Plain>, std::move(socket)) {}
    FlexStream(FlexStream&&) = default;

    // Puts TLS over the TCP stream, before a TLS byte was consumed. `context`
    // is kept for as long as the stream (a certificate reload swaps contexts
    // under live connections).
    void start_tls(std::shared_ptr<boost::asio::ssl::context> context) {
        Plain plain = std::move(std::get<Plain>(stream_));
        stream_.emplace<Tls>(std::move(plain), *context);
        context_ = std::move(context);
    }
    bool is_tls() const { return std::holds_alternative<Tls>(stream_); }
    Tls& tls() { return std::get<Tls>(stream_); }

    // The TCP stream (its socket and deadline), whichever the layer above it.
    // Named next_layer() so beast::get_lowest_layer() finds it.
    Plain& next_layer() {
        if (auto* tls = std::get_if<Tls>(&stream_)) return tls->next_layer();
        return std::get<Plain>(stream_);
    }
    boost::asio::ip::tcp::socket& socket() { return next_layer().socket(); }
    executor_type get_executor() { return next_layer().get_executor(); }
    template <class Duration>
    void expires_after(Duration d) {
        next_layer().expires_after(d);
    }
    void expires_never() { next_layer().expires_never(); }
    void close() { next_layer().close(); }

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const MutableBuffers& b) {
                if (auto* tls = std::get_if<Tls>(&stream_)) {
                    tls->async_read_some(b, std::move(handler));
                } else {
                    std::get<Plain>(stream_).async_read_some(b, std::move(handler));
                }
            },
            token, buffers);
    }

    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const ConstBuffers& b) {
                if (auto* tls = std::get_if<Tls>(&stream_)) {
                    tls->async_write_some(b, std::move(handler));
                } else {
                    std::get<Plain>(stream_).async_write_some(b, std::move(handler));
                }
            },
            token, buffers);
    }

    // How a WebSocket close ends the connection: TLS close_notify first, then
    // TCP, as Beast does for each layer.
    friend void teardown(boost::beast::role_type role, FlexStream& stream,
                         boost::system::error_code& ec) {
        using boost::beast::websocket::teardown;
        if (auto* tls = std::get_if<Tls>(&stream.stream_)) {
            teardown(role, *tls, ec);
        } else {
            teardown(role, std::get<Plain>(stream.stream_), ec);
        }
    }
    template <class Handler>
    friend void async_teardown(boost::beast::role_type role, FlexStream& stream,
                               Handler&& handler) {
        using boost::beast::websocket::async_teardown;
        if (auto* tls = std::get_if<Tls>(&stream.stream_)) {
            async_teardown(role, *tls, std::forward<Handler>(handler));
        } else {
            async_teardown(role, std::get<Plain>(stream.stream_), std::forward<Handler>(handler));
        }
    }

  private:
    std::variant<Plain, Tls> stream_;
    std::shared_ptr<boost::asio::ssl::context> context_;
};

}  // namespace jobcast::web
