#include "live/hub.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

using namespace jobcast;
using namespace jobcast::live;

namespace {

Event event(std::uint64_t seq, EventKind kind = EventKind::token) {
    Event e;
    e.seq = seq;
    e.kind = kind;
    e.data = kind == EventKind::state ? R"({"state":"running","attempt":1})" : R"({"text":"x"})";
    return e;
}

std::vector<store::JobEvents> batch(const std::string& job, std::uint64_t first, std::uint64_t last,
                                    const std::string& owner = "alice") {
    store::JobEvents je{job, owner, {}};
    for (auto s = first; s <= last; ++s)
        je.events.push_back(event(s));
    return {je};
}

// Records every batch the hub hands it.
class Sink : public LiveSink {
  public:
    void deliver(const PublishedPtr& published) override {
        std::lock_guard lock(mutex_);
        for (const auto& e : published->events)
            seqs_.push_back(e.seq);
    }
    std::vector<std::uint64_t> seqs() {
        std::lock_guard lock(mutex_);
        return seqs_;
    }

  private:
    std::mutex mutex_;
    std::vector<std::uint64_t> seqs_;
};

// A lane that keeps the tasks the hub hands it, to run them when the test says.
class QueuedLane : public LiveLane {
  public:
    void run(std::function<void()> task) override {
        std::lock_guard lock(mutex_);
        tasks_.push_back(std::move(task));
        ++runs;
    }
    void run_all() {
        std::vector<std::function<void()>> tasks;
        {
            std::lock_guard lock(mutex_);
            tasks.swap(tasks_);
        }
        for (auto& task : tasks)
            task();
    }
    std::atomic<int> runs{0};

  private:
    std::mutex mutex_;
    std::vector<std::function<void()>> tasks_;
};

// A Sink served by a lane.
class LaneSink : public Sink {
  public:
    explicit LaneSink(std::shared_ptr<LiveLane> lane) : lane_(std::move(lane)) {}
    std::shared_ptr<LiveLane> lane() override { return lane_; }

  private:
    std::shared_ptr<LiveLane> lane_;
};

// Records what the hub asks its feed for.
class RecordingFeed : public LiveFeed {
  public:
    void watch(const std::string& job, std::uint64_t last_seq) override {
        calls.push_back("watch " + job + " " + std::to_string(last_seq));
    }
    void unwatch(const std::string& job) override { calls.push_back("unwatch " + job); }
    void watch_owner(const std::string& owner) override { calls.push_back("watch_owner " + owner); }
    void unwatch_owner(const std::string& owner) override {
        calls.push_back("unwatch_owner " + owner);
    }
    std::vector<std::string> calls;
};

// A store's log of each job: seqs 1..N.
class FakeEventLog : public store::EventLog {
  public:
    std::vector<Event> read(std::string_view job, std::uint64_t after, std::size_t limit,
                            std::size_t) override {
        ++reads;
        std::vector<Event> out;
        auto it = last.find(std::string(job));
        if (it == last.end()) return out;
        for (auto s = after + 1; s <= it->second && out.size() < limit; ++s)
            out.push_back(event(s));
        return out;
    }
    std::optional<std::uint64_t> last_seq(std::string_view job) override {
        auto it = last.find(std::string(job));
        if (it == last.end()) return std::nullopt;
        return it->second;
    }
    std::map<std::string, std::uint64_t> last;
    int reads = 0;
};

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
    std::vector<std::uint64_t> out;
    for (auto s = first; s <= last; ++s)
        out.push_back(s);
    return out;
}

// A hub on a recording feed that fills gaps from a fake log.
struct HubFixture {
    HubFixture() : hub(feed, fill_from(log)) {}
    explicit HubFixture(std::size_t page) : hub(feed, fill_from(log, page)) {}

    // A sink subscribed to job "J" from its start.
    std::shared_ptr<Sink> subscribed(WireFormat format) {
        auto sink = std::make_shared<Sink>();
        hub.subscribe("J", 0, sink, format);
        return sink;
    }

