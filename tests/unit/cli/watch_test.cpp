// The watch loop against a scripted broker: each connection serves the job's
// log after the `after` the client subscribes with, up to a point, and then
// drops, closes or refuses. The clock is fake, so backoffs cost no time.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <deque>
#include <sstream>

#include "cli/errors.hpp"
#include "cli/frames.hpp"
#include "cli/watch.hpp"

using namespace jobcast::cli;
using std::chrono::milliseconds;
namespace json = boost::json;

namespace {

constexpr const char* kJob = "01JOB";

std::string event_frame(std::uint64_t seq, const std::string& kind, const std::string& data) {
    return R"({"type":"event","job":")" + std::string(kJob) + R"(","seq":)" + std::to_string(seq) +
           R"(,"kind":")" + kind + R"(","ts":1,"data":)" + data + "}";
}

// What one connection attempt meets.
struct Connection {
    bool refuse = false;           // connect() throws ConnectionError
    int reject_status = 0;         // connect() throws HandshakeRejected
    std::string error_code{};      // the subscribe is answered with this error frame
    std::uint64_t through = 0;     // serve events up to this seq (0: the whole log)
    std::uint64_t skip = 0;        // leave this seq out (a broken server)
    std::uint16_t close_code = 0;  // then a close frame with this code; 0: a reset
};

struct Log {
    std::vector<std::pair<std::string, std::string>> events;  // kind, data; seq = index + 1
};

Log llm_log(const std::vector<std::string>& tokens, const std::string& outcome = "succeeded") {
    Log log;
    log.events.emplace_back("state", R"({"state":"queued","attempt":0})");
    log.events.emplace_back("state", R"({"state":"running","attempt":1,"worker":"w1"})");
    std::string text;
    for (const auto& token : tokens) {
        log.events.emplace_back("token", json::serialize(json::object{{"text", token}}));
        text += token;
    }
    if (outcome == "succeeded") {
        log.events.emplace_back("result", json::serialize(json::object{{"text", text}}));
    }
    log.events.emplace_back("state", R"({"state":")" + outcome + R"(","attempt":1})");
    return log;
}

class FakeBroker final : public Connector {
  public:
    FakeBroker(Log log, std::vector<Connection> plan)
        : log_(std::move(log)), plan_(plan.begin(), plan.end()) {}

    std::unique_ptr<MessageStream> connect() override {
        ++connects;
        if (plan_.empty()) throw ConnectionError("connection refused");
        auto connection = plan_.front();
        plan_.pop_front();
        if (connection.refuse) throw ConnectionError("connection refused");
        if (connection.reject_status) {
            throw HandshakeRejected(connection.reject_status,
                                    "HTTP " + std::to_string(connection.reject_status));
        }
        return std::make_unique<Stream>(*this, connection);
    }

    int connects = 0;
    std::vector<std::uint64_t> subscribed_after;  // the `after` of each subscribe op
    int closes = 0;                               // polite closes by the client

  private:
    class Stream final : public MessageStream {
      public:
        Stream(FakeBroker& broker, Connection connection)
            : broker_(broker), connection_(connection) {}

        void send(const std::string& text) override {
            const auto op = json::parse(text).as_object();
            REQUIRE(op.at("op") == "subscribe");
            REQUIRE(op.at("job") == kJob);
            const auto after = op.at("after").to_number<std::uint64_t>();
            broker_.subscribed_after.push_back(after);
            if (!connection_.error_code.empty()) {
                queue_.push_back(R"({"type":"error","code":")" + connection_.error_code +
                                 R"(","message":"nope","job":")" + kJob + R"("})");
                return;
            }
            const auto& events = broker_.log_.events;
            queue_.push_back(R"({"type":"subscribed","job":")" + std::string(kJob) +
                             R"(","last_seq":)" + std::to_string(events.size()) + "}");
            const auto through = connection_.through ? connection_.through : events.size();
            for (auto seq = after + 1; seq <= through && seq <= events.size(); ++seq) {
                if (seq == connection_.skip) continue;
                queue_.push_back(event_frame(seq, events[seq - 1].first, events[seq - 1].second));
            }
            // The whole log served: the real broker keeps the connection open.
            stays_open_ = through >= events.size();
        }

        Incoming receive() override {
            if (!queue_.empty()) {
                auto next = std::move(queue_.front());
                queue_.pop_front();
                return next;
            }
            REQUIRE_FALSE(stays_open_);  // the client would wait forever here
            if (connection_.close_code && !closed_) {
                closed_ = true;
                return ServerClosed{connection_.close_code, "bye"};
            }
            throw ConnectionError("connection reset by peer");
        }

        void close() noexcept override { ++broker_.closes; }

      private:
        FakeBroker& broker_;
        Connection connection_;
        std::deque<std::string> queue_;
        bool stays_open_ = false;
        bool closed_ = false;
    };

    Log log_;
    std::deque<Connection> plan_;
};

