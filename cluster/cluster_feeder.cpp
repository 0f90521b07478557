#include "cluster/cluster_feeder.hpp"

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <future>
#include <mutex>
#include <set>
#include <unordered_map>

#include "cluster/live_publisher.hpp"
#include "common/log_quote.hpp"
#include "common/logging.hpp"
#include "redis/cluster.hpp"
#include "redis/loop.hpp"
#include "redis/loop_impl.hpp"
#include "redis/pubsub.hpp"

namespace jobcast::cluster {

namespace {

spdlog::logger& logger() {
    static const std::shared_ptr<spdlog::logger> instance = module_logger("cluster");
    return *instance;
}

int to_int(const std::string& text) {
    int value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

constexpr std::size_t kExpireBatch = 100;  // leases per partition and pass
constexpr std::size_t kLookupBatch = 500;  // jobs per ZMSCORE of a queue check

// The answers of `left` commands gathered into one result, on the loop
// thread: `done` gets it after the last.
template <class T>
struct Gather {
    Gather(std::size_t commands, std::function<void(T)> then)
        : left(commands), done(std::move(then)) {}
    T result{};
    std::size_t left;
    std::function<void(T)> done;
    void answered() {
        if (--left == 0) done(std::move(result));
    }
};

}  // namespace

struct ClusterFeeder::State : std::enable_shared_from_this<State> {
    State(redis::Cluster& c, const Partitions& p, store::Store& s, FeederConfig f,
          std::function<void(std::vector<ReservedJob>)> r,
          std::function<void(std::vector<std::string>)> x, const Clock& k)
        : cluster(c),
          partitions(p),
          store(s),
          config(std::move(f)),
          on_reserved(std::move(r)),
          on_cancel(std::move(x)),
          clock(k),
          expire_timer(redis::io_of(c.loop())),
          poll_timer(redis::io_of(c.loop())) {
        for (std::uint32_t i = 0; i < partitions.count(); ++i)
            partition_of.emplace(hint_channel(partitions, i), i);
    }

    redis::Cluster& cluster;
    const Partitions& partitions;
    store::Store& store;
    const FeederConfig config;
    const std::function<void(std::vector<ReservedJob>)> on_reserved;
    const std::function<void(std::vector<std::string>)> on_cancel;
    const Clock& clock;
    std::unordered_map<std::string, std::uint32_t> partition_of;  // hint channel -> partition

    std::mutex mutex;
    std::map<std::string, std::size_t> wanted;  // under mutex
    // Under mutex: jobs handed over by type since `wanted` was last replaced
    // or the last poll. The gateway tells its new free slots once it has
    // placed them; until then they still count as free in `wanted`.
    std::map<std::string, std::size_t> handed;
    std::set<LeaseRef> expiring;  // under mutex: requeues not yet answered

    std::atomic<std::uint64_t> ready_hints{0};
    std::atomic<std::uint64_t> cancel_hints{0};

    // Loop thread only.
    boost::asio::steady_timer expire_timer;
    boost::asio::steady_timer poll_timer;
    bool stopped = false;
    bool reserving = false;
    std::uint32_t first_partition = 0;
    std::set<std::uint32_t> hinted;  // partitions with a ready hint not yet acted on
    // Per partition: until when no lease of it is requeued, because its
    // shard took no writes (config.writes_paused) or did not answer an
    // expiry pass (or answered it more than a lease timeout late): the
    // holders' renewals could not reach it either (a failover, an outage, a
    // primary without its replica), so a lease it shows as unrenewed may
    // well be held. Set to one expiry() after the last such pass, time
    // enough for every holder to renew.
    std::vector<Clock::Steady> hold_expiry;

