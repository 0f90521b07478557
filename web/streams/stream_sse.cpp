#include "web/streams/stream_sse.hpp"

#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <exception>

#include "protocol/json.hpp"
#include "web/http/flex_stream.hpp"
#include "web/http/log.hpp"
#include "web/http/query.hpp"
#include "web/security/audit.hpp"
#include "web/security/security.hpp"
#include "web/stream/admission.hpp"
#include "web/stream/stream_session.hpp"
#include "web/streams/durable_streams.hpp"

namespace jobcast::web::streams {

namespace beast = boost::beast;
namespace net = boost::asio;

namespace {

class DurableSseSession final : public StreamSession {
  public:
    DurableSseSession(FlexStream&& stream, std::shared_ptr<StreamingContext> ctx,
                      DurableStreams& durable, SsePlan plan, std::string remote)
        : StreamSession(std::move(ctx), stream.get_executor(), plan.owner, Transport::sse),
          stream_(std::move(stream)),
          timer_(strand_),
          durable_(durable),
          plan_(std::move(plan)),
          remote_(std::move(remote)),
          reached_(plan_.after),
          known_last_(plan_.last_seq) {}

    void run(const std::optional<std::string>& cors_origin) {
        stream_.expires_never();
        // The body has no length: it ends when the stream does.
        std::string head =
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n"
            "X-Accel-Buffering: no\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "Cross-Origin-Resource-Policy: cross-origin\r\n"
            "Connection: close\r\n"
            "Server: jobcast\r\n";
        if (plan_.base64) head += "Stream-SSE-Data-Encoding: base64\r\n";
        if (cors_origin) {
            head += "Access-Control-Allow-Origin: " + *cors_origin + "\r\nVary: Origin\r\n";
            head += "Access-Control-Expose-Headers: Stream-SSE-Data-Encoding\r\n";
        }
        head += "\r\n";
        enqueue_control(std::move(head));
        watch_peer();
        if (plan_.closed_at_tail) {
            // Nothing more will come: where the end is, and that it is the end.
            enqueue_control(durable_.control_event(reached_, true, true, plan_.cursor));
            ended_ = true;
            return;
        }
        if (!plan_.job.empty()) {
            if (reached_ >= known_last_) {
                enqueue_control(durable_.control_event(reached_, true, false, plan_.cursor));
            }
            begin_subscription(plan_.job, reached_);
            schedule_keepalive();
            return;
        }
        read_more();
    }

    void request_close(std::uint16_t) override {
        net::post(strand_, [self = self()] { self->finish(); });
    }

  private:
    std::shared_ptr<DurableSseSession> self() {
        return std::static_pointer_cast<DurableSseSession>(shared_from_this());
    }

    // The client never speaks after its request; a read completes only when
    // it goes away, which ends the session.
    void watch_peer() {
        stream_.async_read_some(net::buffer(sink_),
                                [self = self()](beast::error_code ec, std::size_t) {
                                    if (ec) return self->fail(ec, "read");
                                    self->watch_peer();
                                });
    }

    // ---- a created stream: read, write, wait for the next change ----------

    void read_more() {
        if (closing_) return;
        auto self = this->self();
        bool queued = ctx_->run_blocking([self, after = reached_] {
            DurableStreams::SseBatch batch;
            try {
                batch = self->durable_.read_sse(self->plan_, after);
            } catch (const std::exception& e) {
                log().error("stream sse read failed remote={} error={}", self->remote_,
                            audit_quote(e.what()));
                net::post(self->strand_, [self] { self->finish(); });
                return;
            }
            net::post(self->strand_,
                      [self, batch = std::move(batch)]() mutable { self->on_batch(batch); });
        });
        if (!queued) finish();
    }

