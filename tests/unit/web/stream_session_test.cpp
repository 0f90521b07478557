// StreamSession's delivery and write path on a real hub and store: the hub's
// lanes into the I/O threads, live frames merged per job behind a write in
// flight, and a WebSocket whose peer stops answering being found by the
// keepalive sweep.
#include "web/stream/stream_session.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <map>
#include <set>
#include <thread>

#include "live/live_feed.hpp"
#include "protocol/client_api.hpp"
#include "test_support.hpp"
#include "web/stream/websocket_session.hpp"

using namespace jobcast;
using namespace jobcast::web;
using namespace jobcast::web::test;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;

namespace {

// A session that records what it writes; each write completes only when the
// test says (the socket is "writable again").
class RecordingSession final : public StreamSession {
  public:
    // `sse`: pages and live batches as SSE text, else as WebSocket frames.
    // `framed`: store pages framed on the read thread from the store's blocks
    // (replay_format), else from Events by page_frame. `auto_complete`: each
    // write completes at once, else only when the test says.
    RecordingSession(std::shared_ptr<StreamingContext> ctx, net::any_io_executor strand,
                     bool sse = false, bool framed = false, bool auto_complete = false)
        : StreamSession(std::move(ctx), std::move(strand), "alice", Transport::websocket),
          sse_(sse),
          framed_(framed),
          auto_complete_(auto_complete) {}

    void subscribe(const std::string& job, std::uint64_t after = 0) {
        net::post(strand_, [self = self(), job, after] { self->begin_subscription(job, after); });
    }
    void unsubscribe(const std::string& job) {
        net::post(strand_, [self = self(), job] { self->end_subscription(job); });
    }
    // Completes the write in flight.
    void complete_write() {
        net::post(strand_, [self = self()] { self->on_write_done({}); });
    }
    std::vector<std::string> written() {
        std::lock_guard lock(mutex_);
        return written_;
    }
    void request_close(std::uint16_t) override {}
    // The threads each write started on.
    std::vector<std::thread::id> writer_threads() {
        std::lock_guard lock(mutex_);
        return writer_threads_;
    }

  private:
    std::shared_ptr<RecordingSession> self() {
        return std::static_pointer_cast<RecordingSession>(shared_from_this());
    }
    void write_front(const std::shared_ptr<const std::string>& bytes) override {
        {
            std::lock_guard lock(mutex_);
            written_.push_back(*bytes);
            writer_threads_.push_back(std::this_thread::get_id());
        }
        if (auto_complete_) complete_write();
    }
    std::shared_ptr<const std::string> live_frame(const live::Published& published,
                                                  std::size_t skip) override {
        return std::make_shared<const std::string>(
            client_api::websocket_frame(published.job, published.events, skip));
    }
    std::optional<client_api::PageFramer::Format> replay_format() const override {
        if (!framed_) return std::nullopt;
        return sse_ ? client_api::PageFramer::Format::sse
                    : client_api::PageFramer::Format::websocket;
    }
    std::shared_ptr<const std::string> page_frame(const std::string& job,
                                                  const std::vector<Event>& events) override {
        return std::make_shared<const std::string>(sse_ ? client_api::sse_text(job, events)
                                                        : client_api::websocket_frame(job, events));
    }
    std::shared_ptr<const std::string> coalesced_frame(
        const std::vector<LiveSlice>& slices, const std::vector<const std::string*>&) override {
        std::vector<client_api::EventSlice> events;
        for (const auto& slice : slices)
            events.push_back({&slice.published->events, slice.skip});
        return std::make_shared<const std::string>(
            client_api::websocket_frame(slices.front().published->job, events));
    }

