// Internal to web/: what WebSocket and SSE sessions share — a bounded
// outbound queue of shared, pre-serialized frames, the subscriptions of the
// connection (replay from the store, then live from the hub), and the
// slow-consumer switch. Everything here runs on the session's strand, except
// deliver(), which the hub's lane task calls (see StreamLanes).
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "live/hub.hpp"
#include "protocol/client_api.hpp"
#include "web/stream/frame_buffers.hpp"
#include "web/stream/keepalive_sweep.hpp"
#include "web/stream/per_io_thread.hpp"
#include "web/stream/stream_stats.hpp"
#include "web/stream/streaming_config.hpp"
#include "web/stream/subscription.hpp"

namespace jobcast::store {
class EventLog;
class JobCommands;
class JobStore;
}  // namespace jobcast::store

namespace jobcast::web {

class SecurityContext;

// The hub's lanes into the I/O threads: one strand per I/O thread, on that
// thread's io_context; a session gets the lane of its own io_context. After a
// commit the hub posts one task per lane, which walks the lane's sessions
// and runs each one's handler inline (its strand is dispatched to, not
// posted to): one wake-up per I/O thread per commit, not one per subscriber,
// and no hand-off to another thread.
class StreamLanes {
  public:
    StreamLanes();
    // One lane per io_context of `io` (the HTTP server's).
    void attach(const std::vector<IoExecutor>& io) { lanes_.attach(io); }
    // The lane for a session whose strand is `session_strand`. Null when the
    // strand is not an io_context strand or its io_context was not attached:
    // the hub then delivers to the session from its own thread.
    std::shared_ptr<live::LiveLane> pick(const boost::asio::any_io_executor& session_strand) {
        return lanes_.pick(session_strand);
    }
    // Lets the lanes go before their io_context does (a strand must not
    // outlive it); pick() answers null afterwards. The HTTP server calls it
    // when it goes.
    void release() { lanes_.release(); }

  private:
    PerIoThread<live::LiveLane> lanes_;
};

// Shared by every streaming session; owned by the server.
struct StreamingContext {
    live::Hub& hub;
    store::JobStore& jobs;
    store::EventLog& events;
    store::JobCommands& commands;
    std::function<bool(std::function<void()>)> run_blocking;  // off the I/O threads
    StreamingConfig config;
    StreamStats& stats;
    std::shared_ptr<SecurityContext> security;  // null: auth off, nothing limited or audited
    std::shared_ptr<StreamLanes> lanes = std::make_shared<StreamLanes>();
    // The WebSocket keepalive checks: one sweep per I/O thread.
    std::shared_ptr<KeepaliveSweeps> keepalive_sweeps =
        std::make_shared<KeepaliveSweeps>(config.keepalive, config.ws_ping_interval);
    // Replay pages are framed into buffers of pages already written: at most
    // 16 of 16 KiB to 1 MiB kept, 16 MiB at most (a page of 2,000 events of
    // ~100 bytes is ~250 KiB).
    std::shared_ptr<FrameBuffers> frame_buffers =
        std::make_shared<FrameBuffers>(16, 16 * 1024, 1 << 20);

    // A lane and a sweep on each of `io`, the I/O threads' io_contexts (the
    // HTTP server calls it; sessions on other io_contexts get neither).
    void attach(const std::vector<IoExecutor>& io) {
        lanes->attach(io);
        keepalive_sweeps->attach(io);
    }
};

// How long until `unix_seconds` (zero when it is past, at most about ten years;
// any int64 is safe), for token expiry timers.
std::chrono::steady_clock::duration seconds_until(std::int64_t unix_seconds);

class StreamSession : public live::LiveSink, public std::enable_shared_from_this<StreamSession> {
  public:
    StreamSession(std::shared_ptr<StreamingContext> ctx, boost::asio::any_io_executor strand,
                  std::string owner, Transport transport);
    ~StreamSession() override;

    // The lane's task (or the hub thread): run the batch on the strand, at
    // once when it is free.
    void deliver(const live::PublishedPtr& published) final;
    std::shared_ptr<live::LiveLane> lane() final { return lane_; }
    // Any thread: close the connection. WebSockets get `code` (1012 when the
    // broker restarts: reconnect and resume); SSE streams just end.
    virtual void request_close(std::uint16_t code) = 0;
    // Keeps `slot` (the connection's place under a connection limit) until
    // the session ends; a session may hold several (per owner, at accept).
    void hold(std::shared_ptr<void> slot) {
        if (slot) connection_slots_.push_back(std::move(slot));
    }

  protected:
    // Live events of one published batch, from `skip` on.
    struct LiveSlice {
        live::PublishedPtr published;
        std::size_t skip = 0;
    };
    struct Outgoing {
        std::shared_ptr<const std::string> bytes;
        // Live events carried (for their latency; empty for replay and
        // control frames). Several when queued frames were coalesced.
        std::vector<LiveSlice> live;
        std::size_t events = 0;
    };

    // Strand only. Registers with the hub first, then reads the store after
    // `after` (the replay-to-live switch; see Subscription), through
    // `written` at least (Subscription::reach) before it goes live.
    void begin_subscription(const std::string& job, std::uint64_t after, std::uint64_t written = 0);
    void end_subscription(const std::string& job);
    bool subscribed(const std::string& job) const { return subs_.count(job) != 0; }
    std::size_t subscription_count() const { return subs_.size(); }
    void begin_feed();
    void end_feed();
    // Drops every subscription: the connection is closing.
    void end_all();

