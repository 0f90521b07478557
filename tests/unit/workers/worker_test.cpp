// The Worker against a minimal in-test broker (a ROUTER on tcp://127.0.0.1:*):
// hello/welcome/assign, wseq numbering, acks, re-send after a broker restart,
// gap and lease rejects, cancel, and the unacked bound's backpressure.
#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <future>
#include <iterator>
#include <map>
#include <thread>
#include <zmq.hpp>

#include "protocol/codec.hpp"
#include "workers/worker.hpp"

using namespace jobcast;
using namespace jobcast::worker;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Received {
    std::string peer;
    proto::WorkerMessage message;
};

class FakeBroker {
  public:
    explicit FakeBroker(zmq::context_t& context, const std::string& endpoint = "tcp://127.0.0.1:*")
        : router_(context, zmq::socket_type::router) {
        router_.set(zmq::sockopt::linger, 0);
        router_.set(zmq::sockopt::router_mandatory, true);
        // Re-binding the endpoint of a just-closed router can race its teardown.
        const auto deadline = Clock::now() + 5s;
        while (true) {
            try {
                router_.bind(endpoint);
                break;
            } catch (const zmq::error_t& e) {
                if (e.num() != EADDRINUSE || Clock::now() > deadline) throw;
                std::this_thread::sleep_for(10ms);
            }
        }
        endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    }

    const std::string& endpoint() const { return endpoint_; }
    void close() { router_.close(); }
    zmq::socket_t& socket() { return router_; }  // for a thread without Catch's macros

    // The next message within `timeout`, heartbeats skipped unless asked for.
    std::optional<Received> next(std::chrono::milliseconds timeout, bool heartbeats = false) {
        const auto deadline = Clock::now() + timeout;
        while (true) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) return std::nullopt;
            zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
            zmq::poll(&item, 1, left);
            if (!(item.revents & ZMQ_POLLIN)) continue;
            zmq::message_t peer, payload;
            (void)router_.recv(peer);
            (void)router_.recv(payload);
            auto decoded = proto::decode_worker_message(payload.to_string_view());
            REQUIRE(std::holds_alternative<proto::WorkerMessage>(decoded));
            Received r{peer.to_string(), std::get<proto::WorkerMessage>(std::move(decoded))};
            if (!heartbeats && std::holds_alternative<proto::Heartbeat>(r.message)) continue;
            return r;
        }
    }

    template <class T>
    T expect(std::chrono::milliseconds timeout = 5s) {
        auto r = next(timeout);
        REQUIRE(r.has_value());
        INFO("got " << proto::type_name(r->message));
        REQUIRE(std::holds_alternative<T>(r->message));
        peer_ = r->peer;
        return std::get<T>(r->message);
    }

    // Everything that arrives until nothing has for `quiet`.
    std::vector<proto::WorkerMessage> drain(std::chrono::milliseconds quiet) {
        std::vector<proto::WorkerMessage> out;
        while (auto r = next(quiet))
            out.push_back(std::move(r->message));
        return out;
    }

    void send(const proto::BrokerMessage& message, const std::string& peer = {}) {
        send_raw(proto::encode(message), peer);
    }

    // A frame as it is, e.g. one the worker's decoder refuses.
    void send_raw(const std::string& frame, const std::string& peer = {}) {
        const auto& to = peer.empty() ? peer_ : peer;
        router_.send(zmq::buffer(to), zmq::send_flags::sndmore);
        router_.send(zmq::buffer(frame), zmq::send_flags::none);
    }

    const std::string& peer() const { return peer_; }

    // Welcomes the worker's hello and assigns it job J1, attempt 1, of type "t"
    // with no params.
    void start_job() {
        expect<proto::Hello>();
        send(proto::Welcome{1000});
        send(proto::Assign{"J1", 1, "t", "{}", ""});
    }

  private:
    zmq::socket_t router_;
    std::string endpoint_;
    std::string peer_;
};

// Runs a Worker on its own thread; stops and joins it on destruction.
class RunningWorker {
  public:
    RunningWorker(WorkerConfig config, std::string type, Handler handler) : worker(config) {
        worker.handle(std::move(type), std::move(handler));
        thread_ = std::thread([this] { worker.run(); });
    }
    ~RunningWorker() {
        worker.stop();
        thread_.join();
    }
    Worker worker;

  private:
    std::thread thread_;
};

WorkerConfig test_config(const std::string& endpoint) {
    WorkerConfig config;
    config.broker = endpoint;
    config.name = "test-worker";
    config.types = {"t"};
    config.capacity = 1;
    config.reconnect_min = 20ms;
    config.reconnect_max = 200ms;
    config.shutdown_grace = 200ms;
    return config;
}

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(5ms);  // polling a condition, bounded by the deadline
    }
    return predicate();
}

std::string text_of(const proto::Chunk& chunk) {
    return std::string(boost::json::parse(chunk.data).at("text").as_string());
}

// Emits `n` tokens "tok-1".."tok-n", then waits to be cancelled and returns {}.
Handler tokens_then_wait(int n) {
    return [n](JobContext& job) -> JobOutcome {
        for (int i = 1; i <= n; ++i)
            job.token("tok-" + std::to_string(i));
        job.wait_cancelled_for(60s);
        return std::string("{}");
    };
}

}  // namespace