    bool sse_, framed_, auto_complete_;
    std::mutex mutex_;
    std::vector<std::string> written_;
    std::vector<std::thread::id> writer_threads_;
};

template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (!predicate()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

std::vector<store::JobEvents> commit(const std::string& job, std::uint64_t first,
                                     std::uint64_t last) {
    store::JobEvents je{job, "alice", {}};
    for (auto seq = first; seq <= last; ++seq) {
        Event e;
        e.seq = seq;
        e.kind = EventKind::token;
        e.data = R"({"text":")" + job + std::to_string(seq) + R"("})";
        je.events.push_back(e);
    }
    return {je};
}

// (job, seq) of every event of a written frame, in order.
std::vector<std::pair<std::string, std::uint64_t>> events_of(const std::string& frame) {
    auto value = boost::json::parse(frame).as_object();
    std::string job(value.at("job").as_string());
    std::vector<std::pair<std::string, std::uint64_t>> out;
    if (value.at("type") == "event") {
        out.emplace_back(job, value.at("seq").to_number<std::uint64_t>());
    } else {
        for (const auto& e : value.at("events").as_array())
            out.emplace_back(job, e.at("seq").to_number<std::uint64_t>());
    }
    return out;
}

// A hub on a real store, and I/O threads running the sessions, each its own
// io_context with its own lane and sweep (as in the HTTP server).
struct StreamFixture {
    explicit StreamFixture(StreamingConfig config = {}, std::size_t threads = 2)
        : ios(make_ios(threads)), io(*ios.front()) {
        ctx = std::make_shared<StreamingContext>(StreamingContext{
            hub, store->jobs(), store->events(), commands,
            [this](std::function<void()> task) { return pool.post(std::move(task)); }, config,
            stats, nullptr});
        std::vector<IoExecutor> executors;
        for (auto& each : ios) {
            executors.push_back(each->get_executor());
            work.push_back(net::make_work_guard(*each));
            io_threads.emplace_back([&each = *each] { each.run(); });
        }
        ctx->attach(executors);
    }
    ~StreamFixture() {
        hub.stop();
        for (auto& guard : work)
            guard.reset();
        for (auto& each : ios)
            each->stop();
        for (auto& thread : io_threads)
            thread.join();
        pool.stop();
        store->close();
    }

    static std::vector<std::unique_ptr<net::io_context>> make_ios(std::size_t count) {
        std::vector<std::unique_ptr<net::io_context>> made;
        for (std::size_t i = 0; i < count; ++i)
            made.push_back(std::make_unique<net::io_context>(1));
        return made;
    }

    // A session on the next I/O thread's io_context, in turn.
    std::shared_ptr<RecordingSession> session(bool sse = false, bool framed = false,
                                              bool auto_complete = false) {
        return std::make_shared<RecordingSession>(ctx, net::make_strand(*ios[next++ % ios.size()]),
                                                  sse, framed, auto_complete);
    }

    TempDir dir;
    std::unique_ptr<store::Store> store = open_store(dir);
    BlockingPool pool{2};
    store::StoreCommands commands{*store};
    live::LocalFeed feed;
    live::Hub hub{feed, live::fill_from(store->events())};
    StreamStats stats;
    std::vector<std::unique_ptr<net::io_context>> ios;
    net::io_context& io;  // the first
    std::vector<net::executor_work_guard<net::io_context::executor_type>> work;
    std::size_t next = 0;
    std::shared_ptr<StreamingContext> ctx;
    std::vector<std::thread> io_threads;
};

}  // namespace

TEST_CASE("a session gets the hub lane of its own I/O thread's io_context", "[web][stream]") {
    StreamFixture f({}, 3);
    std::vector<std::shared_ptr<RecordingSession>> sessions;
    std::vector<live::LiveLane*> lane_of;  // of io_context k
    for (int i = 0; i < 12; ++i) {
        sessions.push_back(f.session());  // on io_context i % 3
        auto* lane = sessions.back()->lane().get();
        REQUIRE(lane != nullptr);
        if (lane_of.size() < 3) {
            lane_of.push_back(lane);
        } else {
            CHECK(lane == lane_of[static_cast<std::size_t>(i) % 3]);
        }
    }
    CHECK(std::set<live::LiveLane*>(lane_of.begin(), lane_of.end()).size() == 3);
    // A session on an io_context the lanes were not made for has none: the
    // hub delivers to it from its own thread.
    net::io_context other;
    auto stray =
        std::make_shared<RecordingSession>(f.ctx, net::make_strand(other), false, false, false);
    CHECK(stray->lane() == nullptr);

    // Every session gets every commit, in order, through its lane.
    for (auto& s : sessions)
        s->subscribe("J");
    REQUIRE(
        eventually([&] { return f.hub.subscriptions() == 12 && f.stats.catching_up.load() == 0; }));
    f.hub.publish(commit("J", 1, 1));
    f.hub.drain();
    REQUIRE(eventually([&] {
        for (auto& s : sessions) {
            if (s->written().size() != 1) return false;
        }
        return true;
    }));
    for (std::size_t i = 0; i < sessions.size(); ++i) {
        CHECK(events_of(sessions[i]->written().front()) ==
              std::vector<std::pair<std::string, std::uint64_t>>{{"J", 1}});
        // Written on the thread of the session's own io_context: nothing
        // was handed to another I/O thread.
        CHECK(sessions[i]->writer_threads() ==
              std::vector<std::thread::id>{f.io_threads[i % 3].get_id()});
    }
}

TEST_CASE("live frames queued behind a write in flight go out as one frame per job, in order",
          "[web][stream]") {
    StreamFixture f;
    auto s = f.session();
    s->subscribe("A");
    s->subscribe("B");
    REQUIRE(
        eventually([&] { return f.hub.subscriptions() == 2 && f.stats.catching_up.load() == 0; }));

    f.hub.publish(commit("A", 1, 1));  // written at once; its write stays in flight
    f.hub.drain();
    REQUIRE(eventually([&] { return s->written().size() == 1; }));
    f.hub.publish(commit("B", 1, 1));
    f.hub.publish(commit("A", 2, 3));
    f.hub.publish(commit("B", 2, 2));
    f.hub.publish(commit("A", 4, 4));
    f.hub.drain();
    REQUIRE(eventually([&] { return f.stats.queued_bytes.load() > 0; }));
    // Let the four queued frames reach the session before the socket is writable again.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));

    s->complete_write();
    REQUIRE(eventually([&] { return s->written().size() == 2; }));
    s->complete_write();
    REQUIRE(eventually([&] { return s->written().size() == 3; }));
    s->complete_write();
    REQUIRE(eventually([&] { return f.stats.queued_bytes.load() == 0; }));

    // Three writes instead of five: B's two commits, then A's two, each one frame.
    auto written = s->written();
    REQUIRE(written.size() == 3);
    using Seqs = std::vector<std::pair<std::string, std::uint64_t>>;
    CHECK(events_of(written[0]) == Seqs{{"A", 1}});
    CHECK(events_of(written[1]) == Seqs{{"B", 1}, {"B", 2}});
    CHECK(events_of(written[2]) == Seqs{{"A", 2}, {"A", 3}, {"A", 4}});
    CHECK(f.stats.coalesced_frames.load() == 2);
    CHECK(f.stats.delivered[0].load() == 6);
    // The bytes of each event are the ones the hub published.
    auto text = boost::json::parse(written[2]).at("events").at(1).at("data").at("text");
    CHECK(text == "A3");
}

TEST_CASE("a WebSocket whose peer stops answering is closed within 2 x ping interval and a tick",
          "[web][stream]") {
    StreamingConfig config;
    config.ws_ping_interval = std::chrono::milliseconds(300);
    StreamFixture f(config);

    net::ip::tcp::acceptor acceptor(f.io, {net::ip::make_address("127.0.0.1"), 0});
    auto endpoint = acceptor.local_endpoint();
    std::vector<std::shared_ptr<std::function<void()>>> readers;
    std::atomic<bool> reading{false};
    auto connect = [&](bool answers) {
        // The server side: accept, read the upgrade request, start the session.
        std::promise<void> started;
        acceptor.async_accept(net::make_strand(f.io), [&](beast::error_code ec,
                                                          net::ip::tcp::socket socket) {
            REQUIRE(!ec);
            auto stream = std::make_shared<FlexStream>(std::move(socket));
            auto buffer = std::make_shared<beast::flat_buffer>();
            auto request = std::make_shared<http::request<http::string_body>>();
            http::async_read(*stream, *buffer, *request,
                             [&, stream, buffer, request](beast::error_code ec, std::size_t) {
                                 REQUIRE(!ec);
                                 start_websocket_session(std::move(*stream), std::move(*request),
                                                         f.ctx, "alice", "test");
                                 started.set_value();
                             });
        });
        auto client = std::make_unique<websocket::stream<beast::tcp_stream>>(f.io);
        beast::get_lowest_layer(*client).connect(endpoint);
        client->handshake("127.0.0.1", "/v1/ws");
        started.get_future().wait();
        if (answers) {
            // A reading client answers pings (Beast answers them inside reads).
            auto buffer = std::make_shared<beast::flat_buffer>();
            auto read = std::make_shared<std::function<void()>>();
            *read = [&, ws = client.get(), buffer, weak = std::weak_ptr(read)] {
                ws->async_read(*buffer, [&, buffer, weak](beast::error_code ec, std::size_t) {
                    auto again = weak.lock();
                    if (ec) reading = false;
                    if (!ec && again) (*again)();
                });
            };
            reading = true;
            (*read)();
            readers.push_back(read);
        }
        return client;
    };

    // A client that answers stays open over many intervals.
    auto answering = connect(true);
    std::this_thread::sleep_for(5 * config.ws_ping_interval);
    CHECK(f.stats.connections[0].load() == 1);
    CHECK(f.stats.slow_closes.load() == 0);

    // A client that never reads never answers a ping: it is gone for the
    // broker within 2 x ping interval (plus a little scheduling).
    auto silent = connect(false);
    CHECK(f.stats.connections[0].load() == 2);
    auto opened = std::chrono::steady_clock::now();
    REQUIRE(eventually([&] { return f.stats.connections[0].load() == 1; }));
    auto took = std::chrono::steady_clock::now() - opened;
    CHECK(took >= config.ws_ping_interval);  // one ping, then one unanswered interval
    CHECK(took <= 2 * config.ws_ping_interval + std::chrono::milliseconds(500));
    CHECK(f.stats.slow_closes.load() == 1);

    // A client that sends ops (activity: it is not pinged) but never reads,
    // then falls silent, as a peer that vanishes does: closed within the
    // documented bound of its last op, 2 x ping interval plus one sweep tick.
    auto vanishing = connect(false);
    CHECK(f.stats.connections[0].load() == 2);
    for (int i = 0; i < 15; ++i) {
        vanishing->write(net::buffer(std::string_view(R"({"op":"ping"})")));
        std::this_thread::sleep_for(config.ws_ping_interval / 3);
    }
    vanishing->write(net::buffer(std::string_view(R"({"op":"ping"})")));
    auto last_op = std::chrono::steady_clock::now();
    CHECK(f.stats.connections[0].load() == 2);  // busy for 5 intervals: never dropped
    REQUIRE(eventually([&] { return f.stats.connections[0].load() == 1; }));
    took = std::chrono::steady_clock::now() - last_op;
    CHECK(took >= config.ws_ping_interval);
    CHECK(took <= 2 * config.ws_ping_interval +
                      config.ws_ping_interval / static_cast<int>(KeepaliveSweep::kSlots) +
                      std::chrono::milliseconds(500));
    CHECK(f.stats.slow_closes.load() == 2);

    beast::get_lowest_layer(*answering).close();
    REQUIRE(eventually([&] { return f.stats.connections[0].load() == 0 && !reading; }));
}

namespace {

// A finished job of alice's: queued, running, `tokens` tokens (some with
// escapes and non-ASCII text), then succeeded, committed in commits of 5.
// Returns the job's last seq (queued, running, the tokens, then the finish's two).
std::uint64_t finished_job(store::Store& store, const std::string& id, int tokens) {
    started_job(store, id);
    std::uint64_t wseq = 0;
    for (int t = 1; t <= tokens;) {
        std::vector<store::WriteOp> ops;
        for (int i = 0; i < 5 && t <= tokens; ++i, ++t) {
            store::AppendChunk chunk;
            chunk.job = id;
            chunk.attempt = 1;
            chunk.wseq = ++wseq;
            chunk.kind = t % 7 == 0 ? EventKind::log : EventKind::token;
            chunk.ts = 1'700'000'002'000'000 + t;
            chunk.data = t % 3 == 0 ? R"({"text":"\"q\"\n\u00e9 é )" + std::to_string(t) + R"("})"
                                    : R"({"text":"t)" + std::to_string(t) + R"("})";
            ops.emplace_back(std::move(chunk));
        }
        store.submit_many(std::move(ops));
        store.flush();
    }
    store::FinishJob finish;
    finish.job = id;
    finish.attempt = 1;
    finish.wseq = ++wseq;
    finish.now = 1'700'000'003'000;
    REQUIRE(submit_sync(store, std::move(finish)).status == store::WriteStatus::ok);
    return store.events().last_seq(id).value_or(0);
}

