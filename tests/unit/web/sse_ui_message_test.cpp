// format=ui-message over a real SSE session, hub and store: an attempt that
// resumes from a checkpoint restates the job's text, which the session folds
// from the store when that attempt starts (it keeps no copy of the text), so
// a stream resumed past the checkpoint restates it too.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/strand.hpp>
#include <future>
#include <thread>

#include "live/hub.hpp"
#include "live/live_feed.hpp"
#include "protocol/client_api.hpp"
#include "protocol/job_fold.hpp"
#include "test_support.hpp"
#include "web/http/flex_stream.hpp"
#include "web/stream/sse_session.hpp"

using namespace jobcast;
using namespace jobcast::web;
using namespace jobcast::web::test;
namespace net = boost::asio;

namespace {

template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (!predicate()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

// A store whose commits reach a hub, as in the broker, and I/O threads
// running SSE sessions on accepted loopback connections.
struct SseFixture {
    SseFixture() {
        ctx = std::make_shared<StreamingContext>(StreamingContext{
            hub, store->jobs(), store->events(), commands,
            [this](std::function<void()> task) { return pool.post(std::move(task)); }, config,
            stats, nullptr});
        ctx->attach({io.get_executor()});  // its lane and keepalive sweep
        for (int i = 0; i < 2; ++i)
            io_threads.emplace_back([this] { io.run(); });
    }
    ~SseFixture() {
        store->flush();
        hub.drain();
        hub.stop();
        work.reset();
        io.stop();
        for (auto& thread : io_threads)
            thread.join();
        pool.stop();
        store->close();
    }

    void run(store::WriteOp op) {
        std::promise<store::WriteResult> done;
        store->submit(std::move(op), [&](const store::WriteResult& r) { done.set_value(r); });
        REQUIRE(done.get_future().get().status == store::WriteStatus::ok);
    }

    store::AppendChunk token(int attempt, std::uint64_t wseq, const std::string& text) {
        store::AppendChunk op;
        op.job = "J";
        op.attempt = attempt;
        op.wseq = wseq;
        op.ts = 1'700'000'002'000'000;
        op.data = R"({"text":")" + text + R"("})";
        return op;
    }

    // An SSE stream of J after `after` in the UI message format; read() gives
    // its body once the session ended it.
    struct Client {
        std::unique_ptr<net::ip::tcp::socket> socket;
        std::string read() {
            std::string received;
            boost::system::error_code ec;
            net::read(*socket, net::dynamic_buffer(received), ec);
            REQUIRE(ec == net::error::eof);
            const auto body = received.find("\r\n\r\nretry: 1000\n\n");
            REQUIRE(body != std::string::npos);
            return received.substr(body + 17);
        }
    };
    Client open(std::uint64_t after, int attempt) {
        net::ip::tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), 0});
        Client client{std::make_unique<net::ip::tcp::socket>(io)};
        client.socket->connect(acceptor.local_endpoint());
        auto strand = net::make_strand(io);
        net::ip::tcp::socket accepted(strand);
        acceptor.accept(accepted);
        // Started on its strand, as the HTTP session hands a connection over.
        std::promise<void> started;
        net::post(strand, [&] {
            start_sse_session(FlexStream(std::move(accepted)), ctx, "alice", "test", "J", after, 0,
                              {}, client_api::UiMessageStream("J", after, attempt));
            started.set_value();
        });
        started.get_future().wait();
        return client;
    }

    TempDir dir;
    live::LocalFeed feed;
    std::unique_ptr<store::Store> store = store::Store::open(
        [this] {
            store::StoreConfig config;
            config.path = (dir.path() / "jobcast.db").string();
            return config;
        }(),
        [this](store::CommittedBatch& batch) { hub.publish(std::move(batch.events)); });
    live::Hub hub{feed, live::fill_from(store->events())};
    BlockingPool pool{2};
    store::StoreCommands commands{*store};
    StreamingConfig config;
    StreamStats stats;
    net::io_context io;
    net::executor_work_guard<net::io_context::executor_type> work{io.get_executor()};
    std::shared_ptr<StreamingContext> ctx;
    std::vector<std::thread> io_threads;
};