TEST_CASE("worker says hello, streams numbered chunks and finishes with done") {
    zmq::context_t context;
    FakeBroker broker(context);
    RunningWorker running(test_config(broker.endpoint()), "t", [](JobContext& job) -> JobOutcome {
        const auto n = job.param_int("n", 0);
        for (int i = 1; i <= n; ++i)
            job.token("tok-" + std::to_string(i));
        job.save_checkpoint("cp");
        return std::string(R"({"count":)" + std::to_string(n) + "}");
    });

    const auto hello = broker.expect<proto::Hello>();
    CHECK(hello.worker == "test-worker");
    CHECK(hello.types == std::vector<std::string>{"t"});
    CHECK(hello.capacity == 1);
    CHECK(hello.inflight.empty());
    broker.send(proto::Welcome{1000});
    broker.send(proto::Assign{"J1", 1, "t", R"({"n":5})", ""});

    for (std::uint64_t w = 1; w <= 5; ++w) {
        const auto chunk = broker.expect<proto::Chunk>();
        CHECK(chunk.job == "J1");
        CHECK(chunk.attempt == 1);
        CHECK(chunk.wseq == w);
        CHECK(chunk.kind == EventKind::token);
        CHECK(text_of(chunk) == "tok-" + std::to_string(w));
        CHECK(chunk.ts > 0);
    }
    const auto checkpoint = broker.expect<proto::Checkpoint>();
    CHECK(checkpoint.wseq == 6);
    CHECK(checkpoint.bytes == "cp");
    const auto done = broker.expect<proto::Done>();
    CHECK(done.wseq == 7);
    CHECK(boost::json::parse(done.result).at("count").to_number<int>() == 5);

    broker.send(proto::Ack{"J1", 1, 7});
    CHECK(eventually([&] { return running.worker.stats().unacked_messages == 0; }));
    const auto stats = running.worker.stats();
    CHECK(stats.events_emitted == 7);
    CHECK(stats.jobs_succeeded == 1);
    CHECK(stats.unacked_bytes == 0);
    CHECK(stats.connected);
}

TEST_CASE("worker re-hellos after a broker restart and re-sends exactly the unacked messages") {
    zmq::context_t context;
    auto broker = std::make_unique<FakeBroker>(context);
    const auto endpoint = broker->endpoint();
    RunningWorker running(test_config(endpoint), "t", tokens_then_wait(10));

    broker->start_job();
    for (std::uint64_t w = 1; w <= 10; ++w)
        CHECK(broker->expect<proto::Chunk>().wseq == w);
    broker->send(proto::Ack{"J1", 1, 4});
    REQUIRE(eventually([&] { return running.worker.stats().unacked_messages == 6; }));

    // The broker restarts: same endpoint, new socket, no memory of this worker.
    broker->close();
    broker.reset();
    FakeBroker restarted(context, endpoint);
    std::optional<proto::Hello> hello;
    const auto deadline = Clock::now() + 10s;
    while (!hello && Clock::now() < deadline) {
        auto r = restarted.next(1s, true);
        if (!r) continue;
        if (auto* h = std::get_if<proto::Hello>(&r->message)) {
            hello = *h;
            restarted.send(proto::Welcome{1000}, r->peer);
        } else {
            restarted.send(proto::Reject{"", "hello"}, r->peer);  // "who are you?"
        }
    }
    REQUIRE(hello.has_value());
    REQUIRE(hello->inflight.size() == 1);
    CHECK(hello->inflight[0] == proto::InflightJob{"J1", 1, 11});

    std::vector<std::uint64_t> resent;
    for (const auto& message : restarted.drain(600ms)) {
        const auto* chunk = std::get_if<proto::Chunk>(&message);
        REQUIRE(chunk != nullptr);
        CHECK(text_of(*chunk) == "tok-" + std::to_string(chunk->wseq));
        resent.push_back(chunk->wseq);
    }
    CHECK(resent == std::vector<std::uint64_t>{5, 6, 7, 8, 9, 10});
    CHECK(running.worker.stats().messages_resent >= 6);
}

TEST_CASE("worker re-sends from the oldest unacked message on a gap reject") {
    zmq::context_t context;
    FakeBroker broker(context);
    RunningWorker running(test_config(broker.endpoint()), "t", tokens_then_wait(6));
    broker.start_job();
    for (std::uint64_t w = 1; w <= 6; ++w)
        CHECK(broker.expect<proto::Chunk>().wseq == w);
    broker.send(proto::Ack{"J1", 1, 2});
    broker.send(proto::Reject{"J1", "gap"});
    broker.send(proto::Reject{"J1", "gap"});  // one per out-of-order message: answered once
    std::vector<std::uint64_t> resent;
    for (const auto& message : broker.drain(500ms)) {
        resent.push_back(std::get<proto::Chunk>(message).wseq);
    }
    CHECK(resent == std::vector<std::uint64_t>{3, 4, 5, 6});
}

TEST_CASE("worker drops a job whose lease is lost and cancels its handler") {
    zmq::context_t context;
    FakeBroker broker(context);
    std::atomic<bool> handler_saw_cancel{false};
    RunningWorker running(test_config(broker.endpoint()), "t", [&](JobContext& job) -> JobOutcome {
        job.token("one");
        handler_saw_cancel = job.wait_cancelled_for(30s);
        job.token("after the lease is gone");
        return std::string("{}");
    });
    broker.start_job();
    CHECK(broker.expect<proto::Chunk>().wseq == 1);
    broker.send(proto::Reject{"J1", "lease"});
    REQUIRE(eventually([&] { return handler_saw_cancel.load(); }));
    CHECK(broker.drain(300ms).empty());  // neither more tokens nor done/fail
    CHECK(eventually([&] {
        const auto s = running.worker.stats();
        return s.unacked_messages == 0 && s.unacked_bytes == 0 && s.jobs_abandoned == 1;
    }));
}