// The fixture's context with its store reads held until the test runs them,
// in the order it chooses (each on the thread that runs it).
struct HeldReads {
    explicit HeldReads(StreamFixture& f) : ctx(std::make_shared<StreamingContext>(*f.ctx)) {
        ctx->run_blocking = [this](std::function<void()> task) {
            std::lock_guard lock(mutex);
            tasks.push_back(std::move(task));
            return true;
        };
    }
    std::size_t count() {
        std::lock_guard lock(mutex);
        return tasks.size();
    }
    // Runs read `i` (copied under the lock: a strand may add one meanwhile).
    void run(std::size_t i) {
        std::function<void()> task;
        {
            std::lock_guard lock(mutex);
            task = tasks[i];
        }
        task();
    }
    // Lets the reads' hold on their sessions go.
    void clear() {
        std::lock_guard lock(mutex);
        tasks.clear();
    }

    std::mutex mutex;
    std::vector<std::function<void()>> tasks;
    std::shared_ptr<StreamingContext> ctx;
};

}  // namespace

TEST_CASE("a replay framed from the store's blocks writes the bytes framing its Events does",
          "[web][stream][resume]") {
    StreamingConfig config;
    config.replay_page = 7;  // pages end inside blocks and across them
    StreamFixture f(config);
    const std::uint64_t last = finished_job(*f.store, "R", 60);
    REQUIRE(last == 64);  // queued, running, 60 tokens, then the finish's two

    for (bool sse : {false, true}) {
        CAPTURE(sse);
        for (std::uint64_t after : {0, 1, 30, 63}) {
            CAPTURE(after);
            // What a client is sent: one frame per page of 7 read after `after`.
            std::vector<std::string> want;
            for (std::uint64_t at = after; at < last;) {
                auto page = f.store->events().read("R", at, 7);
                REQUIRE_FALSE(page.empty());
                want.push_back(sse ? client_api::sse_text("R", page)
                                   : client_api::websocket_frame("R", page));
                at = page.back().seq;
            }
            for (bool framed : {false, true}) {
                CAPTURE(framed);
                auto s = f.session(sse, framed, true);
                s->subscribe("R", after);
                // The terminal event ends the subscription once its page is out.
                REQUIRE(eventually([&] {
                    return s->written().size() >= want.size() && f.hub.subscriptions() == 0;
                }));
                CHECK(s->written() == want);
            }
        }
    }
}