    void schedule_expire() {
        expire_timer.expires_after(config.expire_interval);
        expire_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec || self->stopped) return;
            self->expire_all();
            self->schedule_expire();
        });
    }

    void schedule_poll() {
        poll_timer.expires_after(config.poll_interval);
        poll_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec || self->stopped) return;
            self->poll();
            self->schedule_poll();
        });
    }

    // ---- expiry ----

    // A lease of a broker that died outlives it by one lease timeout for its
    // worker to notice (the same silence) and one to claim it on another.
    std::chrono::milliseconds expiry() const { return config.lease_timeout * 2; }

    void expire_all() {
        const std::string lease_ms = std::to_string(expiry().count());
        hold_expiry.resize(partitions.count());
        for (std::uint32_t p = 0; p < partitions.count(); ++p) {
            const std::string prefix = partitions.prefix(p);
            cluster.async_exec(partitions.slot(p),
                               {"FCALL_RO", "jc_expired", "1", prefix + "leases", prefix, lease_ms,
                                std::to_string(kExpireBatch)},
                               [self = shared_from_this(), p, sent = clock.steady()](
                                   std::error_code ec, redis::Reply reply) {
                                   if (self->stopped) return;
                                   const auto now = self->clock.steady();
                                   const bool paused =
                                       self->config.writes_paused &&
                                       self->config.writes_paused(self->partitions.slot(p));
                                   if (ec || !reply.is_array() || paused ||
                                       now - sent > self->config.lease_timeout) {
                                       self->hold_expiry[p] = now + self->expiry();
                                       return;
                                   }
                                   if (now < self->hold_expiry[p]) return;
                                   self->requeue(reply);
                               });
        }
    }

    void requeue(const redis::Reply& flat) {
        for (std::size_t i = 0; i + 1 < flat.elements.size(); i += 2) {
            LeaseRef lease{flat.elements[i].str, to_int(flat.elements[i + 1].str)};
            {
                std::lock_guard lock(mutex);
                if (!expiring.insert(lease).second) continue;
            }
            logger().warn("event=lease_expired job={} attempt={}", lease.first, lease.second);
            store::RequeueJob op{lease.first, lease.second,
                                 "lease expired: no broker renewed it (its broker stopped)",
                                 clock.unix_ms(), expiry()};
            store.submit(std::move(op),
                         [weak = weak_from_this(), lease](const store::WriteResult&) {
                             if (auto self = weak.lock()) {
                                 std::lock_guard lock(self->mutex);
                                 self->expiring.erase(lease);
                             }
                         });
        }
    }

    // ---- hints ----

    void on_hint(const std::string& channel, const std::string& payload) {
        if (stopped) return;
        const auto partition = partition_of.find(channel);
        const auto hint = decode_hint(payload);
        if (partition == partition_of.end() || !hint) return;
        if (hint->kind == Hint::Kind::cancel) {
            cancel_hints.fetch_add(1, std::memory_order_relaxed);
            on_cancel({hint->subject});
            return;
        }
        ready_hints.fetch_add(1, std::memory_order_relaxed);
        {
            std::lock_guard lock(mutex);
            if (free_of(hint->subject) == 0) return;
        }
        hinted.insert(partition->second);
        if (!reserving) feed_hinted();
    }

    void feed_hinted() {
        std::vector<std::uint32_t> order(hinted.begin(), hinted.end());
        hinted.clear();
        feed(std::move(order));
    }

    // ---- feeding ----

    // Under mutex.
    std::size_t free_of(const std::string& type) const {
        const auto want = wanted.find(type);
        if (want == wanted.end()) return 0;
        const auto gone = handed.find(type);
        const std::size_t taken = gone == handed.end() ? 0 : gone->second;
        return want->second > taken ? want->second - taken : 0;
    }

    // Every partition, from a rotating start.
    void poll() {
        {
            std::lock_guard lock(mutex);
            handed.clear();
        }
        if (reserving) return;
        first_partition = (first_partition + 1) % partitions.count();
        std::vector<std::uint32_t> order(partitions.count());
        for (std::uint32_t i = 0; i < partitions.count(); ++i)
            order[i] = (first_partition + i) % partitions.count();
        hinted.clear();  // the pass covers them
        feed(std::move(order));
    }

    // Reserves for the free slots from `order`'s partitions, one at a time.
    void feed(std::vector<std::uint32_t> order) {
        std::vector<std::string> types;
        std::size_t total = 0;
        {
            std::lock_guard lock(mutex);
            for (const auto& [type, slots] : wanted) {
                const std::size_t free = free_of(type);
                if (free == 0) continue;
                types.push_back(type);
                total += free;
            }
        }
        if (total == 0 || order.empty()) return;
        reserving = true;
        reserve_from(std::make_shared<const std::vector<std::uint32_t>>(std::move(order)), 0, total,
                     std::move(types));
    }

    // The i-th partition of the pass, for `n` more jobs.
    void reserve_from(std::shared_ptr<const std::vector<std::uint32_t>> order, std::size_t i,
                      std::size_t n, std::vector<std::string> types) {
        if (n == 0 || i >= order->size()) {
            reserving = false;
            if (!hinted.empty()) feed_hinted();  // hints that came during the pass
            return;
        }
        const std::uint32_t p = (*order)[i];
        const std::string prefix = partitions.prefix(p);
        redis::Command command{"FCALL",
                               "jc_reserve",
                               "1",
                               prefix + "reserved",
                               prefix,
                               std::to_string(config.reserve_for.count()),
                               std::to_string(n)};
        command.insert(command.end(), types.begin(), types.end());
        cluster.async_exec(
            partitions.slot(p), std::move(command),
            [self = shared_from_this(), order = std::move(order), i, n, types = std::move(types)](
                std::error_code ec, redis::Reply reply) mutable {
                if (self->stopped) return;
                std::vector<ReservedJob> jobs;
                if (!ec && reply.is_array()) {
                    for (std::size_t k = 0; k + 2 < reply.elements.size(); k += 3)
                        jobs.push_back({reply.elements[k].str, reply.elements[k + 1].str,
                                        to_int(reply.elements[k + 2].str)});
                }
                const std::size_t got = std::min(n, jobs.size());
                if (!jobs.empty()) {
                    {
                        std::lock_guard lock(self->mutex);
                        for (const ReservedJob& job : jobs)
                            ++self->handed[job.type];
                    }
                    self->on_reserved(std::move(jobs));
                }
                self->reserve_from(std::move(order), i + 1, n - got, std::move(types));
            });
    }

    std::unique_ptr<redis::ShardedPubSub> hints;  // from start() to stop()
};