    RecordingFeed feed;
    FakeEventLog log;
    Hub hub;
};

}  // namespace

TEST_CASE_METHOD(HubFixture, "a re-delivered batch reaches subscribers once", "[live][hub]") {
    auto sink = subscribed(WireFormat::websocket);

    hub.publish(batch("J", 1, 3));
    hub.publish_remote(batch("J", 1, 3));  // the same commit, from another broker
    hub.publish_remote(batch("J", 2, 5));  // overlaps: only 4 and 5 are new
    hub.drain();

    CHECK(sink->seqs() == range(1, 5));
    CHECK(log.reads == 0);
    // Only 4 and 5 reached the subscriber from the remote batches.
    CHECK(hub.stats().remote_events == 2);
    CHECK(hub.stats().gap_fills == 0);
}

TEST_CASE("a batch that skips ahead has the missing events read from the store first",
          "[live][hub]") {
    HubFixture f(300);
    f.log.last["J"] = 2000;
    auto sink = f.subscribed(WireFormat::sse);

    f.hub.publish(batch("J", 1, 2));
    f.hub.publish_remote(batch("J", 1001, 1002));  // 3..1000 were lost on the way
    f.hub.drain();

    CHECK(sink->seqs() == range(1, 1002));
    CHECK(f.log.reads == 4);  // pages of 300 up to seq 1000
    CHECK(f.hub.stats().gap_fills == 1);
    CHECK(f.hub.stats().remote_events == 1000);  // the filled gap and the batch
}

TEST_CASE_METHOD(HubFixture, "the first batch after subscribing sets where the hub dedupes from",
                 "[live][hub]") {
    log.last["J"] = 60;
    auto sink = subscribed(WireFormat::websocket);

    // The subscriber reads 1..49 from the store itself: the hub fills nothing.
    hub.publish_remote(batch("J", 50, 52));
    hub.drain();

    CHECK(sink->seqs() == range(50, 52));
    CHECK(log.reads == 0);
}

TEST_CASE_METHOD(HubFixture,
                 "the hub watches a job on its first subscriber and unwatches it on its last",
                 "[live][hub]") {
    auto a = std::make_shared<Sink>();
    auto b = std::make_shared<Sink>();

    hub.subscribe("J", 7, a, WireFormat::websocket);
    hub.subscribe("J", 3, b, WireFormat::sse);
    hub.subscribe("J", 7, a, WireFormat::websocket);  // already there
    CHECK(hub.subscriptions() == 2);
    hub.unsubscribe("J", a.get());
    CHECK(feed.calls == std::vector<std::string>{"watch J 7"});
    hub.unsubscribe("J", b.get());
    hub.unsubscribe("J", b.get());  // gone already
    CHECK(feed.calls == std::vector<std::string>{"watch J 7", "unwatch J"});
    CHECK(hub.subscriptions() == 0);

    // Unwatched: what comes next is a fresh start, not a gap.
    hub.subscribe("J", 40, a, WireFormat::websocket);
    hub.publish(batch("J", 41, 41));
    hub.drain();
    CHECK(a->seqs() == std::vector<std::uint64_t>{41});
    CHECK(feed.calls.back() == "watch J 40");
}

TEST_CASE_METHOD(HubFixture,
                 "an owner's jobs feed is watched while it has subscribers, once per state event",
                 "[live][hub]") {
    auto a = std::make_shared<Sink>();
    auto b = std::make_shared<Sink>();
    hub.subscribe_feed("alice", a, WireFormat::websocket);
    hub.subscribe_feed("alice", b, WireFormat::websocket);

    store::JobEvents je{
        "J", "alice", {event(1, EventKind::state), event(2), event(3, EventKind::state)}};
    hub.publish({je});
    hub.publish_remote({je});              // the same commit again
    hub.publish(batch("K", 1, 2, "bob"));  // another owner's job
    hub.drain();
    CHECK(a->seqs() == std::vector<std::uint64_t>{1, 3});
    CHECK(b->seqs() == std::vector<std::uint64_t>{1, 3});

    hub.unsubscribe_feed("alice", a.get());
    hub.unsubscribe_feed("alice", b.get());
    CHECK(feed.calls == std::vector<std::string>{"watch_owner alice", "unwatch_owner alice"});
}