TEST_CASE("a late lease reject for an earlier attempt leaves the job's new attempt running") {
    // The broker gave the job out again (attempt 2) while frames of attempt 1
    // were still on their way; their rejects arrive after the new assign.
    zmq::context_t context;
    FakeBroker broker(context);
    std::atomic<bool> go_on{false};
    RunningWorker running(test_config(broker.endpoint()), "t", [&](JobContext& job) -> JobOutcome {
        job.token("first of attempt " + std::to_string(job.attempt()));
        if (job.attempt() == 1) {
            job.wait_cancelled_for(30s);  // until the re-assign drops it
            return std::string("{}");
        }
        while (!go_on && !job.cancelled())
            job.wait_cancelled_for(5ms);
        job.token("second");
        return std::string(R"({"ok":true})");
    });
    broker.start_job();
    CHECK(broker.expect<proto::Chunk>().attempt == 1);
    broker.send(proto::Assign{"J1", 2, "t", "{}", ""});
    auto first = broker.expect<proto::Chunk>();
    REQUIRE(first.attempt == 2);
    CHECK(text_of(first) == "first of attempt 2");

    broker.send(proto::Reject{"J1", "lease", 1});
    broker.send(proto::Ack{"J1", 2, 1});
    REQUIRE(eventually([&] { return running.worker.stats().acks_received >= 1; }));
    go_on = true;
    auto second = broker.expect<proto::Chunk>();
    CHECK(second.attempt == 2);
    CHECK(second.wseq == 2);
    CHECK(text_of(second) == "second");
    auto done = broker.expect<proto::Done>();
    CHECK(done.attempt == 2);
    CHECK(done.result == R"({"ok":true})");
    CHECK(running.worker.stats().jobs_abandoned == 1);  // attempt 1 only

    // A reject that is about the running attempt still ends it.
    broker.send(proto::Assign{"J2", 1, "t", "{}", ""});
    CHECK(broker.expect<proto::Chunk>().job == "J2");
    broker.send(proto::Reject{"J2", "lease", 1});
    CHECK(eventually([&] { return running.worker.stats().jobs_abandoned == 2; }));
}

TEST_CASE("heartbeats list the attempts the worker holds and the assigns it received") {
    zmq::context_t context;
    FakeBroker broker(context);
    auto config = test_config(broker.endpoint());
    config.capacity = 2;
    RunningWorker running(config, "t", tokens_then_wait(1));
    broker.expect<proto::Hello>();
    broker.send(proto::Welcome{50});
    broker.send(proto::Assign{"J1", 1, "t", "{}", ""});
    broker.send(proto::Assign{"J2", 3, "t", "{}", ""});
    // The worker is busy streaming or idle: either way a report comes each interval.
    auto report = [&]() -> std::optional<proto::Heartbeat> {
        const auto deadline = Clock::now() + 5s;
        while (Clock::now() < deadline) {
            auto r = broker.next(1s, true);
            if (!r) continue;
            if (auto* h = std::get_if<proto::Heartbeat>(&r->message); h && h->inflight) return *h;
        }
        return std::nullopt;
    };
    std::vector<proto::InflightJob> held;
    std::uint64_t assigned = 0;
    REQUIRE(eventually([&] {
        auto h = report();
        if (!h) return false;
        held = *h->inflight;
        assigned = h->assigned;
        return held.size() == 2;
    }));
    std::sort(held.begin(), held.end(), [](const auto& a, const auto& b) { return a.job < b.job; });
    CHECK(held[0].job == "J1");
    CHECK(held[0].attempt == 1);
    CHECK(held[0].next_wseq == 2);  // one token emitted
    CHECK(held[1].job == "J2");
    CHECK(held[1].attempt == 3);
    CHECK(assigned == 2);

    // Dropped on a lease reject: no longer listed.
    broker.send(proto::Reject{"J1", "lease", 1});
    REQUIRE(eventually([&] {
        auto h = report();
        return h && h->inflight->size() == 1 && h->inflight->front().job == "J2";
    }));
}

TEST_CASE("a cancelled job ends with fail cancelled, not retryable") {
    zmq::context_t context;
    FakeBroker broker(context);
    RunningWorker running(test_config(broker.endpoint()), "t", tokens_then_wait(1));
    broker.start_job();
    CHECK(broker.expect<proto::Chunk>().wseq == 1);
    broker.send(proto::Cancel{"J1"});
    const auto fail = broker.expect<proto::Fail>();
    CHECK(fail.job == "J1");
    CHECK(fail.wseq == 2);
    CHECK(fail.error == "cancelled");
    CHECK_FALSE(fail.retryable);
}

TEST_CASE("handler failures become fail messages with the right retryable flag") {
    zmq::context_t context;
    FakeBroker broker(context);
    RunningWorker running(test_config(broker.endpoint()), "t", [](JobContext& job) -> JobOutcome {
        const auto mode = job.param_string("mode");
        if (mode == "throw") throw std::runtime_error("disk on fire");
        if (mode == "failure") throw Failure("bad params", false);
        if (mode == "return") return Failure("try later", true);
        return std::string("not json");
    });
    broker.expect<proto::Hello>();
    broker.send(proto::Welcome{1000});
    const std::vector<std::tuple<std::string, std::string, bool>> cases = {
        {"throw", "disk on fire", true},
        {"failure", "bad params", false},
        {"return", "try later", true},
        {"invalid", "handler returned a result that is not a JSON object", false}};
    int n = 0;
    for (const auto& [mode, error, retryable] : cases) {
        const auto job = "J" + std::to_string(++n);
        broker.send(proto::Assign{job, 1, "t", R"({"mode":")" + mode + "\"}", ""});
        const auto fail = broker.expect<proto::Fail>();
        CHECK(fail.job == job);
        CHECK(fail.wseq == 1);
        CHECK(fail.error == error);
        CHECK(fail.retryable == retryable);
        broker.send(proto::Ack{job, 1, 1});
    }
}