class FakeClock final : public WatchClock {
  public:
    milliseconds now() override { return now_; }
    void sleep(milliseconds delay) override {
        sleeps.push_back(delay);
        now_ += delay;
    }
    std::vector<milliseconds> sleeps;

  private:
    milliseconds now_{1'000'000};
};

struct Run {
    ExitCode code;
    std::string out;
    std::string err;
};

Run watch(FakeBroker& broker, FakeClock& clock, std::uint64_t after = 0,
          milliseconds give_up = milliseconds{60'000}) {
    std::ostringstream out, err;
    Renderer renderer(RenderOptions{}, out, err);
    WatchOptions options;
    options.job = kJob;
    options.after = after;
    options.reconnect.give_up = give_up;
    options.seed = 7;
    const auto code = watch_job(options, broker, renderer, clock);
    return {code, out.str(), err.str()};
}

const std::vector<std::string> kTokens = {"the",    " stream",  " of",     " tokens",
                                          " flows", " through", " jobcast"};
const std::string kText = "the stream of tokens flows through jobcast";

}  // namespace

TEST_CASE("watch prints a job's stream and exits with its outcome", "[cli][watch]") {
    FakeBroker broker(llm_log(kTokens), {Connection{}});
    FakeClock clock;
    const auto run = watch(broker, clock);
    CHECK(run.code == ExitCode::succeeded);
    CHECK(run.out == kText);
    CHECK(run.err == "[queued]\n[running attempt 1 on w1]\n[succeeded]\n");
    CHECK(broker.subscribed_after == std::vector<std::uint64_t>{0});
    CHECK(broker.closes == 1);
    CHECK(clock.sleeps.empty());
}

TEST_CASE("failed and cancelled jobs give exit codes 1 and 3", "[cli][watch]") {
    FakeClock clock;
    FakeBroker failed(llm_log({"a"}, "failed"), {Connection{}});
    CHECK(watch(failed, clock).code == ExitCode::failed);
    FakeBroker cancelled(llm_log({"a"}, "cancelled"), {Connection{}});
    CHECK(watch(cancelled, clock).code == ExitCode::cancelled);
}

TEST_CASE("after a drop, watch resumes with no gap and no duplicate", "[cli][watch]") {
    // Seq 1-2 are states, 3-9 tokens, 10 result, 11 succeeded.
    FakeBroker broker(llm_log(kTokens),
                      {Connection{.through = 5}, Connection{.through = 9},
                       Connection{.through = 10, .close_code = 1012}, Connection{}});
    FakeClock clock;
    const auto run = watch(broker, clock);
    CHECK(run.code == ExitCode::succeeded);
    CHECK(run.out == kText);
    // Each resubscription overlaps the last event shown by one; it is dropped.
    CHECK(broker.subscribed_after == std::vector<std::uint64_t>{0, 4, 8, 9});
    CHECK(broker.connects == 4);
    CHECK_THAT(run.err, Catch::Contains("[connection lost: connection reset by peer; retrying]"));
    CHECK_THAT(run.err, Catch::Contains("[reconnected; resuming after seq 5]"));
    CHECK_THAT(run.err, Catch::Contains("closed by the server (1012: bye)"));
    // A connection that worked resets the backoff: every delay is a first one.
    REQUIRE(clock.sleeps.size() == 3);
    for (const auto delay : clock.sleeps)
        CHECK(delay <= milliseconds{200});
}

