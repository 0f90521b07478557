#include "web/http/http_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <exception>
#include <utility>

#include "protocol/json.hpp"
#include "web/http/beast_request.hpp"
#include "web/http/log.hpp"
#include "web/http/query.hpp"
#include "web/http/routes.hpp"
#include "web/http/tls.hpp"
#include "web/security/audit.hpp"
#include "web/security/security.hpp"
#include "web/streams/stream_sse.hpp"

#ifndef JOBCAST_VERSION
#define JOBCAST_VERSION "dev"
#endif

namespace jobcast::web {

namespace {

// Label for requests too broken to have a target we can route.
constexpr std::string_view kMalformedRoute = "malformed";
// Upper bound on what linger() discards after an error response.
constexpr std::size_t kMaxLingerBytes = 16 * 1024 * 1024;

bool is_expected_disconnect(beast::error_code ec) {
    return ec == net::error::operation_aborted || ec == net::error::eof ||
           ec == net::error::connection_reset || ec == net::error::broken_pipe ||
           ec == net::error::not_connected || ec == beast::error::timeout ||
           ec == net::ssl::error::stream_truncated || ec == http::error::end_of_stream ||
           ec == http::error::partial_message;
}

bool is_http_parse_error(beast::error_code ec) {
    static const auto& category = http::make_error_code(http::error::bad_method).category();
    return ec.category() == category;
}

std::string endpoint_string(const tcp::endpoint& endpoint) {
    const auto address = endpoint.address();
    std::string host = address.to_string();
    if (address.is_v6()) host = "[" + host + "]";
    return host + ":" + std::to_string(endpoint.port());
}

// Hands one request's Reply to the Handler and guarantees it is answered once:
// the first call posts the response to the session's strand; a Reply dropped
// without being called answers 500 rather than leaving the client hanging and
// stop() waiting forever.
class PendingReply {
  public:
    PendingReply(std::shared_ptr<ServerShared> shared, std::function<void(HttpResponse)> deliver)
        : shared_(std::move(shared)), deliver_(std::move(deliver)) {
        ++shared_->pending_replies;
    }
    ~PendingReply() {
        if (!replied_.exchange(true)) {
            log().error("request dropped without a reply; answering 500");
            deliver_(HttpResponse{500,
                                  "application/json",
                                  json::error_body("internal", "request was not answered"),
                                  {}});
        }
        --shared_->pending_replies;
    }
    PendingReply(const PendingReply&) = delete;
    PendingReply& operator=(const PendingReply&) = delete;

    void reply(HttpResponse response) {
        if (replied_.exchange(true)) {
            log().error("reply called twice; second response dropped status={}", response.status);
            return;
        }
        deliver_(std::move(response));
    }

  private:
    std::shared_ptr<ServerShared> shared_;
    std::function<void(HttpResponse)> deliver_;
    std::atomic<bool> replied_{false};
};

}  // namespace

void ServerShared::add_stream(const std::shared_ptr<StreamSession>& stream) {
    std::lock_guard lock(streams_mutex);
    // Forget the ones that ended, so the list stays as long as the live set.
    std::erase_if(streams, [](const auto& weak) { return weak.expired(); });
    streams.push_back(stream);
}

std::vector<std::shared_ptr<StreamSession>> ServerShared::live_streams() {
    std::lock_guard lock(streams_mutex);
    std::vector<std::shared_ptr<StreamSession>> out;
    for (auto& weak : streams) {
        if (auto s = weak.lock()) out.push_back(std::move(s));
    }
    return out;
}

std::size_t ServerShared::live_sessions() {
    std::lock_guard lock(sessions_mutex);
    return sessions.size();
}

HttpSession::HttpSession(tcp::socket&& socket, std::shared_ptr<ServerShared> shared,
                         std::shared_ptr<void> ticket)
    : stream_(std::move(socket)),
      shared_(std::move(shared)),
      ticket_(std::move(ticket)),
      id_(shared_->next_connection++) {
    beast::error_code ec;
    auto peer = stream_.socket().remote_endpoint(ec);
    remote_ = ec ? "unknown" : endpoint_string(peer);
    // Small responses must not wait for Nagle (40 ms stalls with delayed ACKs).
    stream_.socket().set_option(tcp::no_delay(true), ec);
}

HttpSession::~HttpSession() {
    std::lock_guard lock(shared_->sessions_mutex);
    shared_->sessions.erase(id_);
}

void HttpSession::run() {
    {
        std::lock_guard lock(shared_->sessions_mutex);
        shared_->sessions.emplace(id_, weak_from_this());
    }
    log().debug("connection opened conn={} remote={}", id_, remote_);
    // Start on the strand: from here on every handler of this session runs there.
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
        if (self->shared_->stopping) return self->fail(net::error::operation_aborted, "start");
        if (self->shared_->config.tls) {
            self->stream_.prepare_tls(self->shared_->config.tls->context());
            return self->detect_tls();
        }
        self->do_read();
    });
}

