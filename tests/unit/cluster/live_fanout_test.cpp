// Cross-broker live fan-out on a real Redis cluster (3 primaries): broker A
// commits a job's batches (to an in-memory store) and publishes them with a
// LivePublisher; broker B has a real live::Hub whose feed is a RedisLiveFeed
// and a sink subscribed to the job. B's sink must see every event once and in
// order: duplicates dropped, a batch whose publish was lost filled from the
// store, and everything published while B's subscription was down (killed
// connection, slot moved to another node) caught up from the store.
#include <catch2/catch.hpp>

#include <algorithm>
#include <condition_variable>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <stdexcept>

#include "../redis/redis_nodes.hpp"
#include "cluster/live_message.hpp"
#include "cluster/live_publisher.hpp"
#include "cluster/partitions.hpp"
#include "cluster/redis_live_feed.hpp"
#include "live/hub.hpp"
#include "persistence/written_seqs.hpp"
#include "redis/cluster.hpp"
#include "redis/loop.hpp"
#include "redis/slot.hpp"

namespace jobcast::cluster {

namespace {

using redis::testing::RedisNodes;
using redis::testing::wait_until;

// The store both brokers share: the committed events of each job. B may be
// unable to show all of a job's log (hold), as a broker that cannot confirm
// what another one wrote and published while the job's shard has no replica.
class MemoryLog final : public store::EventLog, public store::WrittenSeqs {
  public:
    void append(const store::JobEvents& batch) {
        std::lock_guard lock(mutex_);
        auto& log = events_[batch.job];
        log.insert(log.end(), batch.events.begin(), batch.events.end());
    }

    // Reads show `job`'s log up to `seq` only, until release().
    void hold(const std::string& job, std::uint64_t seq) {
        std::lock_guard lock(mutex_);
        shown_[job] = seq;
    }
    void release(const std::string& job) {
        std::lock_guard lock(mutex_);
        shown_.erase(job);
    }

    // The next `count` reads throw, as a store that cannot be reached.
    void fail_next(int count) {
        std::lock_guard lock(mutex_);
        failures_ = count;
    }

    std::vector<Event> read(std::string_view job, std::uint64_t after, std::size_t limit,
                            std::size_t max_bytes) override {
        std::lock_guard lock(mutex_);
        fail();
        std::vector<Event> page;
        auto it = events_.find(std::string(job));
        if (it == events_.end()) return page;
        std::size_t bytes = 0;
        for (const Event& event : it->second) {
            if (event.seq <= after) continue;
            if (page.size() == limit || bytes >= max_bytes || event.seq > shown(job)) break;
            page.push_back(event);
            bytes += event.data.size();
        }
        return page;
    }

    std::optional<std::uint64_t> last_seq(std::string_view job) override {
        std::lock_guard lock(mutex_);
        fail();
        auto it = events_.find(std::string(job));
        if (it == events_.end()) return std::nullopt;
        return std::min(it->second.empty() ? 0 : it->second.back().seq, shown(job));
    }

    std::uint64_t written_seq(std::string_view job) override {
        std::lock_guard lock(mutex_);
        auto it = events_.find(std::string(job));
        return it == events_.end() || it->second.empty() ? 0 : it->second.back().seq;
    }

  private:
    std::uint64_t shown(std::string_view job) const {
        auto it = shown_.find(std::string(job));
        return it == shown_.end() ? std::numeric_limits<std::uint64_t>::max() : it->second;
    }

    void fail() {
        if (failures_ == 0) return;
        --failures_;
        throw std::runtime_error("store unreachable");
    }

    std::mutex mutex_;
    std::map<std::string, std::vector<Event>, std::less<>> events_;
    std::map<std::string, std::uint64_t> shown_;
    int failures_ = 0;
};

// A subscriber of B's hub: the seqs it was handed, in order.
class Recorder final : public live::LiveSink {
  public:
    void deliver(const live::PublishedPtr& published) override {
        std::lock_guard lock(mutex_);
        for (const Event& event : published->events)
            seqs_[published->job].push_back(event.seq);
        changed_.notify_all();
    }
    // Waits until `job` got `count` events; returns what it got.
    std::vector<std::uint64_t> wait(const std::string& job, std::size_t count) {
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, std::chrono::seconds(10),
                          [&] { return seqs_[job].size() >= count; });
        return seqs_[job];
    }

