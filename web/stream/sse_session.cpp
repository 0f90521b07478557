#include "web/stream/sse_session.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "persistence/store.hpp"
#include "protocol/client_api.hpp"
#include "protocol/job_fold.hpp"
#include "web/http/log.hpp"
#include "web/security/audit.hpp"
#include "web/security/security.hpp"

namespace jobcast::web {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;

namespace {

// The job's text with its log folded up to and including seq `through`, or
// nothing while the store cannot show that far yet (cluster mode: this broker
// cannot confirm what another broker showed). Store reads: off the I/O threads.
std::optional<std::string> folded_text(StreamingContext& ctx, const std::string& job,
                                       std::uint64_t through) {
    client_api::JobFold fold;
    while (fold.seq < through) {
        auto page =
            ctx.events.read(job, fold.seq, ctx.config.replay_page, ctx.config.replay_page_bytes);
        while (!page.empty() && page.back().seq > through)
            page.pop_back();
        if (page.empty()) return std::nullopt;
        client_api::fold_events(fold, page, 0);
    }
    return std::move(fold.text);
}

class SseSession final : public StreamSession {
  public:
    SseSession(FlexStream&& stream, std::shared_ptr<StreamingContext> ctx, std::string owner,
               std::string remote, std::string job, std::uint64_t after, std::int64_t valid_until,
               std::optional<client_api::UiMessageStream> ui_message,
               std::optional<auth::JobGrant> grant, std::uint64_t written)
        : StreamSession(std::move(ctx), stream.get_executor(), std::move(owner), Transport::sse),
          stream_(std::move(stream)),
          timer_(strand_),
          expiry_(strand_),
          valid_until_(valid_until),
          remote_(std::move(remote)),
          job_(std::move(job)),
          after_(after),
          written_(written),
          ui_message_(std::move(ui_message)),
          grant_(std::move(grant)) {}

    void run(std::vector<std::pair<std::string, std::string>> extra_headers) {
        stream_.expires_never();
        // The body has no length: it ends when the stream does (after the
        // terminal event), which every EventSource understands.
        std::string head =
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/event-stream\r\n"
            "Cache-Control: no-store\r\n"
            "X-Accel-Buffering: no\r\n"
            "Connection: close\r\n"
            "Server: jobcast\r\n";
        if (ui_message_) {
            head.append(client_api::kUiMessageStreamHeader)
                .append(": ")
                .append(client_api::kUiMessageStreamVersion)
                .append("\r\n");
        }
        for (const auto& [name, value] : extra_headers)
            head += name + ": " + value + "\r\n";
        // The first bytes tell EventSource how soon to reconnect.
        head += "\r\n";
        head += client_api::sse_retry(1000);
        enqueue_control(std::move(head));
        begin_subscription(job_, after_, written_);
        schedule_heartbeat();
        watch_peer();
        watch_revocation();
        if (valid_until_ > 0) {
            expiry_.expires_after(seconds_until(valid_until_));
            expiry_.async_wait([self = self()](beast::error_code ec) {
                if (ec || self->closing_) return;
                log().info("event=sse_token_expired remote={} job={}", self->remote_,
                           audit_quote(self->job_));
                self->finish();
            });
        }
    }

    // A job token's revocation ends the stream at once.
    void watch_revocation() {
        const auto tokens = ctx_->security ? ctx_->security->job_tokens() : nullptr;
        if (!grant_ || !tokens) return;
        std::weak_ptr<SseSession> weak = self();
        revocation_watch_ = tokens->watch(owner_, *grant_, [weak] {
            auto self = weak.lock();
            if (!self) return;
            net::post(self->strand_, [self] {
                if (self->closing_) return;
                audit_log().info("event=token_revoked_close transport=sse owner={} ip={} job={}",
                                 audit_quote(self->owner_), remote_ip(self->remote_),
                                 audit_quote(self->job_));
                self->finish();
            });
        });
    }

    void request_close(std::uint16_t) override {
        net::post(strand_, [self = self()] { self->finish(); });
    }