TEST_CASE("emit blocks when the unacked bound is reached and resumes on ack") {
    zmq::context_t context;
    FakeBroker broker(context);
    auto config = test_config(broker.endpoint());
    config.max_unacked_bytes = 400;
    constexpr int kTokens = 40;
    RunningWorker running(config, "t", [](JobContext& job) -> JobOutcome {
        for (int i = 1; i <= kTokens; ++i)
            job.token("tok-" + std::to_string(i));
        return std::string("{}");
    });
    broker.start_job();

    // Without acks only about 400 bytes of frames get out.
    auto first = broker.drain(300ms);
    REQUIRE_FALSE(first.empty());
    CHECK(first.size() < kTokens / 2);
    const auto stats = running.worker.stats();
    CHECK(stats.emit_waits >= 1);
    CHECK(stats.unacked_bytes <= 400 + 200);  // one frame may exceed the bound when alone

    // Acking what arrived lets the rest through, in order, without loss.
    std::vector<proto::WorkerMessage> all = first;
    std::uint64_t acked = 0;
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
        const auto* last = &all.back();
        std::uint64_t wseq = std::visit(
            [](const auto& m) -> std::uint64_t {
                if constexpr (requires { m.wseq; }) {
                    return m.wseq;
                } else {
                    return 0;
                }
            },
            *last);
        if (std::holds_alternative<proto::Done>(*last)) break;
        if (wseq > acked) {
            broker.send(proto::Ack{"J1", 1, wseq});
            acked = wseq;
        }
        for (auto& m : broker.drain(100ms))
            all.push_back(std::move(m));
    }
    REQUIRE(std::holds_alternative<proto::Done>(all.back()));
    REQUIRE(all.size() == kTokens + 1);
    for (int i = 0; i < kTokens; ++i) {
        const auto& chunk = std::get<proto::Chunk>(all[static_cast<std::size_t>(i)]);
        CHECK(chunk.wseq == static_cast<std::uint64_t>(i + 1));
        CHECK(text_of(chunk) == "tok-" + std::to_string(i + 1));
    }
}

TEST_CASE("worker reconnects with a new hello when the broker goes silent") {
    zmq::context_t context;
    FakeBroker broker(context);
    RunningWorker running(test_config(broker.endpoint()), "t", tokens_then_wait(2));
    broker.expect<proto::Hello>();
    broker.send(proto::Welcome{50});  // liveness: 3 x 50 ms
    broker.send(proto::Assign{"J1", 1, "t", "{}", ""});
    CHECK(broker.expect<proto::Chunk>().wseq == 1);
    CHECK(broker.expect<proto::Chunk>().wseq == 2);
    // Say nothing more: the worker must give up on this connection and come back.
    const auto hello = broker.expect<proto::Hello>(5s);
    REQUIRE(hello.inflight.size() == 1);
    CHECK(hello.inflight[0].job == "J1");
    CHECK(hello.inflight[0].next_wseq == 3);
    broker.send(proto::Welcome{1000});
    CHECK(broker.expect<proto::Chunk>().wseq == 1);  // nothing was acked: all re-sent
    CHECK(broker.expect<proto::Chunk>().wseq == 2);
    CHECK(running.worker.stats().reconnects >= 1);
}

// An endpoint on which nothing listens: a port bound and closed again.
std::string dead_endpoint(zmq::context_t& context) {
    FakeBroker gone(context);
    const auto endpoint = gone.endpoint();
    gone.close();
    return endpoint;
}

TEST_CASE("a broker list whose first endpoint is dead connects to the second") {
    zmq::context_t context;
    FakeBroker live(context);
    auto config = test_config("");
    config.brokers = {dead_endpoint(context), live.endpoint()};
    config.liveness = 1;  // no welcome within 1 s (the interval before any welcome): next one
    RunningWorker running(config, "t", tokens_then_wait(1));
    CHECK(running.worker.stats().broker == config.brokers[0]);

    const auto hello = live.expect<proto::Hello>(5s);
    CHECK(hello.worker == "test-worker");
    live.send(proto::Welcome{1000});
    live.send(proto::Assign{"J1", 1, "t", "{}", ""});
    CHECK(live.expect<proto::Chunk>().job == "J1");
    const auto stats = running.worker.stats();
    CHECK(stats.connected);
    CHECK(stats.broker == live.endpoint());
    CHECK(stats.failovers == 1);
    CHECK(running.worker.config().brokers == config.brokers);
}