    void on_batch(DurableStreams::SseBatch& batch) {
        if (closing_) return;
        if (!batch.stream) return finish();  // deleted (or expired)
        const bool closed = batch.stream->closed;
        if (!batch.frames.empty()) {
            reached_ = batch.reached;
            // The last control event said upToDate when it reached the tail.
            said_up_to_date_ = reached_ >= batch.stream->last_seq;
            enqueue_control(std::move(batch.frames));
            if (closed && reached_ >= batch.stream->last_seq) {
                ended_ = true;  // its last control said streamClosed
                return;
            }
            more_ = true;  // read again once this is written
            return;
        }
        if (closed) {
            enqueue_control(durable_.control_event(reached_, true, true, plan_.cursor));
            ended_ = true;
            return;
        }
        if (!said_up_to_date_) {
            said_up_to_date_ = true;
            enqueue_control(durable_.control_event(reached_, true, false, plan_.cursor));
        }
        std::weak_ptr<DurableSseSession> weak = self();
        wait_ = durable_.watch(plan_, reached_, [weak](bool timed_out) {
            auto self = weak.lock();
            if (!self) return;
            net::post(self->strand_, [self, timed_out] {
                self->wait_.reset();
                if (self->closing_) return;
                if (timed_out) {
                    // A quiet stream: still here, still at the tail.
                    self->enqueue_control(self->durable_.control_event(self->reached_, true, false,
                                                                       self->plan_.cursor));
                }
                self->read_more();
            });
        });
    }

    // ---- a job's log: the subscription's pages and live batches ------------

    std::string frames_of(const std::vector<Event>& events, std::size_t skip) {
        if (skip >= events.size()) return {};
        std::string out = DurableStreams::job_sse_frames(events, skip);
        reached_ = events.back().seq;
        known_last_ = std::max(known_last_, reached_);
        out += durable_.control_event(reached_, reached_ >= known_last_, false, plan_.cursor);
        return out;
    }

    live::WireFormat live_format() const override { return live::WireFormat::none; }

    std::shared_ptr<const std::string> live_frame(const live::Published& published,
                                                  std::size_t skip) override {
        known_last_ = std::max(known_last_, published.last_seq());
        return std::make_shared<const std::string>(frames_of(published.events, skip));
    }

    std::shared_ptr<const std::string> page_frame(const std::string&,
                                                  const std::vector<Event>& events) override {
        return std::make_shared<const std::string>(frames_of(events, 0));
    }

    std::shared_ptr<const std::string> coalesced_frame(
        const std::vector<LiveSlice>&, const std::vector<const std::string*>& frames) override {
        std::string out;
        for (const auto* frame : frames)
            out += *frame;
        return std::make_shared<const std::string>(std::move(out));
    }

    void subscription_ended(const std::string&) override {
        // The job's terminal event is queued: the stream is closed there.
        enqueue_control(durable_.control_event(reached_, true, true, std::nullopt));
        ended_ = true;
    }

    void schedule_keepalive() {
        timer_.expires_after(durable_.keepalive());
        timer_.async_wait([self = self()](beast::error_code ec) {
            if (ec || self->closing_) return;
            if (self->stalled(std::chrono::steady_clock::now())) {
                self->ctx_->stats.slow_closes.fetch_add(1, std::memory_order_relaxed);
                return self->fail(beast::error::timeout, "stalled");
            }
            if (self->idle() && !self->ended_) {
                self->enqueue_control(
                    self->durable_.control_event(self->reached_, true, false, self->plan_.cursor));
            }
            self->schedule_keepalive();
        });
    }

    // ---- writing and ending ----------------------------------------------------

    void write_front(const std::shared_ptr<const std::string>& bytes) override {
        net::async_write(stream_, net::buffer(*bytes),
                         [self = self(), bytes](beast::error_code ec, std::size_t) {
                             self->on_write_done(ec);
                             if (ec) self->fail(ec, "write");
                         });
    }

    void queue_drained() override {
        if (ended_) return finish();
        if (more_) {
            more_ = false;
            read_more();
        }
    }