  private:
    std::shared_ptr<SseSession> self() {
        return std::static_pointer_cast<SseSession>(shared_from_this());
    }

    // The client never speaks after its request; a read completes only when it
    // goes away (EOF or reset), which ends the session.
    void watch_peer() {
        stream_.async_read_some(net::buffer(sink_),
                                [self = self()](beast::error_code ec, std::size_t) {
                                    if (ec) return self->fail(ec, "read");
                                    self->watch_peer();
                                });
    }

    void schedule_heartbeat() {
        timer_.expires_after(ctx_->config.keepalive);
        timer_.async_wait([self = self()](beast::error_code ec) {
            if (ec || self->closing_) return;
            if (self->stalled(std::chrono::steady_clock::now())) {
                self->ctx_->stats.slow_closes.fetch_add(1, std::memory_order_relaxed);
                log().info("event=sse_too_slow remote={} job={}", self->remote_,
                           audit_quote(self->job_));
                return self->fail(beast::error::timeout, "stalled");
            }
            if (self->idle()) self->enqueue_control(client_api::sse_comment("keepalive"));
            self->schedule_heartbeat();
        });
    }

    void write_front(const std::shared_ptr<const std::string>& bytes) override {
        net::async_write(stream_, net::buffer(*bytes),
                         [self = self(), bytes](beast::error_code ec, std::size_t) {
                             self->on_write_done(ec);
                             if (ec) self->fail(ec, "write");
                         });
    }

    live::WireFormat live_format() const override {
        return ui_message_ ? live::WireFormat::none : live::WireFormat::sse;
    }

    // A UI message stream is formatted per session (it knows which text part
    // this stream opened), in queue order, which is the log's order.
    std::shared_ptr<const std::string> live_frame(const live::Published& published,
                                                  std::size_t skip) override {
        if (ui_message_) return ui_frame(published.events, skip);
        if (skip == 0 && published.sse_chunk) return published.sse_chunk;
        return std::make_shared<const std::string>(
            client_api::sse_text(published.job, published.events, skip));
    }

    // The UI message stream folds events on the strand: it reads Events.
    std::optional<client_api::PageFramer::Format> replay_format() const override {
        if (ui_message_) return std::nullopt;
        return client_api::PageFramer::Format::sse;
    }

    std::shared_ptr<const std::string> page_frame(const std::string& job,
                                                  const std::vector<Event>& events) override {
        if (ui_message_) return ui_frame(events, 0);
        return std::make_shared<const std::string>(client_api::sse_text(job, events));
    }

    // The UI message stream stops at an attempt that resumes from a
    // checkpoint, whose part restates the job's text up to there. The stream
    // keeps no copy of that text: the log up to the `running` event is folded
    // again, from the store, on a read-pool thread (a retry is rare; the text
    // can be long). Meanwhile nothing more is written (format() writes
    // nothing), and the subscription is dropped — not from here, inside the
    // session's delivery loop — to start again after that event.
    std::shared_ptr<const std::string> ui_frame(const std::vector<Event>& events,
                                                std::size_t skip) {
        auto frame = std::make_shared<const std::string>(ui_message_->format(events, skip));
        if (ui_message_->restating() != 0 && !restating_) {
            restating_ = true;
            net::post(strand_, [self = self()] { self->fetch_restatement(); });
        }
        return frame;
    }

    void fetch_restatement() {
        if (closing_) return;
        end_subscription(job_);
        const auto through = ui_message_->restating();
        const bool first_try = restate_retries_ == 0;
        const bool queued = ctx_->run_blocking([self = self(), through, first_try] {
            std::optional<std::string> text;
            try {
                text = folded_text(*self->ctx_, self->job_, through);
            } catch (const std::exception& e) {
                if (first_try) {  // once per restatement
                    log().error("event=ui_message_restate_failed job={} error={}",
                                audit_quote(self->job_), audit_quote(e.what()));
                }
            }
            net::post(self->strand_, [self, through, text = std::move(text)] {
                if (self->closing_) return;
                if (!text) return self->retry_restatement();
                self->restating_ = false;
                self->restate_retries_ = 0;
                self->enqueue_control(self->ui_message_->restate(*text));
                self->begin_subscription(self->job_, through, self->written_);
            });
        });
        if (!queued) retry_restatement();  // the read pool is saturated
    }