TEST_CASE("the local feed watches nothing", "[live][hub]") {
    LocalFeed feed;
    FakeEventLog log;
    Hub hub(feed, fill_from(log));
    auto sink = std::make_shared<Sink>();
    hub.subscribe("J", 0, sink, WireFormat::websocket);
    hub.publish(batch("J", 1, 600));  // cut into frames of 256 events
    hub.drain();
    CHECK(sink->seqs() == range(1, 600));
    hub.unsubscribe("J", sink.get());
}

TEST_CASE_METHOD(HubFixture,
                 "a commit wakes each lane once, whatever its subscribers and jobs, in order",
                 "[live][hub]") {
    // 10 subscribers of two jobs on 3 lanes, and one without a lane.
    std::vector<std::shared_ptr<QueuedLane>> lanes;
    for (int i = 0; i < 3; ++i)
        lanes.push_back(std::make_shared<QueuedLane>());
    std::vector<std::shared_ptr<LaneSink>> sinks;
    for (int i = 0; i < 10; ++i) {
        sinks.push_back(std::make_shared<LaneSink>(lanes[i % 3]));
        hub.subscribe(i % 2 ? "J" : "K", 0, sinks.back(), WireFormat::websocket);
    }
    auto direct = std::make_shared<Sink>();
    hub.subscribe("J", 0, direct, WireFormat::websocket);

    auto commit = batch("J", 1, 300);  // two frames of J
    commit.push_back(batch("K", 1, 2).front());
    hub.publish(commit);
    hub.drain();
    for (const auto& lane : lanes)
        CHECK(lane->runs == 1);
    CHECK(direct->seqs() == range(1, 300));  // delivered on the hub thread
    for (const auto& sink : sinks)
        CHECK(sink->seqs().empty());  // nothing until its lane runs

    hub.publish(batch("J", 301, 302));
    hub.drain();
    for (const auto& lane : lanes)
        CHECK(lane->runs == 2);
    // A subscriber gone before its lane runs gets nothing; the others get
    // every commit in order.
    std::weak_ptr<LaneSink> gone = sinks[1];
    sinks[1].reset();
    for (const auto& lane : lanes)
        lane->run_all();
    CHECK(gone.expired());
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        if (!sinks[i]) continue;
        CHECK(sinks[i]->seqs() == (i % 2 ? range(1, 302) : range(1, 2)));
    }
}

TEST_CASE_METHOD(HubFixture, "commits of jobs no one follows here never wake the hub's thread",
                 "[live][hub]") {
    hub.publish(batch("X", 1, 3));
    hub.publish(batch("Y", 1, 2, "bob"));
    hub.drain();
    CHECK(hub.stats().batches == 0);

    // A commit with a followed job in it is handed over, without the others.
    auto sink = subscribed(WireFormat::websocket);
    hub.publish(batch("X", 4, 4));
    auto mixed = batch("X", 5, 5);
    mixed.push_back(batch("J", 1, 2)[0]);
    hub.publish(std::move(mixed));
    hub.drain();
    CHECK(hub.stats().batches == 1);
    CHECK(sink->seqs() == range(1, 2));

    // An owner's jobs feed follows every job of that owner.
    auto feed_sink = std::make_shared<Sink>();
    hub.subscribe_feed("alice", feed_sink, WireFormat::websocket);
    std::vector<store::JobEvents> state{{"X", "alice", {event(6, EventKind::state)}}};
    hub.publish(std::move(state));
    hub.publish(batch("Y", 3, 3, "bob"));
    hub.drain();
    CHECK(hub.stats().batches == 2);
    CHECK(feed_sink->seqs() == std::vector<std::uint64_t>{6});
}