  private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::map<std::string, std::vector<std::uint64_t>> seqs_;
};

std::vector<std::uint64_t> one_to(std::uint64_t n) {
    std::vector<std::uint64_t> seqs(n);
    std::iota(seqs.begin(), seqs.end(), 1);
    return seqs;
}

redis::ClusterOptions options_for(const RedisNodes& nodes) {
    redis::ClusterOptions options;
    options.seeds = {nodes.endpoint(0)};
    options.max_retry_delay = std::chrono::milliseconds(200);
    return options;
}

// Broker A: commits to the shared store, then publishes (as the store's
// engine does through its CommitListener).
struct BrokerA {
    BrokerA(const RedisNodes& nodes, const Partitions& partitions, MemoryLog& log)
        : cluster(loop, options_for(nodes)), publisher(cluster, partitions), log(log) {}

    // Commits events from..to of `job` (the last one a `state` event and a job
    // change when `state`); publishes them unless `lost`.
    void commit(const std::string& job, std::uint64_t from, std::uint64_t to, bool lost = false,
                bool state = false) {
        store::CommittedBatch batch;
        store::JobEvents events{job, "alice", {}};
        for (std::uint64_t seq = from; seq <= to; ++seq)
            events.events.push_back({seq, EventKind::token, 1, R"({"text":"x"})"});
        if (state) {
            events.events.back().kind = EventKind::state;
            events.events.back().data = R"({"state":"running","attempt":1})";
            Job changed;
            changed.id = job;
            changed.owner = "alice";
            changed.state = JobState::running;
            batch.job_changes.push_back(changed);
        }
        log.append(events);
        batch.events.push_back(std::move(events));
        if (!lost) publisher.publish(batch);
    }

    redis::Loop loop;
    redis::Cluster cluster;
    LivePublisher publisher;
    MemoryLog& log;
};

// Broker B: a hub fed by a RedisLiveFeed, reading gaps from the shared store.
struct BrokerB {
    BrokerB(const RedisNodes& nodes, const Partitions& partitions, MemoryLog& log)
        : cluster(loop, options_for(nodes)),
          feed(
              cluster, partitions, log, log,
              [this](std::vector<store::JobEvents> b) { hub->publish_remote(std::move(b)); },
              [this](std::vector<store::JobEvents> b) { hub->publish_remote(std::move(b)); }) {
        hub.emplace(feed, live::fill_from(log));
    }
    ~BrokerB() { hub->stop(); }

    redis::Loop loop;
    redis::Cluster cluster;
    std::optional<live::Hub> hub;  // after the feed it hands batches to, before it in destruction
    RedisLiveFeed feed;
};

// How many clients of the node owning `channel` are subscribed to it.
int subscribers(const RedisNodes& nodes, const std::string& channel) {
    std::string out =
        nodes.cli(nodes.owner_of(redis::key_slot(channel)), {"PUBSUB", "SHARDNUMSUB", channel});
    return std::stoi(out.substr(out.find('\n') + 1));
}

}  // namespace

TEST_CASE("a job change for the jobs feed encodes its state events, and nothing else decodes") {
    store::JobEvents change{
        "J1", "alice", {Event{4, EventKind::state, 7, R"({"state":"queued"})"}}};
    const std::string payload = encode_job_change(change);
    const auto decoded = decode_job_change(payload);
    REQUIRE(decoded);
    CHECK(decoded->job == "J1");
    CHECK(decoded->owner == "alice");
    REQUIRE(decoded->events.size() == 1);
    CHECK(decoded->events[0].seq == 4);
    CHECK(decoded->events[0].data == change.events[0].data);

    // Every truncation and every single-byte change either decodes to a
    // change or is refused; none crashes.
    for (std::size_t n = 0; n < payload.size(); ++n)
        CHECK_FALSE(decode_job_change(payload.substr(0, n)));
    for (std::size_t i = 0; i < payload.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            std::string changed = payload;
            changed[i] = static_cast<char>(changed[i] ^ (1 << bit));
            if (auto d = decode_job_change(changed)) CHECK(!d->events.empty());
        }
    }
    change.events[0].kind = EventKind::token;  // the jobs feed shows state events only
    CHECK_FALSE(decode_job_change(encode_job_change(change)));
    CHECK_FALSE(decode_job_change(encode_live_message({"J1", "alice", {}})));
    CHECK_FALSE(decode_job_change("garbage"));
}

