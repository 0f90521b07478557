#include "web/http/http_server.hpp"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <stdexcept>
#include <thread>

#include "common/thread_name.hpp"
#include "protocol/client_api.hpp"
#include "protocol/json.hpp"
#include "web/http/http_session.hpp"
#include "web/http/log.hpp"
#include "web/security/audit.hpp"
#include "web/security/security.hpp"

namespace jobcast::web {

namespace {

struct HostPort {
    std::string host;
    std::string port;
};

HostPort split_host_port(const std::string& listen) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon + 1 == listen.size()) {
        throw std::runtime_error("http listen address \"" + listen + "\" is not HOST:PORT");
    }
    std::string host = listen.substr(0, colon);
    std::string port = listen.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);  // "[::1]:8080"
    }
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value > 65535 || host.empty()) {
        throw std::runtime_error("http listen address \"" + listen + "\" is not HOST:PORT");
    }
    return {host, port};
}

std::string format_endpoint(const tcp::endpoint& endpoint) {
    const auto address = endpoint.address();
    std::string host = address.to_string();
    if (address.is_v6()) host = "[" + host + "]";
    return host + ":" + std::to_string(endpoint.port());
}

// At most this many refused connections are answered at once; beyond, a
// refused connection is closed without an answer (each one holds a socket).
constexpr std::size_t kMaxRefusing = 16;
// What a refused connection may still send (its request) is read and dropped
// for this long, so the answer is not destroyed by a reset.
constexpr std::chrono::milliseconds kRefusalLinger{1000};

std::shared_ptr<const std::string> refusal_response(Limit limit) {
    auto response = [](const char* status, const char* retry, std::string body) {
        return std::make_shared<const std::string>(
            std::string("HTTP/1.1 ") + status +
            "\r\nServer: jobcast\r\nContent-Type: application/json\r\nRetry-After: " + retry +
            "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
            body);
    };
    static const auto overloaded = response(
        "503 Service Unavailable", "1",
        json::error_body("overloaded", "the broker has too many open connections; retry shortly"));
    static const auto per_ip = response(
        "429 Too Many Requests", "5",
        json::error_body("too_many_connections", "too many open connections from this address"));
    return limit == Limit::sockets_per_ip ? per_ip : overloaded;
}

// A connection refused at accept: writes the fixed answer, half-closes, reads
// and drops the request for a moment, and closes.
class RefusedConnection : public std::enable_shared_from_this<RefusedConnection> {
  public:
    RefusedConnection(tcp::socket&& socket, std::shared_ptr<const std::string> response,
                      std::shared_ptr<ServerShared> shared)
        : stream_(std::move(socket)), response_(std::move(response)), shared_(std::move(shared)) {
        ++shared_->refusing;
    }
    ~RefusedConnection() { --shared_->refusing; }

    void run() {
        stream_.expires_after(kRefusalLinger);
        net::async_write(stream_, net::buffer(*response_),
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             if (ec) return;
                             beast::error_code ignored;
                             self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                             self->drain();
                         });
    }

  private:
    void drain() {
        stream_.async_read_some(net::buffer(sink_),
                                [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                                    self->drained_ += n;
                                    if (ec || self->drained_ > 64 * 1024) return;
                                    self->drain();
                                });
    }

    beast::tcp_stream stream_;
    std::shared_ptr<const std::string> response_;
    std::shared_ptr<ServerShared> shared_;
    std::array<char, 4096> sink_{};
    std::size_t drained_ = 0;
};

}  // namespace

// One I/O thread's io_context. Its shutdown() (protected in Asio) destroys
// the handlers still queued while every io_context's services are alive: a
// handler may hold a session or a socket of another I/O thread.
class IoThreadContext : public net::io_context {
  public:
    IoThreadContext() : net::io_context(1) {}  // run by one thread
    void destroy_handlers() { shutdown(); }
};

struct HttpServer::Impl {
    Impl(HttpConfig config, Handler handler, Authenticator authenticator,
         std::shared_ptr<StreamingContext> streaming)
        : shared(std::make_shared<ServerShared>(std::move(config), std::move(handler),
                                                std::move(authenticator), std::move(streaming))),
          ios(make_ios(shared->config.io_threads)),
          acceptor(net::make_strand(*ios.front())),
          accept_retry(acceptor.get_executor()) {
        for (auto& io : ios)
            work.push_back(net::make_work_guard(*io));
        if (auto streaming = shared->streaming.load()) streaming->attach(executors());
    }
    ~Impl() {
        // The hub's lanes and the keepalive sweeps are strands and timers on
        // `ios`: none may outlive them (the sessions' own references go with
        // the io_contexts' handlers).
        if (auto streaming = shared->streaming.load()) {
            streaming->lanes->release();
            streaming->keepalive_sweeps->release();
        }
        for (auto& io : ios)
            io->destroy_handlers();
    }

