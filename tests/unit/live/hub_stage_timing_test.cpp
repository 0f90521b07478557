// The hub's part of jobcast_event_stage_seconds: what it hands out carries
// when it had the commit and when it had it serialized, so that the I/O
// threads can time the fan-out and the socket write of local commits.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include "live/hub.hpp"

using namespace jobcast;
using namespace jobcast::live;

namespace {

using Steady = std::chrono::steady_clock::time_point;

// Keeps what the hub hands it.
class KeepingSink : public LiveSink {
  public:
    void deliver(const PublishedPtr& published) override {
        std::lock_guard lock(mutex_);
        got_.push_back(published);
    }
    std::vector<PublishedPtr> got() {
        std::lock_guard lock(mutex_);
        return got_;
    }

  private:
    std::mutex mutex_;
    std::vector<PublishedPtr> got_;
};

std::vector<store::JobEvents> one_event(std::uint64_t seq) {
    Event e;
    e.seq = seq;
    e.kind = EventKind::token;
    e.data = R"({"text":"x"})";
    return {store::JobEvents{"J", "alice", {e}}};
}

}  // namespace

TEST_CASE("a local commit is stamped for stage timing, another broker's is not",
          "[live][hub][stages]") {
    LocalFeed feed;
    Hub hub(feed,
            [](const std::string&, std::uint64_t, std::uint64_t) { return std::vector<Event>{}; });
    auto sink = std::make_shared<KeepingSink>();
    hub.subscribe("J", 0, sink, WireFormat::websocket);

    const Steady before = std::chrono::steady_clock::now();
    hub.publish(one_event(1));
    hub.drain();
    const Steady after = std::chrono::steady_clock::now();
    hub.publish_remote(one_event(2));
    hub.drain();

    const auto got = sink->got();
    REQUIRE(got.size() == 2);
    const Published& local = *got[0];
    CHECK(local.committed_at >= before);
    CHECK(local.handed_at >= local.committed_at);
    CHECK(local.handed_at <= after);
    // Its commit time is another broker's, on another clock: nothing to time.
    CHECK(got[1]->committed_at == Steady{});
    CHECK(got[1]->handed_at == Steady{});
    hub.stop();
}