TEST_CASE("a subscriber on broker B gets broker A's batches once, in order, with gaps filled",
          "[redis]") {
    if (redis::testing::skip_without_redis()) return;
    RedisNodes nodes(3, true);
    nodes.create_cluster(0);
    const Partitions partitions;
    MemoryLog log;
    BrokerA a(nodes, partitions, log);
    BrokerB b(nodes, partitions, log);
    const std::string job = "01JOBLIVEFANOUT000000000001";

    // B's subscriber read event 1 from the store itself (after = 1); event 2
    // was published before B's subscription was confirmed: the first
    // confirmation hands over the store's newest event.
    a.commit(job, 1, 1);
    a.commit(job, 2, 2, /*lost=*/true);
    wait_until("the publish of event 1", [&] { return a.publisher.stats().publishes == 1; });
    auto sink = std::make_shared<Recorder>();
    b.hub->subscribe(job, 1, sink, live::WireFormat::websocket);
    CHECK(sink->wait(job, 1) == std::vector<std::uint64_t>{2});
    CHECK(b.feed.stats().gap_fills == 1);
    CHECK(subscribers(nodes, partitions.live_channel(job)) == 1);

    a.commit(job, 3, 4);
    a.commit(job, 5, 5);
    CHECK(sink->wait(job, 4) == std::vector<std::uint64_t>{2, 3, 4, 5});

    // A batch that comes twice is handed out once.
    a.commit(job, 6, 7);
    a.publisher.publish({{{job, "alice", {{6, EventKind::token, 1, "{}"}}}}, {}, {}, {}});
    a.commit(job, 8, 8);
    CHECK(sink->wait(job, 7) == std::vector<std::uint64_t>{2, 3, 4, 5, 6, 7, 8});

    // A batch whose publish was lost is read from the store before the next one.
    a.commit(job, 9, 10, /*lost=*/true);
    a.commit(job, 11, 11);
    CHECK(sink->wait(job, 10) == std::vector<std::uint64_t>{2, 3, 4, 5, 6, 7, 8, 9, 10, 11});

    // Garbage on the job's channel, and another job's batch, are counted and dropped.
    const std::string channel = partitions.live_channel(job);
    const int node = nodes.owner_of(redis::key_slot(channel));
    REQUIRE(nodes.cli(node, {"SPUBLISH", channel, "garbage"}) == "1\n");
    std::string other = encode_live_message({"01OTHER", "alice", {{12, EventKind::log, 1, "{}"}}});
    REQUIRE(b.cluster.exec({"SPUBLISH", channel, other}).integer == 1);
    wait_until("two decode failures", [&] { return b.feed.stats().decode_failures == 2; });
    a.commit(job, 12, 12);
    std::vector<std::uint64_t> expected = one_to(12);
    expected.erase(expected.begin());
    CHECK(sink->wait(job, 11) == expected);

    // The jobs feed of alice on B gets the state changes of her jobs that
    // nobody on B subscribed to.
    auto feed_sink = std::make_shared<Recorder>();
    b.hub->subscribe_feed("alice", feed_sink, live::WireFormat::websocket);
    const std::string owner_channel = Partitions::owner_feed_channel("alice");
    wait_until("the owner feed's subscription",
               [&] { return subscribers(nodes, owner_channel) == 1; });
    const std::string unwatched = "01JOBLIVEFANOUT000000000002";
    a.commit(unwatched, 1, 3, false, /*state=*/true);
    CHECK(feed_sink->wait(unwatched, 1) == std::vector<std::uint64_t>{3});
    CHECK(b.feed.stats().job_changes == 1);

    // The last subscriber gone, B unsubscribes.
    b.hub->unsubscribe(job, sink.get());
    b.hub->unsubscribe_feed("alice", feed_sink.get());
    wait_until("the unsubscribes", [&] {
        return subscribers(nodes, channel) == 0 && subscribers(nodes, owner_channel) == 0;
    });

    // 7 batches of `job`, its duplicate, 2 of `unwatched`
    wait_until("every publish answered", [&] {
        const auto published = a.publisher.stats();
        return published.publishes + published.failures == 10;
    });
    CHECK(a.publisher.stats().failures == 0);
    const auto received = b.feed.stats();
    CHECK(received.remote_batches == 7);  // `job`'s after B subscribed, the duplicate too
    CHECK(received.decode_failures == 2);
    CHECK(received.resubscribes == 0);
    CHECK(received.store_errors == 0);
}