TEST_CASE(
    "a silent broker fails over to the next one: hello with the jobs in flight, "
    "unacked re-sent, rejected attempts dropped, round the list") {
    zmq::context_t context;
    FakeBroker a(context), b(context);
    auto config = test_config("");
    config.brokers = {a.endpoint(), b.endpoint()};
    config.capacity = 2;
    RunningWorker running(config, "t", tokens_then_wait(3));
    a.expect<proto::Hello>();
    a.send(proto::Welcome{50});  // liveness: 3 x 50 ms
    a.send(proto::Assign{"J1", 1, "t", "{}", ""});
    a.send(proto::Assign{"J2", 2, "t", "{}", ""});
    std::map<std::string, std::uint64_t> last;
    for (int i = 0; i < 6; ++i) {
        const auto chunk = a.expect<proto::Chunk>();
        last[chunk.job] = chunk.wseq;
    }
    CHECK(last == std::map<std::string, std::uint64_t>{{"J1", 3}, {"J2", 3}});
    a.send(proto::Ack{"J1", 1, 2});
    REQUIRE(eventually([&] { return running.worker.stats().unacked_messages == 4; }));

    // A says nothing more (it died): the worker says hello to B.
    const auto hello = b.expect<proto::Hello>(5s);
    auto inflight = hello.inflight;
    std::sort(inflight.begin(), inflight.end(),
              [](const auto& x, const auto& y) { return x.job < y.job; });
    CHECK(inflight == std::vector<proto::InflightJob>{{"J1", 1, 4}, {"J2", 2, 4}});
    b.send(proto::Welcome{1000});
    // B holds J1's lease (cluster mode) but not J2's.
    b.send(proto::Reject{"J2", "lease", 2});
    std::vector<std::pair<std::string, std::uint64_t>> resent;
    for (const auto& message : b.drain(500ms)) {
        const auto& chunk = std::get<proto::Chunk>(message);
        resent.emplace_back(chunk.job, chunk.wseq);
    }
    // J1 from its oldest unacked frame; J2's frames may have gone out before its reject.
    std::vector<std::pair<std::string, std::uint64_t>> j1;
    std::copy_if(resent.begin(), resent.end(), std::back_inserter(j1),
                 [](const auto& r) { return r.first == "J1"; });
    CHECK(j1 == std::vector<std::pair<std::string, std::uint64_t>>{{"J1", 3}});
    CHECK(eventually([&] {
        const auto s = running.worker.stats();
        return s.jobs_abandoned == 1 && s.unacked_messages == 1 && s.connected &&
               s.broker == b.endpoint() && s.failovers == 1;
    }));

    // B goes silent too: round the list, back to A, with J1 only.
    b.send(proto::Welcome{50});
    const auto again = a.expect<proto::Hello>(5s);
    CHECK(again.inflight == std::vector<proto::InflightJob>{{"J1", 1, 4}});
    CHECK(running.worker.stats().failovers == 2);
}

// After a broker's connection closed at `closed`: `broker` gets the worker's
// hello within 1.5 s (well within the 3 s of silence of 1 s heartbeats) listing
// J1 attempt 1 with `next` as its next wseq, and after its welcome J1's
// unacknowledged chunks `first`..next-1 again.
namespace {
void expect_hello_and_resend(FakeBroker& broker, Clock::time_point closed, std::uint64_t first,
                             std::uint64_t next) {
    const auto hello = broker.expect<proto::Hello>(1500ms);
    CHECK(Clock::now() - closed < 1500ms);
    CHECK(hello.inflight == std::vector<proto::InflightJob>{{"J1", 1, next}});
    broker.send(proto::Welcome{1000});
    for (auto w = first; w < next; ++w)
        CHECK(broker.expect<proto::Chunk>(1s).wseq == w);
}
}  // namespace

TEST_CASE(
    "a broker whose connection closes is failed over at once, well within the "
    "liveness window") {
    zmq::context_t context;
    auto a = std::make_unique<FakeBroker>(context);
    FakeBroker b(context);
    auto config = test_config("");
    config.brokers = {a->endpoint(), b.endpoint()};
    RunningWorker running(config, "t", tokens_then_wait(3));
    a->start_job();  // welcome with 1 s heartbeats: 3 s of silence before giving up
    for (std::uint64_t w = 1; w <= 3; ++w)
        CHECK(a->expect<proto::Chunk>().wseq == w);
    a->send(proto::Ack{"J1", 1, 1});
    REQUIRE(eventually([&] { return running.worker.stats().unacked_messages == 2; }));

    // A's process dies: its kernel closes the connection.
    a->close();
    expect_hello_and_resend(b, Clock::now(), 2, 4);
    const auto stats = running.worker.stats();
    CHECK(stats.failovers == 1);
    CHECK(stats.broker == b.endpoint());
}

TEST_CASE("the one broker's closed connection: hello again as soon as it is back") {
    zmq::context_t context;
    auto broker = std::make_unique<FakeBroker>(context);
    const auto endpoint = broker->endpoint();
    RunningWorker running(test_config(endpoint), "t", tokens_then_wait(2));
    broker->start_job();
    CHECK(broker->expect<proto::Chunk>().wseq == 1);
    CHECK(broker->expect<proto::Chunk>().wseq == 2);

    // The broker restarts on its endpoint and waits for the worker to speak
    // first, as a broker that does not know it would.
    broker->close();
    broker.reset();
    const auto closed = Clock::now();
    FakeBroker restarted(context, endpoint);
    expect_hello_and_resend(restarted, closed, 1, 3);
    CHECK(eventually([&] { return running.worker.stats().connected; }));
    CHECK(running.worker.stats().failovers == 0);
}

TEST_CASE("stop() ends run() promptly even with a running job") {
    zmq::context_t context;
    FakeBroker broker(context);
    Worker worker(test_config(broker.endpoint()));
    worker.handle("t", tokens_then_wait(1));
    std::thread thread([&] { worker.run(); });
    broker.start_job();
    CHECK(broker.expect<proto::Chunk>().wseq == 1);
    const auto started = Clock::now();
    worker.stop();
    thread.join();
    CHECK(Clock::now() - started < 3s);
    // The interrupted job is left to the broker's lease expiry: no fail was sent.
    for (const auto& message : broker.drain(100ms)) {
        CHECK_FALSE(std::holds_alternative<proto::Fail>(message));
    }
}

// An assign as the broker encodes it, with params made poison after encoding:
// the key "b" renamed to "a", a duplicate the worker's decoder refuses.
std::string poison_assign(const std::string& job, int attempt) {
    std::string frame = proto::encode(
        proto::BrokerMessage{proto::Assign{job, attempt, "t", R"({"a":1,"b":2})", ""}});
    const auto at = frame.find(
        "\xa1"
        "b");
    REQUIRE(at != std::string::npos);
    frame[at + 1] = 'a';
    REQUIRE(std::holds_alternative<proto::DecodeError>(proto::decode_broker_message(frame)));
    return frame;
}

