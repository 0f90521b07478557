// Dispatch and leases across brokers against a real one-shard cluster (a
// primary and its replica): the library's jc_reserve, jc_renew, jc_claim,
// jc_expired and jc_expire through the ClusterFeeder and the Redis store, as
// two brokers would use them; a broker's queued jobs looked up in the
// cluster's queues; and the hints one broker's LivePublisher sends to the
// others' feeders.
#include <atomic>
#include <catch2/catch.hpp>

#include <algorithm>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "../redis/redis_nodes.hpp"
#include "cluster/cluster_feeder.hpp"
#include "cluster/live_publisher.hpp"
#include "cluster/redis_store.hpp"
#include "redis/cluster.hpp"
#include "redis/loop.hpp"

namespace jobcast::cluster {

namespace {

using namespace std::chrono_literals;
using store::WriteStatus;

store::WriteResult run(store::Store& store, store::WriteOp op) {
    auto promise = std::make_shared<std::promise<store::WriteResult>>();
    auto answer = promise->get_future();
    store.submit(std::move(op), [promise](const store::WriteResult& r) { promise->set_value(r); });
    REQUIRE(answer.wait_for(20s) == std::future_status::ready);
    return answer.get();
}

std::string create(store::Store& store, std::string type, int priority = 0) {
    store::CreateJob op;
    op.job.type = std::move(type);
    op.job.owner = "alice";
    op.job.params = "{}";
    op.job.priority = priority;
    op.job.max_attempts = 2;
    store::WriteResult r = run(store, op);
    REQUIRE(r.job);
    return r.job->id;
}

// `nodes` (a primary and its replica) made a one-shard cluster; the store's
// settings for it.
RedisStoreConfig one_shard(redis::testing::RedisNodes& nodes) {
    nodes.create_single_shard();
    RedisStoreConfig config;
    config.seeds = {nodes.endpoint(0)};
    config.partitions = 4;
    config.wait_timeout = 200ms;
    config.open_timeout = 5s;
    return config;
}

// A primary and its replica holding every slot, and the Redis store on them.
struct OneShard {
    redis::testing::RedisNodes nodes{2, true};
    const RedisStoreConfig config = one_shard(nodes);
    std::unique_ptr<RedisStore> store = open_redis_store(config);
    const Partitions partitions{config.partitions};
};

// A broker's view: its feeder on its own cluster connection.
struct Broker {
    Broker(const redis::testing::RedisNodes& nodes, const Partitions& partitions,
           store::Store& store, std::string id, std::chrono::milliseconds lease_timeout,
           std::chrono::milliseconds reserve_for = 500ms,
           std::chrono::milliseconds poll_interval = 50ms)
        : cluster(loop, options(nodes)),
          feeder(
              cluster, partitions, store,
              FeederConfig{std::move(id), lease_timeout, 100ms, reserve_for, poll_interval,
                           [this](std::uint16_t) { return paused.load(); }},
              [this](std::vector<ReservedJob> jobs) {
                  std::lock_guard lock(mutex);
                  for (auto& job : jobs)
                      reserved.push_back(std::move(job));
              },
              [this](std::vector<std::string> jobs) {
                  std::lock_guard lock(mutex);
                  for (auto& job : jobs)
                      cancels.push_back(std::move(job));
              }) {}

    static redis::ClusterOptions options(const redis::testing::RedisNodes& nodes) {
        redis::ClusterOptions o;
        o.seeds = {nodes.endpoint(0)};
        return o;
    }

    Renewal renew(std::vector<LeaseRef> held) {
        std::promise<Renewal> answer;
        feeder.renew(std::move(held), [&](Renewal r) { answer.set_value(std::move(r)); });
        auto future = answer.get_future();
        REQUIRE(future.wait_for(10s) == std::future_status::ready);
        return future.get();
    }

    std::vector<LeaseRef> claim(std::string worker, std::vector<LeaseRef> inflight) {
        std::promise<std::vector<LeaseRef>> answer;
        feeder.claim(std::move(worker), std::move(inflight),
                     [&](std::vector<LeaseRef> r) { answer.set_value(std::move(r)); });
        auto future = answer.get_future();
        REQUIRE(future.wait_for(10s) == std::future_status::ready);
        return future.get();
    }