TEST_CASE("after a killed subscriber connection or a moved slot, B catches up from the store",
          "[redis]") {
    if (redis::testing::skip_without_redis()) return;
    RedisNodes nodes(3, true);
    nodes.create_cluster(0);
    const Partitions partitions;
    MemoryLog log;
    BrokerA a(nodes, partitions, log);
    BrokerB b(nodes, partitions, log);
    const std::string job = "01JOBLIVEFANOUT000000000003";
    const std::string channel = partitions.live_channel(job);
    const std::uint16_t slot = redis::key_slot(channel);

    auto sink = std::make_shared<Recorder>();
    b.hub->subscribe(job, 0, sink, live::WireFormat::sse);
    wait_until("the first confirmation", [&] { return b.feed.stats().catch_ups >= 1; });
    a.commit(job, 1, 2);
    CHECK(sink->wait(job, 2) == one_to(2));

    // Events whose publish B missed (lost while it was not subscribed), then
    // the server drops B's pub/sub connection: B gets them once resubscribed,
    // though the store fails B's first two reads (the catch-up is retried).
    a.commit(job, 3, 4, /*lost=*/true);
    log.fail_next(2);
    const int owner = nodes.owner_of(slot);
    REQUIRE(nodes.cli(owner, {"CLIENT", "KILL", "TYPE", "pubsub"}) == "1\n");
    CHECK(sink->wait(job, 4) == one_to(4));
    CHECK(b.feed.stats().resubscribes >= 1);
    CHECK(b.feed.stats().store_errors == 2);
    a.commit(job, 5, 5);
    CHECK(sink->wait(job, 5) == one_to(5));

    // More missed events, then the slot moves to another node: the old owner
    // unsubscribes B, which finds the new owner, subscribes there and catches up.
    a.commit(job, 6, 7, /*lost=*/true);
    const int to = (owner + 1) % nodes.size();
    const std::string to_id = nodes.node_id(to);
    for (int n : {to, owner, (owner + 2) % nodes.size()})
        REQUIRE(nodes.cli(n, {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", to_id}) ==
                "OK\n");
    CHECK(sink->wait(job, 7) == one_to(7));
    wait_until("the subscription at the new owner",
               [&] { return nodes.owner_of(slot) == to && subscribers(nodes, channel) == 1; });
    CHECK(b.feed.stats().resubscribes >= 2);
    a.commit(job, 8, 8);  // A follows the move too (MOVED)
    CHECK(sink->wait(job, 8) == one_to(8));
    CHECK(a.publisher.stats().failures == 0);
}

TEST_CASE("events B missed and cannot show yet are caught up as soon as it can, unpublished",
          "[redis]") {
    if (redis::testing::skip_without_redis()) return;
    RedisNodes nodes(3, true);
    nodes.create_cluster(0);
    const Partitions partitions;
    MemoryLog log;
    BrokerA a(nodes, partitions, log);
    BrokerB b(nodes, partitions, log);
    const std::string job = "01JOBLIVEFANOUT000000000004";
    const std::uint16_t slot = redis::key_slot(partitions.live_channel(job));

    auto sink = std::make_shared<Recorder>();
    b.hub->subscribe(job, 0, sink, live::WireFormat::websocket);
    wait_until("the first confirmation", [&] { return b.feed.stats().catch_ups >= 1; });
    a.commit(job, 1, 2);
    CHECK(sink->wait(job, 2) == one_to(2));

    // The job's last events, published while B's connection was down (lost
    // to B), which B cannot show yet (their shard lost its replica): the
    // catch-up after the resubscribe finds nothing to hand over...
    log.hold(job, 2);
    a.commit(job, 3, 5, /*lost=*/true);
    REQUIRE(nodes.cli(nodes.owner_of(slot), {"CLIENT", "KILL", "TYPE", "pubsub"}) == "1\n");
    wait_until("a catch-up after the resubscribe",
               [&] { return b.feed.stats().resubscribes >= 1 && b.feed.stats().catch_ups >= 3; });
    CHECK(sink->wait(job, 2) == one_to(2));
    // ... and, once B can show them, hands them over with nothing more published.
    log.release(job);
    CHECK(sink->wait(job, 5) == one_to(5));
    CHECK(b.feed.stats().store_errors == 0);
}

}  // namespace jobcast::cluster