TEST_CASE("an assign the worker cannot decode is failed, not retryable, and counted (H1)") {
    zmq::context_t context;
    FakeBroker broker(context);
    std::atomic<int> handled{0};
    RunningWorker running(test_config(broker.endpoint()), "t", [&](JobContext&) -> JobOutcome {
        ++handled;
        return std::string(R"({"ok":true})");
    });
    broker.expect<proto::Hello>();
    broker.send(proto::Welcome{50});
    broker.send_raw(poison_assign("P", 1));

    const auto fail = broker.expect<proto::Fail>();
    CHECK(fail.job == "P");
    CHECK(fail.attempt == 1);
    CHECK(fail.wseq == 1);
    CHECK_FALSE(fail.retryable);
    CHECK(fail.error.find("cannot decode the assign") != std::string::npos);
    CHECK(fail.error.find("duplicate map key") != std::string::npos);
    // Until the fail is acknowledged the worker holds the attempt, and it has
    // counted the assign: the broker's reconcile sees both.
    std::optional<proto::Heartbeat> report;
    REQUIRE(eventually([&] {
        auto r = broker.next(1s, true);
        auto* h = r ? std::get_if<proto::Heartbeat>(&r->message) : nullptr;
        if (h && h->inflight) report = *h;
        return report.has_value();
    }));
    CHECK(report->assigned == 1);
    REQUIRE(report->inflight->size() == 1);
    CHECK(report->inflight->front().job == "P");
    broker.send(proto::Ack{"P", 1, 1});
    CHECK(eventually([&] { return running.worker.stats().unacked_messages == 0; }));

    // The slot (capacity 1) is free: the next job runs.
    broker.send(proto::Assign{"N", 1, "t", "{}", ""});
    const auto done = broker.expect<proto::Done>();
    CHECK(done.job == "N");
    CHECK(handled == 1);  // the handler never saw the poison job
    const auto stats = running.worker.stats();
    CHECK(stats.bad_messages == 1);
    CHECK(stats.jobs_failed == 1);

    // The same undecodable assign again (a re-send) is not answered twice
    // while the first answer is held; garbage that is no assign is dropped.
    broker.send_raw(poison_assign("Q", 2));
    CHECK(broker.expect<proto::Fail>().job == "Q");
    broker.send_raw(poison_assign("Q", 2));
    broker.send_raw("\xc1 garbage");
    REQUIRE(eventually([&] { return running.worker.stats().bad_messages == 4; }));
    CHECK(running.worker.stats().jobs_failed == 2);  // P and Q, once each
}

TEST_CASE("the worker sends the session of its welcome in every later hello (M1)") {
    zmq::context_t context;
    FakeBroker broker(context);
    RunningWorker running(test_config(broker.endpoint()), "t", tokens_then_wait(0));
    CHECK(broker.expect<proto::Hello>().session.empty());  // none yet
    broker.send(proto::Welcome{50, "session-for-test-worker"});
    CHECK(eventually([&] { return running.worker.stats().connected; }));
    // The broker forgot us (it restarted): the worker says hello again, with it.
    broker.send(proto::Reject{"", "hello"});
    const auto again = broker.expect<proto::Hello>();
    CHECK(again.worker == "test-worker");
    CHECK(again.session == "session-for-test-worker");
}

TEST_CASE("a hello refused for its identity makes the worker try again later (M1)") {
    zmq::context_t context;
    FakeBroker broker(context);
    RunningWorker running(test_config(broker.endpoint()), "t", tokens_then_wait(0));
    broker.expect<proto::Hello>();
    const std::string first_peer = broker.peer();
    broker.send(proto::Reject{"", "identity", 0, "worker name is held by another CURVE key"});
    // A new connection (new routing id), after a backoff, with a new hello.
    broker.expect<proto::Hello>();
    CHECK(broker.peer() != first_peer);
    CHECK(running.worker.stats().reconnects >= 1);
}

TEST_CASE("worker config is validated") {
    WorkerConfig config;
    config.capacity = 0;
    CHECK_THROWS_AS(Worker(config), std::invalid_argument);
    config.capacity = 1;
    config.reconnect_min = 0ms;
    CHECK_THROWS_AS(Worker(config), std::invalid_argument);
    config.reconnect_min = 100ms;
    config.lazy_ack_window = -1ms;
    CHECK_THROWS_AS(Worker(config), std::invalid_argument);
    config.lazy_ack_window = 61s;  // past a minute: an overflow waiting to happen
    CHECK_THROWS_AS(Worker(config), std::invalid_argument);
    config.lazy_ack_window = 0ms;  // lazy acks off
    Worker worker(config);
    CHECK_FALSE(worker.config().name.empty());  // hostname-pid
    worker.handle("a", [](JobContext&) -> JobOutcome { return std::string("{}"); });
    WorkerConfig missing_handler;
    missing_handler.types = {"missing"};
    Worker other(missing_handler);
    CHECK_THROWS_AS(other.run(), std::invalid_argument);
    // A name the broker would refuse (control characters, over 128 bytes).
    WorkerConfig bad_name;
    bad_name.name = "w\n2030-01-01T00:00:00.000 info audit";
    CHECK_THROWS_AS(Worker(bad_name), std::invalid_argument);
    bad_name.name = std::string(129, 'w');
    CHECK_THROWS_AS(Worker(bad_name), std::invalid_argument);
    // Every endpoint of a broker list: none empty, none malformed (found at run()).
    WorkerConfig list;
    list.brokers = {"tcp://127.0.0.1:5555", ""};
    CHECK_THROWS_AS(Worker(list), std::invalid_argument);
    list.brokers = {"tcp://127.0.0.1:5555", "not-an-endpoint"};
    Worker malformed(list);
    malformed.handle("a", [](JobContext&) -> JobOutcome { return std::string("{}"); });
    CHECK_THROWS_AS(malformed.run(), std::invalid_argument);
}