    static std::vector<std::unique_ptr<IoThreadContext>> make_ios(std::size_t count) {
        std::vector<std::unique_ptr<IoThreadContext>> made;
        for (std::size_t i = 0; i < std::max<std::size_t>(1, count); ++i)
            made.push_back(std::make_unique<IoThreadContext>());
        return made;
    }
    std::vector<IoExecutor> executors() const {
        std::vector<IoExecutor> out;
        for (const auto& io : ios)
            out.push_back(io->get_executor());
        return out;
    }
    // The I/O threads in turn, counted by `turn` (connections and timers
    // each their own, so long-poll timers do not skew where connections go).
    net::io_context& next_io(std::atomic<std::size_t>& turn) {
        return *ios[turn.fetch_add(1, std::memory_order_relaxed) % ios.size()];
    }

    void listen();
    void do_accept();
    void on_accept(beast::error_code ec, tcp::socket socket);
    void run_io(net::io_context& io);
    void notify_sessions(bool force);
    template <class Done>
    bool wait_until(Done done, std::chrono::milliseconds timeout);

    // Declared first, destroyed last: sessions destroyed with an io_context
    // still deregister from it.
    std::shared_ptr<ServerShared> shared;
    // One per I/O thread, each run by that thread alone: a connection, its
    // session, strand, hub lane and keepalive sweep stay on one thread, so
    // no completion is handed to another core.
    std::vector<std::unique_ptr<IoThreadContext>> ios;
    // A session waiting for its Reply has no I/O outstanding; without these
    // an io_context could run out of work (during stop()) and never run the
    // write.
    std::vector<net::executor_work_guard<net::io_context::executor_type>> work;
    std::atomic<std::size_t> accept_turn{0};
    std::atomic<std::size_t> timer_turn{0};
    tcp::acceptor acceptor;          // on the first io_context
    net::steady_timer accept_retry;  // on the acceptor's strand
    std::vector<std::thread> threads;
    std::string bound;
    bool started = false;
    bool stopped = false;
};

void HttpServer::Impl::listen() {
    HostPort where = split_host_port(shared->config.listen);
    beast::error_code ec;
    tcp::endpoint endpoint;
    auto address = net::ip::make_address(where.host, ec);
    if (!ec) {
        endpoint = tcp::endpoint(address, static_cast<unsigned short>(std::stoi(where.port)));
    } else {
        tcp::resolver resolver(*ios.front());
        auto results = resolver.resolve(where.host, where.port, ec);
        if (ec || results.empty()) {
            throw std::runtime_error("http listen address \"" + shared->config.listen +
                                     "\": cannot resolve host: " + ec.message());
        }
        endpoint = results.begin()->endpoint();
    }
    auto check = [&](const char* step) {
        if (ec) {
            throw std::runtime_error("cannot listen on " + shared->config.listen + " (" + step +
                                     "): " + ec.message());
        }
    };
    acceptor.open(endpoint.protocol(), ec);
    check("open");
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
    check("reuse_address");
    acceptor.bind(endpoint, ec);
    check("bind");
    acceptor.listen(net::socket_base::max_listen_connections, ec);
    check("listen");
    bound = format_endpoint(acceptor.local_endpoint());
    // Before any request: a Host naming the bound address is served.
    if (auto& security = shared->config.security) {
        security->note_bound_address(acceptor.local_endpoint().address().to_string());
    }
}

