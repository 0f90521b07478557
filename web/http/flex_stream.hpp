// Internal to web/: one client connection's byte stream, plain TCP or TLS over
// it, so the HTTP, WebSocket and SSE sessions are written once for both. The
// choice is made per connection from its first byte (see HttpSession::run)
// and costs one branch per read or write. Includes Beast, Asio and OpenSSL:
// only the session .cpp files include it.
//
// TLS runs straight on the socket: OpenSSL reads and writes the non-blocking
// file descriptor and Asio only waits for readiness. asio::ssl::stream keeps
// two 17 KiB record buffers and a 2 x 17 KiB BIO pair per connection for its
// whole life (about 70 KiB an idle WebSocket); here an idle connection holds
// only OpenSSL's session state, since SSL_MODE_RELEASE_BUFFERS frees the
// record buffers between records. Reads and writes may be in flight at once
// (one of each), as with any Asio stream; every call runs on the session's
// strand, so OpenSSL never sees two threads.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <cerrno>
#include <climits>
#include <memory>
#include <string>
#include <utility>

namespace jobcast::web {

namespace flex_detail {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

// One connection's OpenSSL state. On the heap: its address, and the timer's,
// survive moves of the FlexStream that owns it.
struct TlsState {
    TlsState(tcp::socket& socket, std::shared_ptr<net::ssl::context> context)
        : socket(&socket), timer(socket.get_executor()), context(std::move(context)) {
        ssl = SSL_new(this->context->native_handle());
        if (ssl == nullptr) throw std::bad_alloc();
        SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
        SSL_set_accept_state(ssl);
    }
    ~TlsState() { SSL_free(ssl); }
    TlsState(const TlsState&) = delete;
    TlsState& operator=(const TlsState&) = delete;

    // The tcp_stream's socket. Moving a tcp_stream moves its socket to a new
    // object, so FlexStream's move constructor points this at the new one.
    tcp::socket* socket;
    net::steady_timer timer;
    std::shared_ptr<net::ssl::context> context;  // kept while the connection lives
    SSL* ssl = nullptr;
    bool timed_out = false;
    bool attached = false;  // SSL_set_fd done (after the first byte said TLS)
    unsigned char peeked = 0;
};

// The error of an OpenSSL call that returned `result`, or "wait for the
// socket" (want_read / want_write), or done.
enum class Next { done, want_read, want_write, failed };

inline Next classify(SSL* ssl, int result, int saved_errno, beast::error_code& ec) {
    switch (SSL_get_error(ssl, result)) {
        case SSL_ERROR_NONE:
            return Next::done;
        case SSL_ERROR_WANT_READ:
            return Next::want_read;
        case SSL_ERROR_WANT_WRITE:
            return Next::want_write;
        case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
            ec = net::error::eof;
            return Next::failed;
        case SSL_ERROR_SYSCALL:
            ec = saved_errno != 0 ? beast::error_code(saved_errno, boost::system::system_category())
                                  : beast::error_code(net::ssl::error::stream_truncated);
            ERR_clear_error();
            return Next::failed;
        default: {
            const unsigned long code = ERR_get_error();
            ERR_clear_error();
            if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                ec = net::ssl::error::stream_truncated;
            } else {
                ec = beast::error_code(static_cast<int>(code), net::error::get_ssl_category());
            }
            return Next::failed;
        }
    }
}

// A composed operation that calls `step(ssl)` until it succeeds (a positive
// result) or fails, waiting for the socket in between. Never completes inside
// the initiating call.
template <class Step>
class TlsOp {
  public:
    // `empty`: a read or write of no bytes, which completes at once with 0.
    TlsOp(std::shared_ptr<TlsState> state, Step step, bool empty)
        : state_(std::move(state)), step_(std::move(step)), empty_(empty) {}