TEST_CASE("a broker that announces chunks gets a handler's burst batched, each wseq once") {
    zmq::context_t context;
    FakeBroker broker(context);
    constexpr int kTokens = 5000;
    RunningWorker running(test_config(broker.endpoint()), "t", [](JobContext& job) -> JobOutcome {
        for (int i = 1; i <= kTokens; ++i)
            job.token("tok-" + std::to_string(i));
        return std::string("{}");
    });
    broker.expect<proto::Hello>();
    broker.send(proto::Welcome{1000, "", {"chunks", "something-later"}});
    broker.send(proto::Assign{"J1", 1, "t", "{}", ""});

    // Tokens in wseq order, whichever way they were framed, then done.
    std::uint64_t next = 1;
    int frames = 0;
    while (next <= kTokens) {
        auto r = broker.next(5s);
        REQUIRE(r.has_value());
        ++frames;
        if (const auto* chunk = std::get_if<proto::Chunk>(&r->message)) {
            CHECK(chunk->wseq == next);
            CHECK(text_of(*chunk) == "tok-" + std::to_string(next));
            ++next;
            continue;
        }
        const auto& chunks = std::get<proto::Chunks>(r->message);
        CHECK(chunks.job == "J1");
        REQUIRE(chunks.wseq == next);
        for (const auto& event : chunks.events) {
            CHECK(boost::json::parse(event.data).at("text").as_string() ==
                  "tok-" + std::to_string(next));
            CHECK(event.ts > 0);
            ++next;
        }
    }
    CHECK(frames < kTokens);  // some went out together
    CHECK(broker.expect<proto::Done>().wseq == kTokens + 1);

    // A new connection (the broker forgot us) re-sends everything unacked,
    // one chunk each until its welcome announces chunks again.
    broker.send(proto::Ack{"J1", 1, kTokens - 3});
    broker.send(proto::Reject{"", "hello"});
    broker.expect<proto::Hello>();
    std::vector<std::uint64_t> resent;
    for (int i = 0; i < 3; ++i)
        resent.push_back(broker.expect<proto::Chunk>().wseq);
    CHECK(resent == std::vector<std::uint64_t>{kTokens - 2, kTokens - 1, kTokens});
    CHECK(broker.expect<proto::Done>().wseq == kTokens + 1);
    broker.send(proto::Welcome{1000});
    broker.send(proto::Ack{"J1", 1, kTokens + 1});
    CHECK(eventually([&] { return running.worker.stats().unacked_messages == 0; }));
}