TEST_CASE("a re-subscribe is not moved by the store read its earlier subscription began",
          "[web][stream][resume]") {
    StreamFixture f;
    const std::uint64_t last = finished_job(*f.store, "R", 60);
    REQUIRE(last == 64);

    // Store reads wait until the test runs them, in the order it chooses.
    HeldReads reads(f);
    auto s =
        std::make_shared<RecordingSession>(reads.ctx, net::make_strand(f.io), false, false, true);
    s->subscribe("R", 40);
    REQUIRE(eventually([&] { return reads.count() == 1; }));
    s->subscribe("R", 0);  // the client asks for the whole log instead
    REQUIRE(eventually([&] { return reads.count() == 2; }));
    // The first subscription's page (41..64, the end) comes back first.
    reads.run(0);
    reads.run(1);
    REQUIRE(eventually([&] { return f.hub.subscriptions() == 0; }));
    std::vector<std::pair<std::string, std::uint64_t>> got;
    for (const auto& frame : s->written())
        for (auto& e : events_of(frame))
            got.push_back(e);
    std::vector<std::pair<std::string, std::uint64_t>> want;
    for (std::uint64_t seq = 1; seq <= last; ++seq)
        want.emplace_back("R", seq);
    CHECK(got == want);
}

TEST_CASE("a live batch past a hole has the hole read from the store with nothing else to write",
          "[web][stream][resume]") {
    // Cluster mode hands a subscriber batches with holes (a pub/sub message
    // lost in a failover, caught up by the job's newest event alone): the
    // subscription reads the hole from the store at once, even on a
    // connection that has nothing queued and no other job to write.
    StreamFixture f;
    started_job(*f.store, "G");
    auto s = f.session(false, false, true);
    s->subscribe("G");
    REQUIRE(
        eventually([&] { return f.hub.subscriptions() == 1 && f.stats.catching_up.load() == 0; }));

    // Three more events are committed; only the last one reaches the hub.
    for (std::uint64_t wseq = 1; wseq <= 3; ++wseq) {
        store::AppendChunk chunk;
        chunk.job = "G";
        chunk.attempt = 1;
        chunk.wseq = wseq;
        chunk.kind = EventKind::token;
        chunk.ts = 1'700'000'002'000'000 + wseq;
        chunk.data = R"({"text":"t)" + std::to_string(wseq) + R"("})";
        REQUIRE(submit_sync(*f.store, std::move(chunk)).status == store::WriteStatus::ok);
    }
    const auto newest = f.store->events().read("G", 4, 10);
    REQUIRE(newest.size() == 1);
    REQUIRE(newest.front().seq == 5);
    f.hub.publish({store::JobEvents{"G", "alice", newest}});
    f.hub.drain();

    using Seqs = std::vector<std::pair<std::string, std::uint64_t>>;
    const Seqs want{{"G", 1}, {"G", 2}, {"G", 3}, {"G", 4}, {"G", 5}};
    const auto got = [&] {
        Seqs seqs;
        for (const auto& frame : s->written())
            for (auto& e : events_of(frame))
                seqs.push_back(e);
        return seqs;
    };
    CHECK(eventually([&] { return got() == want; }));
    CHECK(got() == want);
    CHECK(f.stats.catching_up.load() == 0);
}