    template <class Self>
    void operator()(Self& self, beast::error_code ec = {}) {
        if (finished_) return self.complete(result_, count_);
        if (empty_) return finish(self, {}, 0);
        if (ec) {
            if (ec == net::error::operation_aborted && state_->timed_out)
                ec = beast::error::timeout;
            return finish(self, ec, 0);
        }
        // OpenSSL holds the bare descriptor number: once the socket is closed
        // that number may already belong to another connection.
        if (!state_->socket->is_open()) return finish(self, net::error::bad_descriptor, 0);
        ERR_clear_error();
        errno = 0;
        const int result = step_(state_->ssl);
        const int saved_errno = errno;
        if (result > 0) return finish(self, {}, static_cast<std::size_t>(result));
        beast::error_code failure;
        switch (classify(state_->ssl, result, saved_errno, failure)) {
            case Next::want_read:
                waited_ = true;
                return state_->socket->async_wait(tcp::socket::wait_read, std::move(self));
            case Next::want_write:
                waited_ = true;
                return state_->socket->async_wait(tcp::socket::wait_write, std::move(self));
            case Next::done:
                return finish(self, {}, 0);
            case Next::failed:
                return finish(self, failure, 0);
        }
    }

  private:
    template <class Self>
    void finish(Self& self, beast::error_code ec, std::size_t count) {
        if (waited_) return self.complete(ec, count);
        // Done on the first try: complete from the executor, never inline.
        finished_ = true;
        result_ = ec;
        count_ = count;
        net::post(std::move(self));
    }

    std::shared_ptr<TlsState> state_;
    Step step_;
    bool empty_;
    bool waited_ = false;
    bool finished_ = false;
    beast::error_code result_;
    std::size_t count_ = 0;
};

template <class Token, class Step>
auto async_tls_op(const std::shared_ptr<TlsState>& state, Step step, Token&& token,
                  bool empty = false) {
    return net::async_compose<Token, void(beast::error_code, std::size_t)>(
        TlsOp<Step>(state, std::move(step), empty), token, *state->socket);
}

inline int clamp(std::size_t size) {
    return size > static_cast<std::size_t>(INT_MAX) ? INT_MAX : static_cast<int>(size);
}

}  // namespace flex_detail

class FlexStream {
  public:
    using Plain = boost::beast::tcp_stream;
    using executor_type = Plain::executor_type;

    explicit FlexStream(boost::asio::ip::tcp::socket&& socket) : plain_(std::move(socket)) {}
    FlexStream(FlexStream&& other) : plain_(std::move(other.plain_)), tls_(std::move(other.tls_)) {
        if (tls_) tls_->socket = &plain_.socket();
    }

    // TLS is configured on this port: from here on the deadline is the TLS
    // timer's, and async_detect_tls() may look at the first byte.
    void prepare_tls(std::shared_ptr<boost::asio::ssl::context> context) {
        tls_ = std::make_shared<flex_detail::TlsState>(plain_.socket(), std::move(context));
    }
    // The first byte was not TLS: a plain connection after all.
    void drop_tls() {
        if (tls_) tls_->timer.cancel();
        tls_.reset();
    }
    bool is_tls() const { return tls_ != nullptr; }

    // Whether the client's first byte starts a TLS handshake (0x16), without
    // consuming it. Handler: void(error_code, bool is_tls).
    template <class Handler>
    void async_detect_tls(Handler handler) {
        auto state = tls_;
        state->socket->async_receive(
            boost::asio::buffer(&state->peeked, 1), boost::asio::socket_base::message_peek,
            [state, handler = std::move(handler)](boost::beast::error_code ec,
                                                  std::size_t n) mutable {
                if (ec == boost::asio::error::operation_aborted && state->timed_out) {
                    ec = boost::beast::error::timeout;
                }
                if (!ec && n == 0) ec = boost::asio::error::eof;
                handler(ec, !ec && state->peeked == 0x16);
            });
    }

    // Handler: void(error_code, std::size_t).
    template <class Token>
    auto async_handshake(Token&& token) {
        attach();
        return flex_detail::async_tls_op(
            tls_, [](SSL* ssl) { return SSL_do_handshake(ssl); }, std::forward<Token>(token));
    }

    // Sends close_notify (without waiting for the peer's). Handler:
    // void(error_code, std::size_t).
    template <class Token>
    auto async_tls_shutdown(Token&& token) {
        return flex_detail::async_tls_op(
            tls_,
            [](SSL* ssl) {
                const int r = SSL_shutdown(ssl);
                return r >= 0 ? 1 : r;
            },
            std::forward<Token>(token));
    }