    void finish() {
        if (closing_) return;
        closing_ = true;
        end_all();
        timer_.cancel();
        if (wait_) durable_.cancel_watch(wait_);
        wait_.reset();
        beast::error_code ignored;
        if (stream_.is_tls()) {
            stream_.async_tls_shutdown([self = self()](beast::error_code, std::size_t) {
                beast::error_code ignored;
                self->stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
            });
        } else {
            stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
        }
        // Give the client a moment to read the tail, then close for good.
        timer_.expires_after(std::chrono::seconds(2));
        timer_.async_wait([self = self()](beast::error_code) {
            beast::error_code ignored;
            self->stream_.socket().close(ignored);
        });
    }

    void fail(beast::error_code ec, const char* what) {
        if (!closing_) {
            log().debug("event=stream_sse_closed remote={} what={} reason={}", remote_, what,
                        audit_quote(ec.message()));
        }
        closing_ = true;
        end_all();
        timer_.cancel();
        if (wait_) durable_.cancel_watch(wait_);
        wait_.reset();
        beast::error_code ignored;
        stream_.socket().close(ignored);
    }

    FlexStream stream_;
    net::steady_timer timer_;
    DurableStreams& durable_;
    const SsePlan plan_;
    std::string remote_;
    std::uint64_t reached_;     // the offset written so far
    std::uint64_t known_last_;  // the newest seq known of the stream
    bool said_up_to_date_ = false;
    bool more_ = false;   // a read is due once the queue drains
    bool ended_ = false;  // the final control is queued: close once written
    std::shared_ptr<StreamWait> wait_;
    std::array<char, 256> sink_{};
};

}  // namespace

bool wants_sse(const HttpRequest& request) {
    if (request.method != "GET" || !is_stream_target(request.target)) return false;
    auto query = QueryParams::parse(split_target(request.target).query);
    return query && query->get("live") == std::optional<std::string_view>("sse");
}

void admit_sse(const std::shared_ptr<StreamDoor>& door,
               const std::shared_ptr<StreamingContext>& streaming, DurableStreams& durable_streams,
               const std::shared_ptr<SecurityContext>& security, HttpRequest request) {
    if (auto denied = door->authenticate(request)) return door->send(std::move(*denied));
    DurableStreams* durable = &durable_streams;
    bool queued =
        streaming->run_blocking([door, streaming, security, durable, request = std::move(request)] {
            std::variant<HttpResponse, SsePlan> planned = HttpResponse{
                500, "application/json", json::error_body("internal", "internal error"), {}};
            try {
                planned = durable->plan_sse(request);
            } catch (const std::exception& e) {
                log().error("stream sse admission failed error={}", audit_quote(e.what()));
            }
            door->resume([door, streaming, security, durable, owner = request.owner,
                          planned = std::move(planned)]() mutable {
                if (auto* refused = std::get_if<HttpResponse>(&planned)) {
                    return door->send(std::move(*refused));
                }
                std::shared_ptr<void> slot = std::make_shared<int>(0);
                if (security) {
                    auto acquired = security->acquire_connection(owner, door->remote(), "sse");
                    if (!acquired.slot) return door->send(too_many_connections(acquired.limit));
                    slot = std::move(acquired.slot);
                }
                door->hand_over(200, [&](FlexStream&& stream) {
                    auto session = std::make_shared<DurableSseSession>(
                        std::move(stream), streaming, *durable,
                        std::get<SsePlan>(std::move(planned)), door->remote());
                    session->run(door->cors_origin());
                    session->hold(std::move(slot));
                    session->hold(durable->live_reader(LiveMode::sse));
                    return session;
                });
            });
        });
    if (!queued) {
        door->send(HttpResponse{503,
                                "application/json",
                                json::error_body("busy", "the broker is busy; try again"),
                                {{"Retry-After", "1"}}});
    }
}

}  // namespace jobcast::web::streams