// What a session wrote, as (job, seq) in order.
std::vector<std::pair<std::string, std::uint64_t>> seqs_written(RecordingSession& s) {
    std::vector<std::pair<std::string, std::uint64_t>> got;
    for (const auto& frame : s.written())
        for (auto& e : events_of(frame))
            got.push_back(e);
    return got;
}

std::vector<std::pair<std::string, std::uint64_t>> seqs_of(const std::string& job,
                                                           std::uint64_t last) {
    std::vector<std::pair<std::string, std::uint64_t>> want;
    for (std::uint64_t seq = 1; seq <= last; ++seq)
        want.emplace_back(job, seq);
    return want;
}

TEST_CASE("a catching-up reader's store read runs on from page to page while it keeps up",
          "[web][stream][resume]") {
    StreamingConfig config;
    config.replay_page = 4;  // 64 events: 16 pages, far less than half the queue
    StreamFixture f(config);
    const std::uint64_t last = finished_job(*f.store, "R", 60);
    REQUIRE(last == 64);
    std::atomic<int> reads{0};
    auto ctx = std::make_shared<StreamingContext>(*f.ctx);
    ctx->run_blocking = [&](std::function<void()> task) {
        ++reads;
        return f.pool.post(std::move(task));
    };
    for (bool framed : {true, false}) {
        CAPTURE(framed);
        reads = 0;
        // Each write completes at once: the client keeps up.
        auto s =
            std::make_shared<RecordingSession>(ctx, net::make_strand(f.io), false, framed, true);
        s->subscribe("R", 0);
        // The terminal event ends the subscription once its page is out.
        REQUIRE(
            eventually([&] { return s->written().size() >= 16 && f.hub.subscriptions() == 0; }));
        CHECK(seqs_written(*s) == seqs_of("R", last));
        CHECK(s->written().size() == 16);  // a frame per page
        CHECK(reads == 1);                 // one store read for all of them, not one per page
    }
}

