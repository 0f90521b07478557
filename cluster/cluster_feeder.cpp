#include "cluster/cluster_feeder.hpp"

#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <future>
#include <mutex>
#include <set>

#include "common/logging.hpp"
#include "redis/cluster.hpp"
#include "redis/loop.hpp"
#include "redis/loop_impl.hpp"

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

}  // namespace

struct ClusterFeeder::State : std::enable_shared_from_this<State> {
    State(redis::Cluster& c, const Partitions& p, store::Store& s, FeederConfig f,
          std::function<void(std::vector<ReservedJob>)> r, const Clock& k)
        : cluster(c),
          partitions(p),
          store(s),
          config(std::move(f)),
          on_reserved(std::move(r)),
          clock(k),
          expire_timer(redis::io_of(c.loop())),
          poll_timer(redis::io_of(c.loop())) {}

    redis::Cluster& cluster;
    const Partitions& partitions;
    store::Store& store;
    const FeederConfig config;
    const std::function<void(std::vector<ReservedJob>)> on_reserved;
    const Clock& clock;

    std::mutex mutex;
    std::map<std::string, std::size_t> wanted;  // under mutex
    std::set<LeaseRef> expiring;                // under mutex: requeues not yet answered

    // Loop thread only.
    boost::asio::steady_timer expire_timer;
    boost::asio::steady_timer poll_timer;
    bool stopped = false;
    bool reserving = false;
    std::uint32_t first_partition = 0;

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
            self->feed();
            self->schedule_poll();
        });
    }

    // ---- expiry ----

    // A lease of a broker that died outlives it by one lease timeout for its
    // worker to notice (the same silence) and one to claim it on another.
    std::chrono::milliseconds expiry() const { return config.lease_timeout * 2; }

    void expire_all() {
        const std::string lease_ms = std::to_string(expiry().count());
        for (std::uint32_t p = 0; p < partitions.count(); ++p) {
            const std::string prefix = partitions.prefix(p);
            cluster.async_exec(partitions.slot(p),
                               {"FCALL_RO", "jc_expired", "1", prefix + "leases", prefix, lease_ms,
                                std::to_string(kExpireBatch)},
                               [self = shared_from_this()](std::error_code ec, redis::Reply reply) {
                                   if (self->stopped || ec || !reply.is_array()) return;
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

    // ---- feeding ----

    void feed() {
        if (reserving) return;
        std::vector<std::string> types;
        std::size_t total = 0;
        {
            std::lock_guard lock(mutex);
            for (const auto& [type, slots] : wanted) {
                if (slots == 0) continue;
                types.push_back(type);
                total += slots;
            }
        }
        if (total == 0) return;
        reserving = true;
        first_partition = (first_partition + 1) % partitions.count();
        reserve_from(0, total, std::move(types));
    }

    // The i-th partition from this pass's start, for `n` more jobs.
    void reserve_from(std::uint32_t i, std::size_t n, std::vector<std::string> types) {
        if (n == 0 || i >= partitions.count()) {
            reserving = false;
            return;
        }
        const std::uint32_t p = (first_partition + i) % partitions.count();
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
            [self = shared_from_this(), i, n, types = std::move(types)](
                std::error_code ec, redis::Reply reply) mutable {
                if (self->stopped) return;
                std::vector<ReservedJob> jobs;
                if (!ec && reply.is_array()) {
                    for (std::size_t k = 0; k + 2 < reply.elements.size(); k += 3)
                        jobs.push_back({reply.elements[k].str, reply.elements[k + 1].str,
                                        to_int(reply.elements[k + 2].str)});
                }
                const std::size_t got = std::min(n, jobs.size());
                if (!jobs.empty()) self->on_reserved(std::move(jobs));
                self->reserve_from(i + 1, n - got, std::move(types));
            });
    }
};

ClusterFeeder::ClusterFeeder(redis::Cluster& cluster, const Partitions& partitions,
                             store::Store& store, FeederConfig config,
                             std::function<void(std::vector<ReservedJob>)> on_reserved,
                             const Clock& clock)
    : state_(std::make_shared<State>(cluster, partitions, store, std::move(config),
                                     std::move(on_reserved), clock)) {}

ClusterFeeder::~ClusterFeeder() {
    stop();
}

void ClusterFeeder::start() {
    state_->cluster.loop().post([state = state_] {
        state->schedule_expire();
        state->schedule_poll();
    });
}

void ClusterFeeder::stop() {
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
}

void ClusterFeeder::renew(std::vector<LeaseRef> held, std::function<void(Renewal)> done) {
    const Partitions& partitions = state_->partitions;
    std::map<std::uint32_t, std::vector<LeaseRef>> by_partition;
    for (auto& lease : held)
        by_partition[partitions.of(lease.first)].push_back(std::move(lease));
    if (by_partition.empty()) return;
    struct Pending {  // the answers come on the loop thread
        Renewal renewal;
        std::size_t left = 0;
        std::function<void(Renewal)> done;
    };
    auto pending = std::make_shared<Pending>();
    pending->left = by_partition.size();
    pending->done = std::move(done);
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
                        pending->renewal.lost.emplace_back(lost[i].str, to_int(lost[i + 1].str));
                    for (const auto& job : reply.elements[1].elements)
                        pending->renewal.cancel.push_back(job.str);
                } else if (!ec && reply.is_error()) {
                    logger().warn("event=renew_failed error=\"{}\"", reply.str);
                }
                if (--pending->left == 0) pending->done(std::move(pending->renewal));
            });
    }
}

void ClusterFeeder::claim(std::string worker, std::vector<LeaseRef> inflight,
                          std::function<void(std::vector<LeaseRef>)> done) {
    struct Pending {
        std::vector<LeaseRef> claimed;
        std::size_t left = 0;
        std::function<void(std::vector<LeaseRef>)> done;
    };
    auto pending = std::make_shared<Pending>();
    pending->left = inflight.size();
    pending->done = std::move(done);
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
                    pending->claimed.push_back(lease);
                if (--pending->left == 0) pending->done(std::move(pending->claimed));
            });
    }
}

}  // namespace jobcast::cluster