    // The TCP stream (its socket and, for plain connections, its deadline).
    // Named next_layer() so beast::get_lowest_layer() finds it.
    Plain& next_layer() { return plain_; }
    boost::asio::ip::tcp::socket& socket() { return plain_.socket(); }
    executor_type get_executor() { return plain_.get_executor(); }

    template <class Duration>
    void expires_after(Duration d) {
        if (!tls_) return plain_.expires_after(d);
        tls_->timed_out = false;
        tls_->timer.expires_after(d);
        tls_->timer.async_wait(
            [weak = std::weak_ptr<flex_detail::TlsState>(tls_)](boost::beast::error_code ec) {
                auto state = weak.lock();
                if (ec || !state) return;
                state->timed_out = true;
                boost::beast::error_code ignored;
                state->socket->cancel(ignored);  // pending waits end with `timeout`
            });
    }
    void expires_never() {
        if (!tls_) return plain_.expires_never();
        tls_->timer.cancel();
        tls_->timed_out = false;
    }
    void close() {
        if (tls_) tls_->timer.cancel();
        plain_.close();
    }

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        if (!tls_) return plain_.async_read_some(buffers, std::forward<Token>(token));
        // OpenSSL reads one record at a time: the first non-empty buffer is enough.
        boost::asio::mutable_buffer target;
        for (auto b : boost::beast::buffers_range_ref(buffers)) {
            if (b.size() > 0) {
                target = b;
                break;
            }
        }
        return flex_detail::async_tls_op(
            tls_,
            [target](SSL* ssl) {
                return SSL_read(ssl, target.data(), flex_detail::clamp(target.size()));
            },
            std::forward<Token>(token), target.size() == 0);
    }

    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        if (!tls_) return plain_.async_write_some(buffers, std::forward<Token>(token));
        // Small pieces (a WebSocket header and its payload, an HTTP header and
        // body) go out as one record: one syscall, less framing.
        constexpr std::size_t kCoalesce = 64 * 1024;
        std::size_t pieces = 0;
        std::size_t total = 0;
        boost::asio::const_buffer first;
        for (auto b : boost::beast::buffers_range_ref(buffers)) {
            if (b.size() == 0) continue;
            if (pieces++ == 0) first = b;
            total += b.size();
        }
        std::shared_ptr<std::string> joined;
        if (pieces > 1 && total <= kCoalesce) {
            joined = std::make_shared<std::string>();
            joined->reserve(total);
            for (auto b : boost::beast::buffers_range_ref(buffers))
                joined->append(static_cast<const char*>(b.data()), b.size());
            first = boost::asio::buffer(*joined);
        }
        return flex_detail::async_tls_op(
            tls_,
            [first, joined](SSL* ssl) {
                return SSL_write(ssl, first.data(), flex_detail::clamp(first.size()));
            },
            std::forward<Token>(token), first.size() == 0);
    }

    // How a WebSocket close ends the connection: close_notify, then the TCP
    // half-close (the session closes the socket after).
    friend void teardown(boost::beast::role_type role, FlexStream& stream,
                         boost::system::error_code& ec) {
        if (stream.tls_) {
            if (!stream.socket().is_open()) {
                ec = boost::asio::error::bad_descriptor;
                return;
            }
            ERR_clear_error();
            SSL_shutdown(stream.tls_->ssl);
            ERR_clear_error();
            stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
            return;
        }
        boost::beast::websocket::teardown(role, stream.socket(), ec);
    }
    template <class Handler>
    friend void async_teardown(boost::beast::role_type role, FlexStream& stream,
                               Handler&& handler) {
        if (!stream.tls_) {
            boost::beast::websocket::async_teardown(role, stream.socket(),
                                                    std::forward<Handler>(handler));
            return;
        }
        stream.async_tls_shutdown(
            [&socket = stream.socket(), handler = std::forward<Handler>(handler)](
                boost::beast::error_code ec, std::size_t) mutable {
                boost::beast::error_code ignored;
                socket.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
                std::move(handler)(ec);
            });
    }

  private:
    void attach() {
        if (tls_->attached) return;
        tls_->attached = true;
        plain_.socket().non_blocking(true);
        SSL_set_fd(tls_->ssl, static_cast<int>(plain_.socket().native_handle()));
    }

    Plain plain_;
    std::shared_ptr<flex_detail::TlsState> tls_;  // null: plain TCP
};

}  // namespace jobcast::web