    std::vector<std::string> not_queued(std::vector<QueuedRef> jobs) {
        std::promise<std::vector<std::string>> answer;
        feeder.not_queued(std::move(jobs),
                          [&](std::vector<std::string> r) { answer.set_value(std::move(r)); });
        auto future = answer.get_future();
        REQUIRE(future.wait_for(10s) == std::future_status::ready);
        auto gone = future.get();
        std::sort(gone.begin(), gone.end());
        return gone;
    }

    std::vector<ReservedJob> taken() {
        std::lock_guard lock(mutex);
        return reserved;
    }

    std::vector<std::string> cancelled() {
        std::lock_guard lock(mutex);
        return cancels;
    }

    std::atomic<bool> paused{false};  // what the engine's health says of every slot
    redis::Loop loop;
    redis::Cluster cluster;
    std::mutex mutex;
    std::vector<ReservedJob> reserved;
    std::vector<std::string> cancels;
    ClusterFeeder feeder;
};

}  // namespace

TEST_CASE("leases across brokers: renew, claim, expire", "[cluster_feeder]") {
    if (redis::testing::skip_without_redis()) return;
    OneShard shard;
    auto& [nodes, config, store, partitions] = shard;
    constexpr auto kLease = 400ms;
    Broker a(nodes, partitions, *store, "a", kLease);
    Broker b(nodes, partitions, *store, "b", kLease);

    const std::string id = create(*store, "t");
    REQUIRE(run(*store, store::LeaseJob{id, "w1", 0}).status == WriteStatus::ok);

    // The first broker to renew keeps the lease; another is told it lost it.
    Renewal kept = a.renew({{id, 1}});
    CHECK(kept.lost.empty());
    CHECK(kept.cancel.empty());
    Renewal other = b.renew({{id, 1}});
    REQUIRE(other.lost.size() == 1);
    CHECK(other.lost[0] == LeaseRef{id, 1});
    CHECK(a.renew({{id, 2}}).lost.size() == 1);  // not the running attempt

    // A renewed lease is not expired; a cancel asked for anywhere is named.
    store::RequeueJob expire{id, 1, "lease expired", 0, kLease};
    CHECK(run(*store, expire).message == "lease renewed");
    REQUIRE(run(*store, store::CancelJob{id, false, 0}).status == WriteStatus::ok);
    CHECK(a.renew({{id, 1}}).cancel == std::vector<std::string>{id});

    // A worker that failed over: the lease moves with its name and attempt only.
    CHECK(b.claim("w2", {{id, 1}}).empty());
    CHECK(b.claim("w1", {{id, 2}}).empty());
    CHECK(b.claim("w1", {{id, 1}}) == std::vector<LeaseRef>{{id, 1}});
    CHECK(a.renew({{id, 1}}).lost.size() == 1);
    CHECK(b.renew({{id, 1}}).lost.empty());

    // Nobody renews: the lease expires, by the rules of RequeueJob (the
    // cancel requested ends the job cancelled). Twice is harmless.
    store::WriteResult expired;
    redis::testing::wait_until("the lease to expire", [&] {
        expired = run(*store, expire);
        return expired.status == WriteStatus::ok;
    });
    CHECK(expired.job->state == JobState::cancelled);
    CHECK(run(*store, expire).status == WriteStatus::conflict);

    // A retried job keeps its attempts; the feeder's sweep finds the lease
    // nobody renews and requeues it.
    const std::string retried = create(*store, "t");
    REQUIRE(run(*store, store::LeaseJob{retried, "w1", 0}).status == WriteStatus::ok);
    a.feeder.start();
    redis::testing::wait_until("the sweep to requeue the lease", [&] {
        auto job = store->jobs().get(retried);
        return job && job->state == JobState::queued;
    });
    auto job = store->jobs().get(retried);
    CHECK(job->attempt == 1);
    a.feeder.stop();
    store->close();
}

TEST_CASE("no lease is expired while its shard takes no writes, nor until its holders could renew",
          "[cluster_feeder]") {
    if (redis::testing::skip_without_redis()) return;
    OneShard shard;
    auto& [nodes, config, store, partitions] = shard;
    constexpr auto kLease = 300ms;  // expired after two: 600 ms unrenewed
    Broker a(nodes, partitions, *store, "a", kLease);
    const std::string id = create(*store, "t");
    REQUIRE(run(*store, store::LeaseJob{id, "w1", 0}).status == WriteStatus::ok);
    auto state = [&] { return store->jobs().get(id)->state; };

    // The shard is degraded (a failover, a primary without its replica): its
    // holder's renewals are refused, so the unrenewed lease is kept.
    a.paused = true;
    a.feeder.start();
    const auto until = std::chrono::steady_clock::now() + 6 * kLease;
    while (std::chrono::steady_clock::now() < until) {
        CHECK(state() == JobState::running);
        std::this_thread::sleep_for(50ms);
    }
    // Writes resume: the holder gets two lease timeouts to renew first.
    a.paused = false;
    const auto resumed = std::chrono::steady_clock::now();
    redis::testing::wait_until("the sweep to requeue the lease nobody renewed",
                               [&] { return state() == JobState::queued; });
    // The last paused pass ended at most one pass (100 ms) before `resumed`.
    CHECK(std::chrono::steady_clock::now() - resumed >= 2 * kLease - 100ms);
    a.feeder.stop();
    store->close();
}

TEST_CASE("any broker reserves queued jobs for its free workers", "[cluster_feeder]") {
    if (redis::testing::skip_without_redis()) return;
    OneShard shard;
    auto& [nodes, config, store, partitions] = shard;
    // Reservations outlast the slowest poll of a loaded machine.
    Broker a(nodes, partitions, *store, "a", 3s, 2s);
    Broker b(nodes, partitions, *store, "b", 3s, 2s);

    const std::string low = create(*store, "x", 0);
    const std::string high = create(*store, "x", 5);
    const std::string other_type = create(*store, "y", 9);
    a.feeder.start();
    b.feeder.start();

    // Best first within a partition, only the types wanted, as many as free.
    a.feeder.want({{"x", 1}});
    redis::testing::wait_until("a reservation", [&] { return !a.taken().empty(); });
    if (partitions.of(low) == partitions.of(high)) CHECK(a.taken()[0].job == high);
    CHECK(a.taken()[0].type == "x");

    // While reserved for one broker, another passes it over.
    a.feeder.want({});
    b.feeder.want({{"x", 3}, {"y", 1}});
    redis::testing::wait_until("b's reservations", [&] { return b.taken().size() >= 2; });
    std::set<std::string> by_b;
    for (const auto& job : b.taken())
        by_b.insert(job.job);
    CHECK_FALSE(by_b.contains(a.taken()[0].job));
    CHECK(by_b.contains(other_type));

    // A reservation not leased ends: the job is offered again.
    redis::testing::wait_until("the reservation to end", [&] {
        std::size_t seen = 0;
        for (const auto& job : b.taken())
            seen += job.job == a.taken()[0].job;
        return seen > 0;
    });
    // A leased job is no longer offered.
    b.feeder.want({});
    REQUIRE(run(*store, store::LeaseJob{low, "w", 0}).status == WriteStatus::ok);
    REQUIRE(run(*store, store::LeaseJob{high, "w", 0}).status == WriteStatus::ok);
    const std::size_t before = a.taken().size();
    a.feeder.want({{"x", 5}});
    std::this_thread::sleep_for(500ms);  // several polls: nothing is left to offer
    CHECK(a.taken().size() == before);
    a.feeder.stop();
    b.feeder.stop();
    store->close();
}

TEST_CASE("a broker's queued jobs that another leased or ended are not queued",
          "[cluster_feeder]") {
    if (redis::testing::skip_without_redis()) return;
    OneShard shard;
    auto& [nodes, config, store, partitions] = shard;
    Broker a(nodes, partitions, *store, "a", 3s, 2s);
    Broker b(nodes, partitions, *store, "b", 3s, 2s);

    // Jobs A holds in its queue, of several partitions and two types. B
    // reserves the first six for its free workers: they still wait.
    std::vector<std::string> waiting, leased, cancelled;
    for (int i = 0; i < 6; ++i)
        waiting.push_back(create(*store, i % 2 ? "x" : "y"));
    b.feeder.start();
    b.feeder.want({{"x", 3}, {"y", 3}});
    redis::testing::wait_until("b's reservations", [&] { return b.taken().size() >= 6; });
    b.feeder.stop();
    for (int i = 0; i < 6; ++i) {
        leased.push_back(create(*store, "x"));
        cancelled.push_back(create(*store, "y"));
    }
    std::vector<QueuedRef> held;
    for (const auto& id : waiting)
        held.emplace_back(id, store->jobs().get(id)->type);
    for (const auto& id : leased)
        held.emplace_back(id, "x");
    for (const auto& id : cancelled)
        held.emplace_back(id, "y");
    CHECK(a.not_queued(held).empty());

    // Then others are leased (by any broker) or cancelled: they no longer
    // wait. A job the cluster no longer knows (gone with its retention) does
    // not either.
    for (const auto& id : leased)
        REQUIRE(run(*store, store::LeaseJob{id, "w", 0}).status == WriteStatus::ok);
    for (const auto& id : cancelled)
        REQUIRE(run(*store, store::CancelJob{id, false, 0}).status == WriteStatus::ok);
    held.emplace_back("01JUNKNOWNJOB0000000000000", "x");
    std::vector<std::string> gone = leased;
    gone.insert(gone.end(), cancelled.begin(), cancelled.end());
    gone.push_back("01JUNKNOWNJOB0000000000000");
    std::sort(gone.begin(), gone.end());
    CHECK(a.not_queued(held) == gone);
    CHECK(a.not_queued({}).empty());
    store->close();
}

TEST_CASE("hints encode their kind and subject, and nothing else decodes", "[cluster_feeder]") {
    for (const Hint& hint :
         {Hint{Hint::Kind::ready, "llm.generate"}, Hint{Hint::Kind::cancel, "J1"}}) {
        const auto decoded = decode_hint(encode_hint(hint));
        REQUIRE(decoded);
        CHECK(decoded->kind == hint.kind);
        CHECK(decoded->subject == hint.subject);
    }
    for (const char* payload : {"", "r", "r:", "x:type", "r-type", "c"})
        CHECK_FALSE(decode_hint(payload));
}

TEST_CASE("hints: a job queued is reserved at once, a cancel reaches the feeders",
          "[cluster_feeder]") {
    if (redis::testing::skip_without_redis()) return;
    redis::testing::RedisNodes nodes(2, true);
    const RedisStoreConfig config = one_shard(nodes);
    const Partitions partitions(config.partitions);
    // Broker A commits and publishes (its LivePublisher is its store's commit
    // listener); broker B polls far too rarely to find anything in time.
    redis::Loop loop;
    redis::Cluster cluster(loop, Broker::options(nodes));
    LivePublisher publisher(cluster, partitions);
    auto store =
        open_redis_store(config, [&](store::CommittedBatch& batch) { publisher.publish(batch); });
    Broker b(nodes, partitions, *store, "b", 3s, 2s, std::chrono::hours(1));
    b.feeder.start();
    b.feeder.want({{"x", 1}});
    // The hint channels are subscribed once a publish reaches them.
    redis::testing::wait_until("the hint channels to be subscribed", [&] {
        for (std::uint32_t p = 0; p < partitions.count(); ++p) {
            const std::string out =
                nodes.cli(0, {"PUBSUB", "SHARDNUMSUB", hint_channel(partitions, p)});
            if (std::stoi(out.substr(out.find('\n') + 1)) != 1) return false;
        }
        return true;
    });

    // A job of another type: hinted, not reserved. One of a wanted type: reserved.
    create(*store, "y");
    const std::string job = create(*store, "x");
    redis::testing::wait_until("b's reservation", [&] { return !b.taken().empty(); });
    REQUIRE(b.taken().size() == 1);
    CHECK(b.taken()[0].job == job);
    CHECK(b.feeder.stats().ready_hints == 2);
    redis::testing::wait_until("the publisher to count its hints",
                               [&] { return publisher.stats().ready_hints == 2; });

    // A cancel of a running job: every feeder hears of it.
    REQUIRE(run(*store, store::LeaseJob{job, "w", 0}).status == WriteStatus::ok);
    REQUIRE(run(*store, store::CancelJob{job, false, 0}).status == WriteStatus::ok);
    redis::testing::wait_until("the cancel hint", [&] { return !b.cancelled().empty(); });
    CHECK(b.cancelled() == std::vector<std::string>{job});
    CHECK(b.feeder.stats().cancel_hints == 1);
    redis::testing::wait_until("the publisher to count its cancel hint",
                               [&] { return publisher.stats().cancel_hints == 1; });
    b.feeder.stop();
    store->close();
}

}  // namespace jobcast::cluster