ClusterFeeder::ClusterFeeder(redis::Cluster& cluster, const Partitions& partitions,
                             store::Store& store, FeederConfig config,
                             std::function<void(std::vector<ReservedJob>)> on_reserved,
                             std::function<void(std::vector<std::string>)> on_cancel,
                             const Clock& clock)
    : state_(std::make_shared<State>(cluster, partitions, store, std::move(config),
                                     std::move(on_reserved), std::move(on_cancel), clock)) {}

ClusterFeeder::~ClusterFeeder() {
    stop();
}

void ClusterFeeder::start() {
    state_->hints = std::make_unique<redis::ShardedPubSub>(
        state_->cluster, [weak = std::weak_ptr<State>(state_)](const std::string& channel,
                                                               const std::string& payload) {
            if (auto state = weak.lock()) state->on_hint(channel, payload);
        });
    for (const auto& [channel, partition] : state_->partition_of)
        state_->hints->subscribe(channel);
    state_->cluster.loop().post([state = state_] {
        state->schedule_expire();
        state->schedule_poll();
    });
}

void ClusterFeeder::stop() {
    state_->hints.reset();  // no hint after this
    std::promise<void> done;
    auto stopped = done.get_future();
    state_->cluster.loop().post([state = state_, &done] {
        state->stopped = true;
        state->expire_timer.cancel();
        state->poll_timer.cancel();
        done.set_value();
    });
    stopped.wait();
}

void ClusterFeeder::want(std::map<std::string, std::size_t> free_slots) {
    std::lock_guard lock(state_->mutex);
    state_->wanted = std::move(free_slots);
    state_->handed.clear();
}

FeederStats ClusterFeeder::stats() const {
    return {state_->ready_hints.load(std::memory_order_relaxed),
            state_->cancel_hints.load(std::memory_order_relaxed)};
}

