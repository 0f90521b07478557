#include "web/stream/websocket_session.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <random>

#include "common/clock.hpp"
#include "persistence/job_commands.hpp"
#include "persistence/written_seqs.hpp"
#include "protocol/client_api.hpp"
#include "web/http/log.hpp"
#include "web/security/audit.hpp"
#include "web/security/security.hpp"
#include "web/stream/keepalive_sweep.hpp"
#include "web/stream/subscription.hpp"

namespace jobcast::web {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;

namespace {

// How many sweep ticks of silence a connection is pinged after: a random
// point in the last quarter of `ping_ticks`, drawn once per connection, so
// that connections opened together are not pinged together.
std::uint64_t jittered_ticks(std::uint64_t ping_ticks) {
    thread_local std::minstd_rand random{std::random_device{}()};
    std::uniform_int_distribution<std::uint64_t> spread(
        std::max<std::uint64_t>(1, ping_ticks * 3 / 4), std::max<std::uint64_t>(1, ping_ticks));
    return spread(random);
}

// The kernel probes a connection that has been silent for `keepalive` and
// drops it when three probes, `keepalive`/3 apart, go unanswered: a vanished
// peer host (or a broken path to it) is found within 2 x keepalive without
// waking the broker.
void keep_alive(net::ip::tcp::socket& socket, std::chrono::milliseconds keepalive) {
    using namespace std::chrono;
    // Linux takes at most 32,767 s.
    auto idle =
        std::clamp<std::int64_t>(duration_cast<seconds>(keepalive + 999ms).count(), 1, 32'767);
    beast::error_code ignored;
    socket.set_option(net::socket_base::keep_alive(true), ignored);
    socket.set_option(
        net::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPIDLE>(static_cast<int>(idle)),
        ignored);
    socket.set_option(net::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPINTVL>(
                          static_cast<int>(std::max<std::int64_t>(1, idle / 3))),
                      ignored);
    socket.set_option(net::detail::socket_option::integer<IPPROTO_TCP, TCP_KEEPCNT>(3), ignored);
}

class WebSocketSession final : public StreamSession, public KeepaliveMember {
  public:
    WebSocketSession(FlexStream&& stream, std::shared_ptr<StreamingContext> ctx, std::string owner,
                     std::string remote, std::int64_t valid_until,
                     std::optional<auth::JobGrant> grant)
        : StreamSession(std::move(ctx), stream.get_executor(), std::move(owner),
                        Transport::websocket),
          ws_(std::move(stream)),
          timer_(strand_),
          expiry_(strand_),
          remote_(std::move(remote)),
          valid_until_(valid_until),
          grant_(std::move(grant)),
          ops_(ctx_->security ? ctx_->security->config().limits.ws_ops_per_second : 0,
               ctx_->security ? ctx_->security->config().limits.ws_ops_burst : 0,
               std::chrono::steady_clock::now()),
          sweep_(ctx_->keepalive_sweeps->pick(strand_)),
          silence_ticks_(sweep_ ? jittered_ticks(sweep_->ticks_for(ctx_->config.ws_ping_interval))
                                : 0),
          stall_check_ticks_(sweep_ ? sweep_->ticks_for(ctx_->config.keepalive) : 0) {}

    void run(http::request<http::string_body> request) {
        beast::get_lowest_layer(ws_).expires_never();  // the websocket stream times itself
        // Dead peers are found without a timer per connection: vanished
        // hosts by the kernel's TCP keepalive, every `keepalive`; hung or
        // proxied peers by the I/O thread's keepalive sweep, which pings only
        // a connection that neither read a message nor wrote anything for a
        // `ws_ping_interval` (check_keepalive).
        auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
        timeouts.idle_timeout = websocket::stream_base::none();
        timeouts.keep_alive_pings = false;
        ws_.set_option(timeouts);
        keep_alive(beast::get_lowest_layer(ws_).socket(), ctx_->config.keepalive);
        // A pong (or the peer's own ping) shows the peer is there; it is not
        // activity that puts off the next ping, or an idle connection would
        // be visited twice per ping (the interval restarting at its pong).
        ws_.control_callback([this](websocket::frame_type, beast::string_view) { heard_ = true; });
        ws_.set_option(websocket::stream_base::decorator(
            [](websocket::response_type& res) { res.set(http::field::server, "jobcast"); }));
        ws_.read_message_max(ctx_->config.max_message_bytes);
        ws_.text(true);
        // One WebSocket frame per message: Beast 1.81 otherwise splits every
        // message over 4 KiB into 4 KiB frames, a write and a syscall each.
        ws_.auto_fragment(false);
        ws_.async_accept(request, [self = self()](beast::error_code ec) { self->on_accept(ec); });
    }

    void request_close(std::uint16_t code) override {
        net::post(strand_, [self = self(), code] { self->close(code, "broker stopping"); });
    }

  private:
    std::shared_ptr<WebSocketSession> self() {
        return std::static_pointer_cast<WebSocketSession>(shared_from_this());
    }

    void on_accept(beast::error_code ec) {
        if (ec) return fail(ec, "accept");
        log().debug("event=ws_open remote={} owner={}", remote_, audit_quote(owner_));
        active();
        schedule_keepalive(silence_ticks_);
        schedule_expiry();
        watch_revocation();
        do_read();
    }

    // A job token's revocation closes the connection with 4003 at once.
    void watch_revocation() {
        revocation_watch_.reset();
        const auto tokens = ctx_->security ? ctx_->security->job_tokens() : nullptr;
        if (!grant_ || !tokens) return;
        std::weak_ptr<WebSocketSession> weak = self();
        revocation_watch_ = tokens->watch(owner_, *grant_, [weak] {
            auto self = weak.lock();
            if (!self) return;
            net::post(self->strand_, [self] {
                if (self->closing_) return;
                audit_log().info("event=token_revoked_close transport=websocket owner={} ip={}",
                                 audit_quote(self->owner_), remote_ip(self->remote_));
                self->close(client_api::kCloseReauthenticate, "token revoked");
            });
        });
    }

    // A job token reaches its own job only: anything else is answered as an
    // unknown job would be, and counted.
    bool permitted(const std::string& job, JobAccess access) {
        if (grant_permits(grant_, job, access)) return true;
        ctx_->security->count_auth_failure(kScope, remote_, "websocket",
                                           "job token used beyond its job");
        reply_error("not_found", "no such job", job);
        return false;
    }

    // The token the connection was opened (or last refreshed) with expires:
    // close with 4003, the client reconnects with a fresh token and resumes.
    void schedule_expiry() {
        expiry_.cancel();
        if (valid_until_ <= 0) return;
        expiry_.expires_after(seconds_until(valid_until_));
        expiry_.async_wait([self = self()](beast::error_code ec) {
            if (ec || self->closing_) return;
            audit_log().info("event=token_expired transport=websocket owner={} ip={}",
                             audit_quote(self->owner_), remote_ip(self->remote_));
            self->close(client_api::kCloseReauthenticate, "token expired; re-authenticate");
        });
    }

    void do_read() {
        ws_.async_read(buffer_,
                       [self = self()](beast::error_code ec, std::size_t) { self->on_read(ec); });
    }

    void on_read(beast::error_code ec) {
        heard();
        if (ec == websocket::error::message_too_big) {
            // Beast has already answered with close code 1009 (too big).
            ctx_->stats.op_errors.fetch_add(1, std::memory_order_relaxed);
            if (ctx_->security)
                ctx_->security->count_limit(Limit::ws_message_size, owner_, remote_);
            return fail(ec, "read");
        }
        if (ec) return fail(ec, "read");
        if (ctx_->security && ctx_->security->config().limits.ws_ops_per_second > 0 &&
            !ops_.take(std::chrono::steady_clock::now())) {
            // Over the rate the op is dropped, not queued: a flood costs the
            // client its ops, never the broker memory.
            ctx_->security->count_limit(Limit::ws_ops_rate, owner_, remote_);
            reply_error("rate_limited", "too many ops on this connection; slow down");
        } else if (!ws_.got_text()) {
            reply_error("bad_request", "send JSON ops as text frames");
        } else {
            std::string text = beast::buffers_to_string(buffer_.data());
            auto parsed = client_api::parse_client_op(text);
            if (auto* err = std::get_if<client_api::OpError>(&parsed)) {
                reply_error(err->code, err->message, err->job);
            } else {
                std::visit([this](auto& op) { handle(op); },
                           std::get<client_api::ClientOp>(parsed));
            }
        }
        buffer_.consume(buffer_.size());
        if (closing_) return;
        if (backlogged()) {
            // The client is not reading the answers: read its next op once
            // they have drained (backlog_cleared), so TCP pushes back on it.
            reads_paused_ = true;
            return;
        }
        do_read();
    }

    void backlog_cleared() override {
        if (!reads_paused_ || closing_) return;
        reads_paused_ = false;
        do_read();
    }

    void reply_error(std::string_view code, std::string_view message, std::string_view job = {}) {
        ctx_->stats.op_errors.fetch_add(1, std::memory_order_relaxed);
        enqueue_control(client_api::error_frame(code, message, job));
    }

    void handle(client_api::PingOp&) { enqueue_control(client_api::pong_frame()); }

    void handle(client_api::AuthOp& op) {
        // Tokens are not checked when the broker runs without auth.
        if (!ctx_->security || !ctx_->security->auth_enabled()) {
            return enqueue_control(client_api::authenticated_frame(std::nullopt));
        }
        auto check = ctx_->security->check_token(op.token, remote_, "websocket");
        if (!check.owner) return reply_error("unauthorized", check.message);
        const bool same_scope = check.grant.has_value() == grant_.has_value() &&
                                (!grant_ || check.grant->job == grant_->job);
        if (*check.owner != owner_ || !same_scope) {
            // A connection's owner and scope are fixed: its subscriptions were checked for them.
            ctx_->security->count_auth_failure(kOwnerMismatch, remote_, "websocket",
                                               "token names another owner or job");
            return reply_error("forbidden",
                               "the token names another owner or job than this connection");
        }
        valid_until_ = check.valid_until;
        grant_ = std::move(check.grant);
        schedule_expiry();
        watch_revocation();
        enqueue_control(client_api::authenticated_frame(valid_until_));
    }

    void handle(client_api::SubscribeFeedOp&) {
        if (grant_) {
            ctx_->security->count_auth_failure(kScope, remote_, "websocket",
                                               "job token used for the jobs feed");
            return reply_error("not_found", "no such job");
        }
        begin_feed();
        enqueue_control(client_api::feed_subscribed_frame());
    }

    void handle(client_api::UnsubscribeFeedOp&) { end_feed(); }

    void handle(client_api::UnsubscribeOp& op) { end_subscription(op.job); }

    void refuse_subscription(const std::string& job) {
        if (ctx_->security) ctx_->security->count_limit(Limit::subscriptions, owner_, remote_);
        reply_error("limit", "too many subscriptions on this connection", job);
    }

    void handle(client_api::SubscribeOp& op) {
        // A subscribe in flight (its ownership check is a store read) holds
        // its place from now on: a burst of ops cannot all pass the check
        // before the first of them becomes a subscription.
        // (A re-subscribe, which only moves the cursor, needs no new place.)
        if (!permitted(op.job, JobAccess::read)) return;
        const bool reserved = !subscribed(op.job);
        if (reserved &&
            subscription_count() + pending_subscribes_ >= ctx_->config.max_subscriptions) {
            return refuse_subscription(op.job);
        }
        if (reserved) ++pending_subscribes_;
        check_subscribe(op, reserved);
    }

    // The job must exist and be the caller's; that is a store read, so it
    // happens off the I/O thread and the answer comes back to the strand.
    // With it, how far its log is written (cluster mode: maybe past what this
    // broker can show yet; the subscription reads that far before going live).
    void check_subscribe(const client_api::SubscribeOp& op, bool reserved) {
        auto self = this->self();
        bool queued = ctx_->run_blocking([self, op, reserved] {
            auto job = self->visible_job(op.job);
            std::uint64_t written = 0;
            try {
                if (job) written = store::written_seq(self->ctx_->jobs, op.job);
            } catch (const std::exception&) {
                // Taken as all shown: nothing to wait for.
            }
            net::post(self->strand_, [self, op, job, written, reserved] {
                self->on_subscribe_checked(op, job, written, reserved);
            });
        });
        if (!queued) {
            if (reserved) --pending_subscribes_;
            reply_error("busy", "the broker is busy; try again", op.job);
        }
    }

    void on_subscribe_checked(const client_api::SubscribeOp& op, const std::optional<Job>& job,
                              std::uint64_t written, bool reserved) {
        // The place becomes a subscription below, or is given back.
        if (reserved) --pending_subscribes_;
        if (closing_) return;
        if (!job) return reply_error("not_found", "no such job", op.job);
        // Checked again: a re-subscribe to a job whose subscription ended
        // meanwhile takes a new place.
        if (!subscribed(op.job) && subscription_count() >= ctx_->config.max_subscriptions) {
            return refuse_subscription(op.job);
        }
        if (after_beyond_log(*job, op.after, written)) {
            return reply_error("bad_request",
                               "after=" + std::to_string(op.after) +
                                   " is beyond the job's last seq " + std::to_string(job->last_seq),
                               op.job);
        }
        enqueue_control(client_api::subscribed_frame(op.job, job->last_seq));
        if (stream_already_ended(*job, op.after, written)) {
            end_subscription(op.job);  // a re-subscribe after the terminal event moves nothing
            return;
        }
        begin_subscription(op.job, op.after, written);
    }

    void handle(client_api::CancelOp& op) {
        if (!permitted(op.job, JobAccess::cancel)) return;
        auto self = this->self();
        bool queued = ctx_->run_blocking([self, op] {
            if (!self->visible_job(op.job)) {
                net::post(self->strand_,
                          [self, op] { self->reply_error("not_found", "no such job", op.job); });
                return;
            }
            audit_log().info("event=cancel transport=websocket owner={} ip={} job={}",
                             audit_quote(self->owner_), remote_ip(self->remote_),
                             audit_quote(op.job));
            self->ctx_->commands.cancel(
                store::CancelJob{op.job, false, Clock::system().unix_ms()},
                [self, op](const store::WriteResult& r) {
                    if (r.status == store::WriteStatus::ok) return;  // state events follow
                    const bool later = store::engine_full(r);
                    net::post(self->strand_, [self, op, later, message = r.message] {
                        self->reply_error(later ? "busy" : "conflict",
                                          message.empty() ? "job already finished" : message,
                                          op.job);
                    });
                });
        });
        if (!queued) reply_error("busy", "the broker is busy; try again", op.job);
    }

    // ---- writes ----

    void write_front(const std::shared_ptr<const std::string>& bytes) override {
        write_started();
        ws_.async_write(net::buffer(*bytes),
                        [self = self(), bytes](beast::error_code ec, std::size_t) {
                            self->active();
                            self->on_write_done(ec);
                            if (ec) self->fail(ec, "write");
                        });
    }

    std::shared_ptr<const std::string> live_frame(const live::Published& published,
                                                  std::size_t skip) override {
        if (skip == 0 && published.ws_frame) return published.ws_frame;
        return std::make_shared<const std::string>(
            client_api::websocket_frame(published.job, published.events, skip));
    }

    std::optional<client_api::PageFramer::Format> replay_format() const override {
        return client_api::PageFramer::Format::websocket;
    }

    std::shared_ptr<const std::string> page_frame(const std::string& job,
                                                  const std::vector<Event>& events) override {
        return std::make_shared<const std::string>(client_api::websocket_frame(job, events));
    }

    std::shared_ptr<const std::string> coalesced_frame(
        const std::vector<LiveSlice>& slices, const std::vector<const std::string*>&) override {
        std::vector<client_api::EventSlice> events;
        events.reserve(slices.size());
        for (const auto& slice : slices)
            events.push_back({&slice.published->events, slice.skip});
        return std::make_shared<const std::string>(
            client_api::websocket_frame(slices.front().published->job, events));
    }

    void queue_drained() override {
        if (close_after_drain_) start_close();
    }

    // ---- closing ----

    // The keepalive check, when the sweep finds the connection due (never
    // per read or write): a write stuck for longer than the stall timeout
    // closes the connection; a peer that answered nothing since the last
    // ping is gone; a connection that neither read a message nor wrote
    // anything for its interval (three quarters of `ws_ping_interval` to
    // all of it, jittered) gets a ping, so proxies see traffic and a silent
    // peer is found. Busy connections are never pinged, idle ones once per
    // interval; a peer that goes silent is closed within 2 x
    // `ws_ping_interval` (one interval until the ping, one for its answer)
    // plus one sweep tick. A connection with a write in flight is checked
    // every `keepalive` (see write_started), so a stuck write is dropped
    // within the stall timeout + `keepalive` + one tick.
    // Dispatched: the sweep runs on an I/O thread, so when the connection's
    // strand is free the check (and its ping) runs right here, inline, with
    // no post and no other thread woken.
    void keepalive_due(std::uint64_t tick) override {
        net::dispatch(strand_, [self = self(), tick] { self->check_keepalive(tick); });
    }

    void check_keepalive(std::uint64_t tick) {
        // Closing, or a later schedule (write_started) replaced this visit.
        if (closing_ || tick != due_tick()) return;
        if (!idle() && stalled(std::chrono::steady_clock::now())) {
            // The client stopped reading: its TCP window is full, so a
            // close frame could not reach it either. Drop the connection;
            // the client resumes from its last seq when it comes back.
            ctx_->stats.slow_closes.fetch_add(1, std::memory_order_relaxed);
            log().info("event=ws_too_slow remote={} owner={}", remote_, audit_quote(owner_));
            return close(client_api::kCloseTooSlow, "too slow for too long; resume");
        }
        if (pinged_ && !heard_) return fail(beast::error::timeout, "keepalive");
        pinged_ = false;
        // The sweep's tick now, not `tick`: a read since may have noted a
        // later one.
        const auto silent = sweep_->tick() - last_active_;
        auto next = silence_ticks_;
        if (silent < silence_ticks_) {
            next = silence_ticks_ - silent;
        } else if (idle()) {
            pinged_ = true;
            heard_ = false;
            ws_.async_ping({}, [self = self()](beast::error_code ec) {
                if (ec && !self->closing_) self->fail(ec, "ping");
            });
        }
        schedule_keepalive(idle() ? next : std::min(next, stall_check_ticks_));
    }

    // A write starts: if the next check is further away than `keepalive`
    // (the connection was idle at its last one), it comes sooner, so that a
    // write that gets stuck is found in time. One load and compare per write.
    void write_started() {
        if (sweep_ && due_tick() > sweep_->tick() + stall_check_ticks_)
            schedule_keepalive(stall_check_ticks_);
    }

    // Due again in `ticks` sweep ticks (instead of when it was due). Without
    // a sweep (the broker is stopping) the connection is left to TCP
    // keepalive.
    void schedule_keepalive(std::uint64_t ticks) {
        if (sweep_) sweep_->schedule(self(), ticks);
    }

    // Something was read or written: the sweep's tick counter, no clock read.
    void active() {
        if (sweep_) last_active_ = sweep_->tick();
    }
    // A message was read: the peer is there, and the connection is busy.
    void heard() {
        heard_ = true;
        active();
    }

    void close(std::uint16_t code, const char* reason) {
        if (closing_) return;
        closing_ = true;
        close_code_ = code;
        close_reason_ = reason;
        end_all();
        timer_.cancel();
        expiry_.cancel();
        if (idle()) {
            start_close();
        } else {
            close_after_drain_ = true;
            // A stuck write must not hold the connection forever.
            timer_.expires_after(std::chrono::seconds(2));
            timer_.async_wait([self = self()](beast::error_code ec) {
                if (!ec) self->hard_close();
            });
        }
    }

    void start_close() {
        close_after_drain_ = false;
        ws_.async_close(
            websocket::close_reason(static_cast<websocket::close_code>(close_code_), close_reason_),
            [self = self()](beast::error_code) { self->hard_close(); });
    }

    void hard_close() {
        timer_.cancel();
        expiry_.cancel();
        beast::error_code ignored;
        beast::get_lowest_layer(ws_).socket().close(ignored);
    }

    void fail(beast::error_code ec, const char* what) {
        if (ec == beast::error::timeout && !closing_) {
            // The peer answered no ping (gone, or not reading).
            ctx_->stats.slow_closes.fetch_add(1, std::memory_order_relaxed);
        }
        closing_ = true;
        end_all();
        timer_.cancel();
        if (ec == websocket::error::closed || ec == net::error::operation_aborted ||
            ec == net::error::eof || ec == net::error::connection_reset ||
            ec == beast::error::timeout) {
            log().debug("event=ws_closed remote={} what={} reason={}", remote_, what,
                        audit_quote(ec.message()));
        } else {
            log().info("event=ws_closed remote={} what={} error={}", remote_, what,
                       audit_quote(ec.message()));
        }
        hard_close();
    }

    websocket::stream<FlexStream> ws_;
    beast::flat_buffer buffer_;
    net::steady_timer timer_;   // a closing connection's write may take this long
    net::steady_timer expiry_;  // the token expires
    std::string remote_;
    std::int64_t valid_until_;             // unix seconds; 0: never
    std::optional<auth::JobGrant> grant_;  // a job token's scope
    std::shared_ptr<void> revocation_watch_;
    TokenBucket ops_;  // client ops per second
    bool close_after_drain_ = false;
    bool reads_paused_ = false;              // see backlog_cleared()
    std::shared_ptr<KeepaliveSweep> sweep_;  // null: left to TCP keepalive
    const std::uint64_t silence_ticks_;      // pinged after this many ticks of silence
    const std::uint64_t stall_check_ticks_;  // `keepalive`: checked this often while writing
    std::uint64_t last_active_ = 0;          // the sweep tick of the last read or write
    // A ping is waiting for its answer; anything was read since it was sent.
    bool pinged_ = false;
    bool heard_ = false;
    std::size_t pending_subscribes_ = 0;  // subscribe ops between their read and their check
    std::uint16_t close_code_ = client_api::kCloseGoingAway;
    const char* close_reason_ = "";
};

}  // namespace

std::shared_ptr<StreamSession> start_websocket_session(FlexStream&& stream,
                                                       http::request<http::string_body> request,
                                                       std::shared_ptr<StreamingContext> ctx,
                                                       std::string owner, std::string remote,
                                                       std::int64_t valid_until,
                                                       std::optional<auth::JobGrant> grant) {
    auto session =
        std::make_shared<WebSocketSession>(std::move(stream), std::move(ctx), std::move(owner),
                                           std::move(remote), valid_until, std::move(grant));
    session->run(std::move(request));
    return session;
}

}  // namespace jobcast::web