    // 50 ms, doubling up to 1.6 s: a store that cannot answer is not asked
    // 20 times a second by every stream waiting on it.
    void retry_restatement() {
        const std::chrono::milliseconds delay(50 << std::min(restate_retries_, 5));
        ++restate_retries_;
        auto timer = std::make_shared<net::steady_timer>(strand_, delay);
        timer->async_wait([self = self(), timer](beast::error_code) { self->fetch_restatement(); });
    }

    // SSE events are self-delimiting: the queued chunks, back to back.
    std::shared_ptr<const std::string> coalesced_frame(
        const std::vector<LiveSlice>&, const std::vector<const std::string*>& frames) override {
        std::size_t size = 0;
        for (const auto* frame : frames)
            size += frame->size();
        std::string out;
        out.reserve(size);
        for (const auto* frame : frames)
            out += *frame;
        return std::make_shared<const std::string>(std::move(out));
    }

    void subscription_ended(const std::string&) override {
        if (restating_) return;  // it starts again after the restatement
        ended_ = true;
        if (idle()) finish();
    }

    void queue_drained() override {
        if (ended_) finish();
    }

    // The terminal event is written: end the response (and the connection).
    void finish() {
        if (closing_) return;
        closing_ = true;
        end_all();
        timer_.cancel();
        expiry_.cancel();
        if (stream_.is_tls()) {
            // close_notify marks the end of the body (a TLS client treats a
            // bare TCP close as truncation), then the TCP half-close as below.
            stream_.async_tls_shutdown([self = self()](beast::error_code, std::size_t) {
                beast::error_code ignored;
                self->stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
            });
        } else {
            beast::error_code ignored;
            stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
        }
        // Give the client a moment to read the tail, then close for good.
        timer_.expires_after(std::chrono::seconds(2));
        timer_.async_wait([self = self()](beast::error_code) { self->hard_close(); });
    }

    void hard_close() {
        beast::error_code ignored;
        stream_.socket().close(ignored);
    }

    void fail(beast::error_code ec, const char* what) {
        if (!closing_) {
            log().debug("event=sse_closed remote={} job={} what={} reason={}", remote_,
                        audit_quote(job_), what, audit_quote(ec.message()));
        }
        closing_ = true;
        end_all();
        timer_.cancel();
        expiry_.cancel();
        hard_close();
    }

    FlexStream stream_;
    net::steady_timer timer_;
    net::steady_timer expiry_;  // the caller's token expires
    std::int64_t valid_until_;
    std::string remote_;
    std::string job_;
    std::uint64_t after_;
    std::uint64_t written_;  // the log's written seq at admission (cluster mode)
    std::optional<client_api::UiMessageStream> ui_message_;
    bool restating_ = false;   // the UI message stream waits for its restatement
    int restate_retries_ = 0;  // since the last restatement written (strand only)
    bool ended_ = false;
    std::array<char, 256> sink_{};
    std::optional<auth::JobGrant> grant_;  // the caller's job token, if that is what it holds
    std::shared_ptr<void> revocation_watch_;
};

}  // namespace

std::shared_ptr<StreamSession> start_sse_session(
    FlexStream&& stream, std::shared_ptr<StreamingContext> ctx, std::string owner,
    std::string remote, std::string job, std::uint64_t after, std::int64_t valid_until,
    std::vector<std::pair<std::string, std::string>> extra_headers,
    std::optional<client_api::UiMessageStream> ui_message, std::optional<auth::JobGrant> grant,
    std::uint64_t written) {
    auto session = std::make_shared<SseSession>(
        std::move(stream), std::move(ctx), std::move(owner), std::move(remote), std::move(job),
        after, valid_until, std::move(ui_message), std::move(grant), written);
    session->run(std::move(extra_headers));
    return session;
}

}  // namespace jobcast::web