// ---- TLS -------------------------------------------------------------------

void HttpSession::detect_tls() {
    phase_ = Phase::reading;
    // The handshake shares the request deadline: a client that connects and
    // says nothing is closed like an idle keep-alive connection.
    stream_.expires_after(shared_->config.read_timeout);
    stream_.async_detect_tls(
        beast::bind_front_handler(&HttpSession::on_detect_tls, shared_from_this()));
}

void HttpSession::on_detect_tls(beast::error_code ec, bool is_tls) {
    if (ec) return fail(ec, "tls detect");  // closed, or silent until the deadline
    if (!is_tls) {
        stream_.drop_tls();
        // As nginx does: the client learns why, in words it can read.
        count_tls_failure(TlsFailure::plaintext, "plain HTTP on the TLS port");
        route_ = std::string(kMalformedRoute);
        return reject(400, "tls_required",
                      "this port speaks TLS: use https:// or wss:// (plain HTTP is refused)");
    }
    stream_.async_handshake(
        beast::bind_front_handler(&HttpSession::on_handshake, shared_from_this()));
}

void HttpSession::on_handshake(beast::error_code ec, std::size_t) {
    if (ec) {
        if (phase_ == Phase::closed) return fail(ec, "tls handshake");  // stop()
        phase_ = Phase::closed;
        count_tls_failure(ec == beast::error::timeout ? TlsFailure::timeout : TlsFailure::handshake,
                          ec.message());
        return;
    }
    do_read();
}

void HttpSession::count_tls_failure(TlsFailure failure, std::string_view detail) {
    log().debug("tls refused conn={} remote={} detail={}", id_, remote_, audit_quote(detail));
    if (auto& security = shared_->config.security) {
        security->count_tls_failure(failure, remote_, detail);
    }
}

void HttpSession::notify_stop(bool force) {
    net::post(stream_.get_executor(), [self = shared_from_this(), force] { self->on_stop(force); });
}

void HttpSession::on_stop(bool force) {
    if (phase_ == Phase::closed) return;
    if (force || phase_ == Phase::reading || phase_ == Phase::lingering) {
        // Cancels the pending operation; its handler ends the session. A
        // response that arrives later for a force-closed session is dropped.
        phase_ = Phase::closed;
        stream_.close();
    }
    // Otherwise send() sees shared_->stopping and closes after the response.
}

// ---- reading ---------------------------------------------------------------

void HttpSession::do_read() {
    phase_ = Phase::reading;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->config.header_limit));
    parser_->body_limit(shared_->config.body_limit);
    // One deadline for the whole request (and for an idle keep-alive connection).
    stream_.expires_after(shared_->config.read_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&HttpSession::on_read_header, shared_from_this()));
}

void HttpSession::on_read_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec, "read header");
    if (parser_->is_done()) return on_request();
    const auto& request = parser_->get();
    // Clients that wait for "100 Continue" before sending a body (curl does for
    // large bodies) get it now that the header passed the limits.
    if (request.version() >= 11 && beast::iequals(request[http::field::expect], "100-continue")) {
        continue_response_ = {};
        continue_response_.version(request.version());
        continue_response_.result(http::status::continue_);
        return http::async_write(
            stream_, continue_response_,
            beast::bind_front_handler(&HttpSession::on_continue_written, shared_from_this()));
    }
    read_body();
}

void HttpSession::on_continue_written(beast::error_code ec, std::size_t) {
    if (ec) return fail(ec, "write continue");
    read_body();
}

void HttpSession::read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_read_body, shared_from_this()));
}

void HttpSession::on_read_body(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec, "read body");
    on_request();
}

void HttpSession::on_read_error(beast::error_code ec, const char* what) {
    if (phase_ == Phase::closed) return fail(ec, what);
    const auto& partial = parser_->get();
    target_ = std::string(partial.target());
    method_ = std::string(partial.method_string());
    route_ = target_.empty() ? std::string(kMalformedRoute) : std::string(route_label(target_));
    if (ec == http::error::body_limit) {
        if (auto& security = shared_->config.security) {
            security->count_limit(Limit::body_size, "", remote_);
        }
        return reject(
            413, "payload_too_large",
            "request body exceeds " + std::to_string(shared_->config.body_limit) + " bytes");
    }
    if (ec == http::error::header_limit) {
        route_ = std::string(kMalformedRoute);
        return reject(
            431, "header_too_large",
            "request header exceeds " + std::to_string(shared_->config.header_limit) + " bytes");
    }
    if (ec == beast::error::timeout && (buffer_.size() > 0 || parser_->got_some())) {
        // Part of a request, then nothing for read_timeout (slowloris, or a
        // client that died mid-request). The socket is already closed, so
        // there is no 408 to send; it is counted as one, as nginx logs it.
        shared_->counter.add(route_, 408);
        log().debug("request timed out conn={} remote={} received={} target={}", id_, remote_,
                    buffer_.size(), log_target(target_));
        return fail(ec, what);
    }
    if (is_http_parse_error(ec) && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
        return reject(400, "invalid_request", "malformed HTTP request: " + ec.message());
    }
    fail(ec, what);
}