TEST_CASE("after a job ends its slot's next assign is read at once, not by a lazy read") {
    // A job's last chunk and its done are followed by the assign of the next
    // job for the freed slot. Acks may wait for the next lazy read (the I/O
    // thread's next wake-up: a 30 s window here, and heartbeats a minute
    // apart, so its once-a-second timer), the assign must not: each job of a
    // busy queue used to wait for it (jobs 2 to 5 took 3-4 s, a timer each).
    zmq::context_t context;
    FakeBroker broker(context);
    auto config = test_config(broker.endpoint());
    config.lazy_ack_window = 30s;
    RunningWorker running(config, "t", [](JobContext& job) -> JobOutcome {
        job.token("a");
        return std::string("{}");
    });
    broker.expect<proto::Hello>();
    broker.send(proto::Welcome{60'000});
    Clock::time_point second_assigned{};
    for (int j = 1; j <= 5; ++j) {
        INFO("job " << j);
        const std::string id = "J" + std::to_string(j);
        if (j == 2) second_assigned = Clock::now();
        broker.send(proto::Assign{id, 1, "t", "{}", ""});
        CHECK(broker.expect<proto::Chunk>(10s).job == id);
        const auto done = broker.expect<proto::Done>(10s);
        CHECK(done.job == id);
        broker.send(proto::Ack{id, 1, done.wseq});
    }
    CHECK(Clock::now() - second_assigned < 2s);
}

TEST_CASE("another job's chunks after a job ends do not make the freed slot's assign wait") {
    // Capacity 2: job B streams slowly while one-token jobs take the other
    // slot. After each of them ends, B emits a chunk (its delivery on B's
    // thread), the broker acks everything and the worker reads the acks;
    // then the next job is assigned. The assign must still be read at once
    // (a chunk after the done used to end the watch for it, and the I/O
    // thread went back to reading lazily: a second a round, its timer).
    zmq::context_t context;
    FakeBroker broker(context);
    auto config = test_config(broker.endpoint());
    config.capacity = 2;
    config.lazy_ack_window = 30s;
    std::atomic<int> go{0};
    RunningWorker running(config, "t", [&](JobContext& job) -> JobOutcome {
        if (job.job_id() != "B") {
            job.token("a");
            return std::string("{}");
        }
        for (int round = 1; round <= 4 && !job.cancelled(); ++round) {
            while (go.load() < round && !job.cancelled())
                std::this_thread::sleep_for(1ms);
            if (round < 4) job.token("b");
        }
        return std::string("{}");
    });
    broker.expect<proto::Hello>();
    broker.send(proto::Welcome{60'000});
    broker.send(proto::Assign{"B", 1, "t", "{}", ""});
    Clock::time_point second_round{};
    for (int round = 1; round <= 3; ++round) {
        INFO("round " << round);
        if (round == 2) second_round = Clock::now();
        const std::string id = "A" + std::to_string(round);
        broker.send(proto::Assign{id, 1, "t", "{}", ""});
        CHECK(broker.expect<proto::Chunk>(10s).job == id);
        const auto done = broker.expect<proto::Done>(10s);
        CHECK(done.job == id);
        broker.send(proto::Ack{id, 1, done.wseq});
        go.store(round);  // B's chunk, after the done
        const auto chunk = broker.expect<proto::Chunk>(10s);
        CHECK(chunk.job == "B");
        broker.send(proto::Ack{"B", 1, chunk.wseq});
        // The I/O thread has read the acks and gone back to its poll.
        CHECK(eventually([&] { return running.worker.stats().unacked_messages == 0; }));
    }
    CHECK(Clock::now() - second_round < 1s);
    go.store(4);
    CHECK(broker.expect<proto::Done>(10s).job == "B");
}

TEST_CASE("a shutdown read among the acks while a handler emits: the worker reconnects") {
    // While a handler emits, acks are read on the handler's thread (lazy
    // acks), with the I/O thread waiting in poll on the connection's
    // sockets: a `reject` "shutdown" read there must leave closing them to
    // the I/O thread. Many rounds, each ended by a shutdown amid the stream.
    zmq::context_t context;
    FakeBroker broker(context);
    std::atomic<bool> done{false};
    auto config = test_config(broker.endpoint());
    config.reconnect_max = 50ms;
    RunningWorker running(config, "t", [&](JobContext& job) -> JobOutcome {
        for (int i = 1; !job.cancelled() && !done.load(); ++i) {
            job.token("tok-" + std::to_string(i));
            std::this_thread::sleep_for(100us);
        }
        return std::string("{}");
    });
    broker.start_job();
    std::uint64_t acked = 0;
    std::string peer = broker.peer();
    for (int round = 0; round < 20; ++round) {
        INFO("round " << round);
        // Chunks of this connection, each acked at once, then the shutdown.
        for (int i = 0; i < 50; ++i) {
            auto r = broker.next(5s);
            REQUIRE(r.has_value());
            if (r->peer != peer) continue;  // not yet
            std::uint64_t last = 0;
            if (const auto* chunk = std::get_if<proto::Chunk>(&r->message)) last = chunk->wseq;
            if (const auto* chunks = std::get_if<proto::Chunks>(&r->message))
                last = chunks->wseq + chunks->events.size() - 1;
            if (last > acked) {
                acked = last;
                broker.send(proto::Ack{"J1", 1, acked}, peer);
            }
        }
        broker.send(proto::Reject{"", "shutdown"}, peer);
        // A new connection says hello with the job in flight.
        std::optional<Received> hello;
        const auto deadline = Clock::now() + 5s;
        while (!hello && Clock::now() < deadline) {
            auto r = broker.next(5s);
            REQUIRE(r.has_value());
            if (r->peer != peer && std::holds_alternative<proto::Hello>(r->message)) hello = r;
        }
        REQUIRE(hello.has_value());
        CHECK(std::get<proto::Hello>(hello->message).inflight.size() == 1);
        peer = hello->peer;
        broker.send(proto::Welcome{1000}, peer);
    }
    done.store(true);
    CHECK(running.worker.stats().reconnects >= 20);
}

TEST_CASE(
    "a broker that says shutdown and hangs up again and again: the worker comes back each time") {
    // A broker's graceful stop: `reject` "shutdown", then its socket closes.
    // The worker closes its connection on the reject; the broker's hang-up
    // reaches the worker's ZeroMQ I/O thread at any moment around that, and
    // if its "disconnected" event found the connection's monitor already gone
    // the I/O thread would stall and no later connection would ever be made.
    // The hang-up's delay after the reject varies over 0-95 us to cross
    // that moment, in four worker/broker pairs at once (Catch's assertions
    // stay on this thread: a lane returns the round its worker did not
    // come back in).
    constexpr int kRounds = 200;
    constexpr int kLanes = 4;
    auto lane = [](int lane_no) -> std::optional<int> {
        zmq::context_t context;
        auto broker = std::make_unique<FakeBroker>(context);
        const std::string endpoint = broker->endpoint();
        auto config = test_config(endpoint);
        config.name = "lane-" + std::to_string(lane_no);
        config.reconnect_max = 50ms;
        Worker worker(config);
        worker.handle("t", [](JobContext&) -> JobOutcome { return std::string("{}"); });
        std::thread runner([&] { worker.run(); });
        std::optional<int> failed;
        // The next hello's peer within 5 s (FakeBroker::next asserts with Catch).
        auto hello = [&]() -> std::optional<std::string> {
            auto& router = broker->socket();
            const auto deadline = Clock::now() + 5s;
            while (Clock::now() < deadline) {
                zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
                zmq::poll(&item, 1, 50ms);
                if (!(item.revents & ZMQ_POLLIN)) continue;
                zmq::message_t peer, payload;
                (void)router.recv(peer);
                (void)router.recv(payload);
                auto decoded = proto::decode_worker_message(payload.to_string_view());
                const auto* m = std::get_if<proto::WorkerMessage>(&decoded);
                if (m && std::holds_alternative<proto::Hello>(*m)) return peer.to_string();
            }
            return std::nullopt;
        };
        for (int round = 0; round <= kRounds; ++round) {
            const auto peer = hello();
            if (!peer) {
                failed = round;
                break;
            }
            if (round == kRounds) break;
            broker->send(proto::Welcome{1000}, *peer);
            broker->send(proto::Reject{"", "shutdown"}, *peer);
            std::this_thread::sleep_for(std::chrono::microseconds(5 * (round % 20)));
            broker->close();
            broker = std::make_unique<FakeBroker>(context, endpoint);
        }
        worker.stop();
        runner.join();
        return failed;
    };
    std::vector<std::future<std::optional<int>>> lanes;
    for (int i = 0; i < kLanes; ++i)
        lanes.push_back(std::async(std::launch::async, lane, i));
    for (int i = 0; i < kLanes; ++i) {
        INFO("lane " << i);
        const auto failed = lanes[i].get();
        CHECK(failed == std::nullopt);
        if (failed) WARN("no hello after round " << *failed);
    }
}