void ClusterFeeder::renew(std::vector<LeaseRef> held, std::function<void(Renewal)> done) {
    const Partitions& partitions = state_->partitions;
    std::map<std::uint32_t, std::vector<LeaseRef>> by_partition;
    for (auto& lease : held)
        by_partition[partitions.of(lease.first)].push_back(std::move(lease));
    if (by_partition.empty()) return;
    auto pending = std::make_shared<Gather<Renewal>>(by_partition.size(), std::move(done));
    for (auto& [p, leases] : by_partition) {
        const std::string prefix = partitions.prefix(p);
        redis::Command command{"FCALL",           "jc_renew", "1",
                               prefix + "leases", prefix,     state_->config.broker};
        for (auto& [job, attempt] : leases) {
            command.push_back(job);
            command.push_back(std::to_string(attempt));
        }
        state_->cluster.async_exec(
            partitions.slot(p), std::move(command),
            [state = state_, pending](std::error_code ec, redis::Reply reply) {
                if (state->stopped) return;
                // An unanswered renew loses nothing: the next one comes well
                // before the lease timeout.
                if (!ec && reply.is_array() && reply.elements.size() == 2) {
                    const auto& lost = reply.elements[0].elements;
                    for (std::size_t i = 0; i + 1 < lost.size(); i += 2)
                        pending->result.lost.emplace_back(lost[i].str, to_int(lost[i + 1].str));
                    for (const auto& job : reply.elements[1].elements)
                        pending->result.cancel.push_back(job.str);
                } else if (!ec && reply.is_error()) {
                    logger().warn("event=renew_failed error={}", log_quote(reply.str));
                }
                pending->answered();
            });
    }
}

void ClusterFeeder::claim(std::string worker, std::vector<LeaseRef> inflight,
                          std::function<void(std::vector<LeaseRef>)> done) {
    auto pending =
        std::make_shared<Gather<std::vector<LeaseRef>>>(inflight.size(), std::move(done));
    if (inflight.empty()) {
        state_->cluster.loop().post([pending] { pending->done({}); });
        return;
    }
    const Partitions& partitions = state_->partitions;
    for (auto& lease : inflight) {
        const std::uint32_t p = partitions.of(lease.first);
        state_->cluster.async_exec(
            partitions.slot(p),
            {"FCALL", "jc_claim", "1", partitions.job_key(lease.first), partitions.prefix(p),
             lease.first, std::to_string(lease.second), worker, state_->config.broker},
            [state = state_, pending, lease](std::error_code ec, redis::Reply reply) {
                if (state->stopped) return;
                if (!ec && reply.is_integer() && reply.integer == 1)
                    pending->result.push_back(lease);
                pending->answered();
            });
    }
}

void ClusterFeeder::not_queued(std::vector<QueuedRef> jobs,
                               std::function<void(std::vector<std::string>)> done) {
    // One ZMSCORE per partition and type (in batches): a job that is not in
    // its queue has no score there.
    const Partitions& partitions = state_->partitions;
    std::map<std::pair<std::uint32_t, std::string>, std::vector<std::string>> by_queue;
    for (auto& [job, type] : jobs) {
        const std::uint32_t p = partitions.of(job);
        by_queue[{p, std::move(type)}].push_back(std::move(job));
    }
    struct Lookup {
        std::uint32_t partition;
        redis::Command command;
    };
    std::vector<Lookup> lookups;
    for (const auto& [queue, ids] : by_queue) {
        const auto& [p, type] = queue;
        for (std::size_t i = 0; i < ids.size(); i += kLookupBatch) {
            Lookup& lookup =
                lookups.emplace_back(Lookup{p, {"ZMSCORE", partitions.prefix(p) + "q:" + type}});
            const std::size_t end = std::min(ids.size(), i + kLookupBatch);
            lookup.command.insert(lookup.command.end(), ids.begin() + i, ids.begin() + end);
        }
    }
    auto pending =
        std::make_shared<Gather<std::vector<std::string>>>(lookups.size(), std::move(done));
    if (lookups.empty()) {
        state_->cluster.loop().post([pending] { pending->done({}); });
        return;
    }
    for (auto& lookup : lookups) {
        // The ids, as sent: after "ZMSCORE" and the key.
        std::vector<std::string> ids(lookup.command.begin() + 2, lookup.command.end());
        state_->cluster.async_exec(
            partitions.slot(lookup.partition), std::move(lookup.command),
            [state = state_, pending, ids = std::move(ids)](std::error_code ec,
                                                            redis::Reply reply) {
                if (state->stopped) return;
                if (!ec && reply.is_array() && reply.elements.size() == ids.size()) {
                    for (std::size_t i = 0; i < ids.size(); ++i)
                        if (reply.elements[i].is_nil()) pending->result.push_back(ids[i]);
                } else if (!ec && reply.is_error()) {
                    logger().warn("event=queue_check_failed error={}", log_quote(reply.str));
                }
                pending->answered();
            });
    }
}

}  // namespace jobcast::cluster