// ---- answering -------------------------------------------------------------

void HttpSession::on_request() {
    phase_ = Phase::handling;
    // Nothing is read or written until the handler answers; its own work is
    // bounded elsewhere (store, blocking pool).
    stream_.expires_never();
    started_ = std::chrono::steady_clock::now();

    http::request<http::string_body> message = parser_->release();
    version_ = message.version();
    keep_alive_ = message.keep_alive();
    linger_after_write_ = false;

    HttpRequest request = to_http_request(message);
    request.remote = remote_;
    method_ = request.method;
    target_ = request.target;
    route_ = std::string(route_label(target_));
    cors_origin_.reset();
    if (auto answer = check_origin(request)) return send(std::move(*answer));

    // A WebSocket upgrade or an SSE request goes through its admission
    // (web/stream/admission.hpp, web/streams/stream_sse.hpp), not to the Handler.
    if (auto streaming = shared_->streaming.load()) {
        if (auto* durable = shared_->durable_streams.load(); durable && streams::wants_sse(request))
            return streams::admit_sse(shared_from_this(), streaming, *durable,
                                      shared_->config.security, std::move(request));
        if (admit_stream(shared_from_this(), streaming, shared_->config.security, request, message))
            return;
    }
    dispatch(std::move(request));
}

std::optional<HttpResponse> HttpSession::authenticate(HttpRequest& request) {
    try {
        return shared_->authenticator(request);
    } catch (const std::exception& e) {
        log().error("authenticator failed conn={} error={}", id_, audit_quote(e.what()));
        return HttpResponse{
            500, "application/json", json::error_body("internal", "authentication failed"), {}};
    }
}

std::optional<HttpResponse> HttpSession::check_origin(const HttpRequest& request) {
    const auto& security = shared_->config.security;
    if (!security) return std::nullopt;
    // Every route (the API, streams, the UI, /healthz, /metrics): a page
    // whose name was re-pointed at this broker carries that name in Host.
    if (auto refused = security->check_host(request)) {
        log().info("host refused conn={} remote={} host={}", id_, remote_,
                   audit_quote(request.header("Host").value_or("")));
        return refused;
    }
    if (split_target(request.target).path.rfind("/v1/", 0) != 0) return std::nullopt;
    if (request.method == "OPTIONS" && request.header("Access-Control-Request-Method")) {
        return security->preflight(request);
    }
    // A page of another site must not drive a user's broker (cross-site
    // WebSocket hijacking, or simple POSTs to a loopback broker without auth).
    if (!security->origin_allowed(request)) {
        auto origin = request.header("Origin").value_or("");
        log().info("origin refused conn={} remote={} origin={}", id_, remote_, audit_quote(origin));
        security->count_refusal(Refusal::origin, request, origin);
        return HttpResponse{
            403,
            "application/json",
            json::error_body("origin_not_allowed", "this Origin may not call the broker"),
            {}};
    }
    cors_origin_ = security->cors_origin(request);
    return std::nullopt;
}

const std::string& HttpSession::remote() const {
    return remote_;
}

const std::optional<std::string>& HttpSession::cors_origin() const {
    return cors_origin_;
}

void HttpSession::resume(std::function<void()> next) {
    net::post(stream_.get_executor(), [self = shared_from_this(), next = std::move(next)] {
        if (self->phase_ == Phase::closed) return;
        next();
    });
}

void HttpSession::hand_over(int status, const Open& open) {
    shared_->counter.add(route_, status);
    phase_ = Phase::closed;  // the connection belongs to the stream session now
    auto session = open(std::move(stream_));
    session->hold(std::move(ticket_));
    shared_->add_stream(session);
}

void HttpSession::dispatch(HttpRequest request) {
    if (auto denied = authenticate(request)) return send(std::move(*denied));
    // The Handler may answer on any thread (the store's writer, the blocking
    // pool); the response always goes back through this session's strand.
    auto pending =
        std::make_shared<PendingReply>(shared_, [self = shared_from_this()](HttpResponse response) {
            net::post(self->stream_.get_executor(),
                      [self, response = std::move(response)]() mutable {
                          self->send(std::move(response));
                      });
        });
    try {
        shared_->handler(std::move(request),
                         [pending](HttpResponse response) { pending->reply(std::move(response)); });
    } catch (const std::exception& e) {
        log().error("handler threw conn={} target={} error={}", id_, log_target(target_),
                    audit_quote(e.what()));
        pending->reply(HttpResponse{
            500, "application/json", json::error_body("internal", "internal error"), {}});
    }
}