    // The job if it exists and this connection's owner may see it; another
    // owner's job is indistinguishable from an unknown one. Blocking (SQLite):
    // call through ctx_->run_blocking.
    std::optional<Job> visible_job(const std::string& id) const;

    void enqueue_control(std::string frame);
    // True when a write has been stuck for longer than the stall timeout.
    bool stalled(std::chrono::steady_clock::time_point now) const;
    bool idle() const { return queue_.empty(); }

    // Transport hooks.
    // The format the hub serializes live batches in for this session (none:
    // the session formats them itself, in live_frame).
    virtual live::WireFormat live_format() const {
        return transport_ == Transport::sse ? live::WireFormat::sse : live::WireFormat::websocket;
    }
    virtual void write_front(const std::shared_ptr<const std::string>& bytes) = 0;
    virtual std::shared_ptr<const std::string> live_frame(const live::Published& published,
                                                          std::size_t skip) = 0;
    // How a page read from the store is framed: straight from the store's
    // blocks on the read thread, in this format (no Event copies); nullopt:
    // read as Events and framed by page_frame on the session's strand.
    virtual std::optional<client_api::PageFramer::Format> replay_format() const {
        return std::nullopt;
    }
    virtual std::shared_ptr<const std::string> page_frame(const std::string& job,
                                                          const std::vector<Event>& events) = 0;
    // One frame carrying every event of `slices` (consecutive live frames of
    // one job), written instead of them when the connection has a backlog.
    virtual std::shared_ptr<const std::string> coalesced_frame(
        const std::vector<LiveSlice>& slices, const std::vector<const std::string*>& frames) = 0;
    virtual void subscription_ended(const std::string& job) {}
    virtual void queue_drained() {}
    // Over the queue limit, the transport stops reading ops: each one queues
    // an answer, and a client that sends ops without reading the answers must
    // not grow the queue without bound. backlog_cleared() is called after
    // each write that leaves the queue at or under half the limit.
    bool backlogged() const { return queued_bytes_ > ctx_->config.max_queue_bytes; }
    virtual void backlog_cleared() {}
    // The transport calls this when write_front's write completes.
    void on_write_done(boost::beast::error_code ec);
    bool closing_ = false;

    std::shared_ptr<StreamingContext> ctx_;
    boost::asio::any_io_executor strand_;
    const std::string owner_;
    const Transport transport_;
    std::vector<std::shared_ptr<void>>
        connection_slots_;  // released before ctx_ (declared after it)

  private:
    void on_live(const live::PublishedPtr& published);
    void enqueue(Outgoing out);
    void enqueue_live(const live::PublishedPtr& published, std::size_t skip);
    void start_write();
    void coalesce_front();
    void pump_reads();
    // A page read for one subscription: its seqs, and its events framed
    // already (replay_format) or as Events for page_frame.
    struct ReplayPage {
        Subscription::StorePage seqs;
        std::shared_ptr<const std::string> frame;
        std::vector<Event> events;
        std::size_t bytes = 0;  // what it adds to the queue (about, when not framed yet)
    };
    // Reads the page after `after`, cut after a terminal event. True when a
    // read bound stopped it (more may follow).
    static bool read_replay(store::EventLog& log, FrameBuffers& buffers, const std::string& job,
                            std::uint64_t after, std::size_t limit, std::size_t max_bytes,
                            std::optional<client_api::PageFramer::Format> format, ReplayPage& page);
    // `serial`: the subscription the read is for (Subscription::serial).
    void read_page(const std::string& job, std::uint64_t serial, std::uint64_t after);
    // `more`: the same read goes on with the next page. False when the page
    // is not for the current subscription (or the session is closing).
    bool on_page(const std::string& job, std::uint64_t serial, ReplayPage page, bool full,
                 bool more);
    // Whether a store read may begin, or go on to its next page (any thread).
    bool reads_have_room() const;
    // queued_bytes_ (and the stats, and queued_for_reads_) changed by `delta`.
    void add_queued(std::int64_t delta);
    void retry_read_later(const std::string& job, std::uint64_t serial);
    // The subscription of `job` begun as `serial`, if it is still the current one.
    Subscription* current(const std::string& job, std::uint64_t serial);
    void set_catching_up(Subscription& sub, bool before);

    const std::shared_ptr<live::LiveLane> lane_;
    // Declared before subs_: the subscriptions give their bytes back to it.
    LiveBufferBudget live_budget_;
    std::unordered_map<std::string, Subscription> subs_;
    std::uint64_t subscriptions_begun_ = 0;
    bool feed_ = false;
    std::deque<Outgoing> queue_;
    std::size_t queued_bytes_ = 0;
    // Read by store reads running on (off the strand): queued_bytes_, and the
    // bytes of pages read that the strand has not queued yet.
    std::atomic<std::size_t> queued_for_reads_{0};
    std::atomic<std::size_t> pages_in_transit_{0};
    bool writing_ = false;
    std::chrono::steady_clock::time_point write_started_{};
};

}  // namespace jobcast::web