TEST_CASE("a store read running on stops when half the queue is taken", "[web][stream][resume]") {
    StreamingConfig config;
    config.replay_page = 4;          // 64 events: 16 pages
    config.max_queue_bytes = 4'000;  // reads go on while at most 2,000 bytes are queued
    StreamFixture f(config);
    const std::uint64_t last = finished_job(*f.store, "R", 60);
    REQUIRE(last == 64);

    // Store reads wait until the test runs them; writes until it completes them.
    HeldReads reads(f);
    auto s =
        std::make_shared<RecordingSession>(reads.ctx, net::make_strand(f.io), false, true, false);
    s->subscribe("R", 0);
    REQUIRE(eventually([&] { return reads.count() == 1; }));
    reads.run(0);  // one read, page after page while the queue has room
    REQUIRE(eventually([&] { return s->written().size() == 1; }));
    const auto first_page = static_cast<std::int64_t>(s->written().front().size());
    REQUIRE(first_page < 500);  // so the read could run on past its first pages
    // What it read is queued behind the write in flight: several pages, and
    // no more than half the queue and a page (a page queued and not yet
    // taken off the pages in transit counts twice for a moment: the read may
    // stop a page early, never late).
    REQUIRE(eventually([&] { return f.stats.queued_bytes.load() > 2 * first_page; }));
    CHECK(f.stats.queued_bytes.load() <= 2'000 + 2 * first_page);

    // Write after write, running the reads they let begin: every event once, in order.
    std::size_t ran = 1;
    for (std::size_t completed = 0; completed < 16; ++completed) {
        REQUIRE(eventually([&] {
            while (ran < reads.count())
                reads.run(ran++);
            return s->written().size() == completed + 1;  // a write in flight
        }));
        CHECK(f.stats.queued_bytes.load() <= 2'000 + 2 * first_page);
        s->complete_write();
    }
    REQUIRE(eventually([&] { return f.hub.subscriptions() == 0; }));
    CHECK(seqs_written(*s) == seqs_of("R", last));
    CHECK(s->written().size() == 16);
}

TEST_CASE("pages of an ended subscription on their way hold no other subscription's read back",
          "[web][stream][resume]") {
    StreamingConfig config;
    config.replay_page = 4;
    config.max_queue_bytes = 2'000;  // reads begin while at most 1,000 bytes are queued
    StreamFixture f(config);
    finished_job(*f.store, "X", 60);
    finished_job(*f.store, "Y", 60);
    // The session's strand runs only when the test polls its io_context
    // (kept from stopping when it runs out of handlers).
    net::io_context strand_io;
    auto keep_polling = net::make_work_guard(strand_io);
    HeldReads reads(f);
    auto s = std::make_shared<RecordingSession>(reads.ctx, net::make_strand(strand_io), false, true,
                                                true);
    s->subscribe("X", 0);
    strand_io.poll();
    REQUIRE(reads.count() == 1);
    // The client leaves X and subscribes to Y; then X's read runs: its pages
    // (more than half the queue) are on their way when Y's subscription
    // asks for a read, which waits for them.
    s->unsubscribe("X");
    s->subscribe("Y", 0);
    reads.run(0);
    strand_io.poll();
    // X's pages were dropped; the read Y waited for must have begun.
    REQUIRE(reads.count() == 2);
    // Then Y is read to its end, every event once, in order.
    std::size_t ran = 1;
    for (int round = 0; round < 1'000; ++round) {
        while (ran < reads.count())
            reads.run(ran++);
        if (strand_io.poll() == 0 && ran == reads.count()) break;
    }
    const auto last = f.store->events().last_seq("Y").value_or(0);
    CHECK(seqs_written(*s) == seqs_of("Y", last));
    CHECK(f.hub.subscriptions() == 0);
    s.reset();
    reads.clear();  // the reads' hold on the session goes before its io_context
}