void HttpSession::send(HttpResponse response) {
    if (phase_ == Phase::closed) return;  // force-closed by stop() while the handler ran
    if (response.status < 100 || response.status > 999) {
        log().error("handler returned an invalid status={} conn={} target={}", response.status, id_,
                    log_target(target_));
        response = HttpResponse{
            500, "application/json", json::error_body("internal", "internal error"), {}};
    }
    phase_ = Phase::writing;
    response_ = {};
    response_.version(version_);
    response_.result(static_cast<unsigned>(response.status));
    response_.set(http::field::server, "jobcast/" JOBCAST_VERSION);
    if (!response.content_type.empty()) {
        response_.set(http::field::content_type, response.content_type);
    }
    bool close = false;
    for (auto& [name, value] : response.headers) {
        if (beast::iequals(name, "Connection")) {
            close = close || beast::iequals(value, "close");
            continue;  // keep_alive() below writes the field
        }
        response_.insert(name, value);
    }
    if (cors_origin_ &&
        response_.find(http::field::access_control_allow_origin) == response_.end()) {
        response_.set(http::field::access_control_allow_origin, *cors_origin_);
        response_.set(http::field::vary, "Origin");
    }
    response_.body() = std::move(response.body);
    // An answer that ends the connection (its request was read whole) frees
    // the socket as soon as it is written.
    response_.keep_alive(keep_alive_ && !close && !linger_after_write_ && !shared_->stopping);
    response_.prepare_payload();

    shared_->counter.add(route_, response.status);
    auto elapsed =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_);
    log().debug("request conn={} method={} target={} code={} ms={:.2f}", id_, audit_quote(method_),
                log_target(target_), response.status, elapsed.count());

    stream_.expires_after(shared_->config.write_timeout);
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&HttpSession::on_write, shared_from_this(),
                                                !response_.keep_alive()));
}

void HttpSession::on_write(bool close, beast::error_code ec, std::size_t) {
    if (ec) return fail(ec, "write");
    if (close || shared_->stopping) {
        if (stream_.is_tls()) return tls_shutdown();
        if (linger_after_write_) return linger();
        shutdown_send();
        phase_ = Phase::closed;
        return;  // no pending operation left: the session ends and closes the socket
    }
    do_read();
}

// A request the parser refused: answer it, then close the connection, since
// the rest of the byte stream cannot be trusted to start a new request.
void HttpSession::reject(int status, std::string_view code, const std::string& message) {
    log().debug("request rejected conn={} remote={} code={} target={} reason={}", id_, remote_,
                status, log_target(target_), audit_quote(message));
    started_ = std::chrono::steady_clock::now();
    version_ = 11;
    keep_alive_ = false;
    linger_after_write_ = true;
    send(HttpResponse{status, "application/json", json::error_body(code, message), {}});
}

// Closing a socket with unread input makes the kernel send RST, which can
// destroy the error response before the client reads it. So: half-close, then
// read and discard what the client still sends, for a bounded time.
void HttpSession::linger() {
    phase_ = Phase::lingering;
    shutdown_send();
    stream_.expires_after(shared_->config.linger_timeout);
    stream_.async_read_some(
        net::buffer(drain_),
        beast::bind_front_handler(&HttpSession::on_linger_read, shared_from_this()));
}

void HttpSession::on_linger_read(beast::error_code ec, std::size_t bytes) {
    if (ec) {
        phase_ = Phase::closed;
        return;  // the client closed, or the linger time ran out: either way, done
    }
    drained_ += bytes;
    if (drained_ > kMaxLingerBytes) {
        phase_ = Phase::closed;
        return;
    }
    stream_.async_read_some(
        net::buffer(drain_),
        beast::bind_front_handler(&HttpSession::on_linger_read, shared_from_this()));
}

void HttpSession::tls_shutdown() {
    phase_ = Phase::lingering;
    stream_.expires_after(shared_->config.linger_timeout);
    stream_.async_tls_shutdown([self = shared_from_this()](beast::error_code, std::size_t) {
        self->phase_ = Phase::closed;  // the session ends and closes the socket
    });
}

void HttpSession::shutdown_send() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
}

void HttpSession::fail(beast::error_code ec, const char* what) {
    phase_ = Phase::closed;
    if (is_expected_disconnect(ec)) {
        log().debug("connection closed conn={} remote={} during={} reason={}", id_, remote_, what,
                    audit_quote(ec.message()));
    } else {
        log().warn("connection failed conn={} remote={} during={} error={}", id_, remote_, what,
                   audit_quote(ec.message()));
    }
}

}  // namespace jobcast::web