TEST_CASE("watch waits for a broker that is down, with growing jittered delays", "[cli][watch]") {
    std::vector<Connection> plan(6, Connection{.refuse = true});
    plan.push_back(Connection{});
    FakeBroker broker(llm_log(kTokens), plan);
    FakeClock clock;
    const auto run = watch(broker, clock);
    CHECK(run.code == ExitCode::succeeded);
    CHECK(run.out == kText);
    REQUIRE(clock.sleeps.size() == 6);
    for (std::size_t i = 0; i < clock.sleeps.size(); ++i) {
        CHECK(clock.sleeps[i] <= std::min(milliseconds{200} * (1 << i), milliseconds{5000}));
    }
    CHECK_THAT(run.err, Catch::StartsWith("[cannot connect: connection refused; retrying]\n"));
}

TEST_CASE("watch gives up when no connection works for --retry-for", "[cli][watch]") {
    FakeBroker broker(llm_log(kTokens), {Connection{.through = 4}});  // then refused forever
    FakeClock clock;
    const auto run = watch(broker, clock, 0, milliseconds{10'000});
    CHECK(run.code == ExitCode::connection);
    CHECK(run.out == "the stream");
    CHECK_THAT(run.err, Catch::Contains("giving up after 10 s"));
    // The outage is measured from the drop; the last attempt is at the deadline.
    milliseconds waited{0};
    for (const auto delay : clock.sleeps)
        waited += delay;
    CHECK(waited == milliseconds{10'000});
}

TEST_CASE("retry-for 0 never reconnects", "[cli][watch]") {
    FakeBroker broker(llm_log(kTokens), {Connection{.through = 4}, Connection{}});
    FakeClock clock;
    const auto run = watch(broker, clock, 0, milliseconds{0});
    CHECK(run.code == ExitCode::connection);
    CHECK(broker.connects == 1);
}

TEST_CASE("an unknown job exits 5 without retrying", "[cli][watch]") {
    FakeBroker broker(llm_log(kTokens), {Connection{.error_code = "not_found"}});
    FakeClock clock;
    const auto run = watch(broker, clock);
    CHECK(run.code == ExitCode::not_found);
    CHECK_THAT(run.err, Catch::Contains("no such job: 01JOB"));
    CHECK(broker.connects == 1);
}

TEST_CASE("a busy broker is retried", "[cli][watch]") {
    FakeBroker broker(llm_log(kTokens), {Connection{.error_code = "busy"}, Connection{}});
    FakeClock clock;
    CHECK(watch(broker, clock).code == ExitCode::succeeded);
    CHECK(broker.connects == 2);
}

TEST_CASE("a refused token ends the watch, an overloaded proxy does not", "[cli][watch]") {
    FakeClock clock;
    FakeBroker unauthorized(llm_log(kTokens), {Connection{.reject_status = 401}, Connection{}});
    const auto run = watch(unauthorized, clock);
    CHECK(run.code == ExitCode::connection);
    CHECK_THAT(run.err, Catch::Contains("HTTP 401"));
    CHECK(unauthorized.connects == 1);

    FakeBroker restarting(llm_log(kTokens), {Connection{.reject_status = 502}, Connection{}});
    CHECK(watch(restarting, clock).code == ExitCode::succeeded);

    FakeBroker reauth(llm_log(kTokens),
                      {Connection{.through = 4, .close_code = 4003}, Connection{}});
    CHECK(watch(reauth, clock).code == ExitCode::connection);
    CHECK(reauth.connects == 1);
}

TEST_CASE("a hole in the stream is refilled by subscribing again", "[cli][watch]") {
    FakeBroker broker(llm_log(kTokens), {Connection{.skip = 6}, Connection{}});
    FakeClock clock;
    const auto run = watch(broker, clock);
    CHECK(run.code == ExitCode::succeeded);
    CHECK(run.out == kText);
    CHECK(broker.subscribed_after == std::vector<std::uint64_t>{0, 4});
}

TEST_CASE("watching with --after skips what was already seen", "[cli][watch]") {
    FakeClock clock;
    SECTION("mid-stream") {
        FakeBroker broker(llm_log(kTokens), {Connection{}});
        const auto run = watch(broker, clock, 6);  // tokens 1-4 shown before
        CHECK(run.code == ExitCode::succeeded);
        CHECK(run.out == " flows through jobcast");
    }
    SECTION("at the job's last event: the outcome, nothing printed, no wait") {
        const auto log = llm_log(kTokens, "failed");
        FakeBroker broker(log, {Connection{}});
        const auto run = watch(broker, clock, log.events.size());
        CHECK(run.code == ExitCode::failed);
        CHECK(run.out.empty());
        CHECK(run.err.empty());
    }
}