void HttpServer::Impl::do_accept() {
    // Each connection gets its own strand on the next I/O thread's
    // io_context, where it stays: its handlers never run concurrently, while
    // different connections use all I/O threads.
    acceptor.async_accept(
        net::make_strand(next_io(accept_turn)),
        [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void HttpServer::Impl::on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;  // stop()
    if (ec) {
        // Typically EMFILE: back off briefly instead of spinning on the error.
        log().warn("accept failed error={}", audit_quote(ec.message()));
        accept_retry.expires_after(std::chrono::milliseconds(50));
        accept_retry.async_wait([this](beast::error_code wait_ec) {
            if (!wait_ec && acceptor.is_open()) do_accept();
        });
        return;
    }
    if (shared->stopping) return;  // the socket closes as it goes out of scope
    std::shared_ptr<void> ticket;
    if (auto& security = shared->config.security) {
        beast::error_code peer_ec;
        auto peer = socket.remote_endpoint(peer_ec);
        auto admitted =
            security->admit_connection(peer_ec ? "unknown" : peer.address().to_string());
        if (!admitted.ticket) {
            // Over the global or per-IP cap: a short answer in plain HTTP, or,
            // on a TLS port or with too many refusals in flight, a close.
            if (!shared->config.tls && shared->refusing < kMaxRefusing) {
                std::make_shared<RefusedConnection>(std::move(socket),
                                                    refusal_response(admitted.limit), shared)
                    ->run();
            }
            return do_accept();
        }
        ticket = std::move(admitted.ticket);
    }
    std::make_shared<HttpSession>(std::move(socket), shared, std::move(ticket))->run();
    do_accept();
}

void HttpServer::Impl::run_io(net::io_context& io) {
    // Handlers catch their own errors; this only keeps a thread alive if one
    // slipped through, so the server degrades instead of aborting.
    for (;;) {
        try {
            io.run();
            return;
        } catch (const std::exception& e) {
            log().error("http io thread caught error={}", audit_quote(e.what()));
        }
    }
}

void HttpServer::Impl::notify_sessions(bool force) {
    std::vector<std::shared_ptr<HttpSession>> sessions;
    {
        std::lock_guard lock(shared->sessions_mutex);
        sessions.reserve(shared->sessions.size());
        for (auto& [id, weak] : shared->sessions) {
            if (auto session = weak.lock()) sessions.push_back(std::move(session));
        }
    }
    for (auto& session : sessions)
        session->notify_stop(force);
}

template <class Done>
bool HttpServer::Impl::wait_until(Done done, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

HttpServer::HttpServer(HttpConfig config, Handler handler, Authenticator authenticator,
                       std::shared_ptr<StreamingContext> streaming)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(handler), std::move(authenticator),
                                   std::move(streaming))) {}

void HttpServer::schedule(std::chrono::milliseconds delay, std::function<void()> task) {
    auto timer = std::make_shared<net::steady_timer>(impl_->next_io(impl_->timer_turn), delay);
    timer->async_wait([timer, task = std::move(task)](beast::error_code) { task(); });
}

HttpServer::~HttpServer() {
    stop();
}

void HttpServer::start() {
    if (impl_->started) throw std::logic_error("HttpServer::start called twice");
    impl_->listen();
    impl_->started = true;
    impl_->do_accept();
    impl_->threads.reserve(impl_->ios.size());
    for (auto& io : impl_->ios) {
        impl_->threads.emplace_back([impl = impl_.get(), &io = *io] {
            name_this_thread("jc-http-io");
            impl->run_io(io);
        });
    }
    log().info("http server started address={} io_threads={}", impl_->bound, impl_->ios.size());
}

std::string HttpServer::bound_endpoint() const {
    return impl_->bound;
}

void HttpServer::stop() {
    Impl& impl = *impl_;
    if (!impl.started || impl.stopped) return;
    impl.stopped = true;
    impl.shared->stopping = true;

    net::post(impl.acceptor.get_executor(), [&impl] {
        beast::error_code ec;
        impl.acceptor.close(ec);
        impl.accept_retry.cancel();
    });
    // Streams are told to reconnect elsewhere-or-later (1012) and resume.
    for (auto& stream : impl.shared->live_streams())
        stream->request_close(client_api::kCloseRestart);
    // Idle connections close now; busy ones after their response.
    impl.notify_sessions(false);
    bool drained = impl.wait_until(
        [&] { return impl.shared->live_sessions() == 0 && impl.shared->live_streams().empty(); },
        impl.shared->config.stop_timeout);
    if (!drained) {
        log().warn("http stop: closing connections still open after {} ms sessions={}",
                   impl.shared->config.stop_timeout.count(), impl.shared->live_sessions());
        impl.notify_sessions(true);
    }
    // A Reply still held by the store or the blocking pool posts into its
    // session's io_context when called, so every io_context must outlive
    // every one of them.
    while (!impl.wait_until([&] { return impl.shared->pending_replies == 0; },
                            std::chrono::seconds(5))) {
        log().warn("http stop: waiting for pending replies={}",
                   impl.shared->pending_replies.load());
    }
    for (auto& work : impl.work)
        work.reset();
    for (auto& io : impl.ios)
        io->stop();
    for (auto& thread : impl.threads) {
        if (thread.joinable()) thread.join();
    }
    impl.threads.clear();
    log().info("http server stopped address={}", impl.bound);
}

void HttpServer::serve_streams(std::shared_ptr<StreamingContext> streaming,
                               streams::DurableStreams* durable) {
    impl_->shared->durable_streams.store(durable);
    // Lanes and sweeps exist before the first session can pick them.
    if (streaming) streaming->attach(impl_->executors());
    impl_->shared->streaming.store(std::move(streaming));
}

std::vector<RequestCount> HttpServer::request_counts() const {
    return impl_->shared->counter.snapshot();
}

}  // namespace jobcast::web