// What a stream after `after` writes for the whole log, its restatement
// folded from that log.
std::string expected_stream(const std::vector<Event>& log, std::uint64_t after, int attempt) {
    client_api::UiMessageStream stream("J", after, attempt);
    std::string out = stream.format(log);
    while (const auto through = stream.restating()) {
        client_api::JobFold fold;
        client_api::fold_events(
            fold,
            std::vector<Event>(log.begin(), log.begin() + static_cast<std::ptrdiff_t>(through)), 0);
        out += stream.restate(fold.text);
        out += stream.format(log);
    }
    return out;
}

// The text of each text part of a UI message stream, in order.
std::vector<std::string> text_parts(const std::string& sse) {
    std::vector<std::string> parts;
    std::size_t at = 0;
    while ((at = sse.find("data: {", at)) != std::string::npos) {
        const auto end = sse.find('\n', at);
        auto chunk = boost::json::parse(sse.substr(at + 6, end - at - 6)).as_object();
        if (chunk.at("type") == "text-start") parts.emplace_back();
        if (chunk.at("type") == "text-delta") parts.back() += chunk.at("delta").as_string();
        at = end;
    }
    return parts;
}

}  // namespace

TEST_CASE("ui-message over SSE: a resumed attempt restates the text folded from the store",
          "[web][stream][ui_message]") {
    SseFixture f;
    Job job;
    job.id = "J";
    job.type = "llm.generate";
    job.owner = "alice";
    job.max_attempts = 3;
    job.created_at = 1'700'000'000'000;
    f.run(store::CreateJob{job, ""});                                   // seq 1 queued
    f.run(store::LeaseJob{"J", "w1", 1'700'000'001'000});               // seq 2 running, attempt 1
    f.run(f.token(1, 1, "one "));                                       // seq 3
    f.run(f.token(1, 2, "two "));                                       // seq 4
    f.run(store::SaveCheckpoint{"J", 1, 3, "ck"});                      // covers seq 4
    f.run(f.token(1, 4, "thr"));                                        // seq 5
    f.run(store::RequeueJob{"J", 1, "lease lost", 1'700'000'003'000});  // seq 6 queued

    // Streams that started past the checkpoint, and one from the start, live.
    auto resumed = f.open(5, 1);
    auto whole = f.open(0, 0);
    REQUIRE(eventually([&] { return f.hub.subscriptions() == 2 && f.stats.catching_up == 0; }));

    f.run(store::LeaseJob{"J", "w2", 1'700'000'004'000});  // seq 7 running, attempt 2
    f.run(f.token(2, 1, "three"));                         // seq 8
    store::FinishJob finish;
    finish.job = "J";
    finish.attempt = 2;
    finish.wseq = 2;
    finish.result = R"({"text":"one two three"})";
    finish.now = 1'700'000'005'000;
    f.run(finish);  // seq 9 result, seq 10 succeeded

    const auto log = f.store->events().read("J", 0, 100);
    REQUIRE(log.size() == 10);
    REQUIRE(log[6].data == R"({"state":"running","attempt":2,"worker":"w2","resume_seq":4})");

    const auto live_resumed = resumed.read();
    CHECK(live_resumed == expected_stream(log, 5, 1));
    CHECK(text_parts(live_resumed) == std::vector<std::string>{"one two three"});
    CHECK(live_resumed.find("id: 7\ndata: {\"type\":\"text-delta\",\"id\":\"J-2\","
                            "\"delta\":\"one two \"}\n\n") != std::string::npos);
    const auto live_whole = whole.read();
    CHECK(live_whole == expected_stream(log, 0, 0));
    CHECK(text_parts(live_whole) == std::vector<std::string>{"one two thr", "one two three"});

    // The same streams replayed from the store once the job has ended.
    CHECK(f.open(5, 2).read() == live_resumed);
    CHECK(f.open(0, 2).read() == live_whole);
}
