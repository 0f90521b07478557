#include "cluster/engine_health.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <future>
#include <map>
#include <mutex>

#include "common/logging.hpp"
#include "redis/cluster.hpp"
#include "redis/loop.hpp"
#include "redis/loop_impl.hpp"

namespace jobcast::cluster {

namespace {

constexpr const char* kBrokersKey = "jc:brokers";
// A heartbeat older than this is a broker gone; one much older is removed.
constexpr std::chrono::milliseconds kMinFresh{5000};
constexpr std::chrono::milliseconds kForgotten{std::chrono::minutes(10)};

spdlog::logger& logger() {
    static const std::shared_ptr<spdlog::logger> instance = module_logger("store");
    return *instance;
}

std::string slot_ranges(const redis::Shard& shard) {
    std::string out;
    for (auto [first, last] : shard.slots) {
        if (!out.empty()) out += ',';
        out.append(std::to_string(first)).append(1, '-').append(std::to_string(last));
    }
    return out;
}

std::int64_t to_int(const std::string& text) {
    std::int64_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

}  // namespace

bool EngineHealthStatus::writes_paused(std::uint16_t slot) const {
    if (!checked) return false;
    if (!reachable) return true;
    for (const ShardHealth& shard : shards) {
        for (auto [first, last] : shard.ranges) {
            if (slot >= first && slot <= last) return shard.degraded;
        }
    }
    return true;
}

struct EngineHealth::State : std::enable_shared_from_this<State> {
    State(redis::Cluster& cluster, std::string broker_id, int wait_replicas,
          std::chrono::milliseconds interval, const Clock& clock)
        : cluster(cluster),
          broker_id(std::move(broker_id)),
          wait_replicas(wait_replicas),
          interval(interval),
          fresh(std::max(kMinFresh, interval * 5)),
          clock(clock),
          timer(redis::io_of(cluster.loop())) {}

    redis::Cluster& cluster;
    const std::string broker_id;
    const int wait_replicas;
    const std::chrono::milliseconds interval;
    const std::chrono::milliseconds fresh;
    const Clock& clock;

    // Loop thread.
    boost::asio::steady_timer timer;
    bool stopped = false;
    EngineHealthStatus next;  // the check in progress
    std::size_t pending = 0;  // its ROLE answers still to come
    std::map<std::string, bool> was_degraded;
    bool was_reachable = true;

    mutable std::mutex mutex;
    EngineHealthStatus last;

    void check() {
        if (stopped) return;
        next = EngineHealthStatus{};
        next.checked = true;
        cluster.refresh_topology([self = shared_from_this()](std::error_code ec) {
            if (self->stopped) return;
            if (ec) {
                self->next.reason = "no node of the Redis cluster answers (" + ec.message() + ")";
                return self->done();
            }
            self->next.reachable = true;
            self->ask_roles();
        });
    }

    void ask_roles() {
        const std::vector<redis::Shard> shards = cluster.shards();
        pending = shards.size();
        if (pending == 0) return beat();
        for (std::size_t i = 0; i < shards.size(); ++i) {
            ShardHealth& shard = next.shards.emplace_back();
            shard.slots = slot_ranges(shards[i]);
            for (auto [first, last] : shards[i].slots)
                shard.ranges.emplace_back(first, last);
            shard.primary = shards[i].primary;
        }
        for (std::size_t i = 0; i < shards.size(); ++i) {
            cluster.async_exec_at(
                shards[i].primary, {"ROLE"},
                [self = shared_from_this(), i](std::error_code ec, redis::Reply reply) {
                    if (self->stopped) return;
                    ShardHealth& shard = self->next.shards[i];
                    // ["master", offset, [[host, port, offset], ...]]
                    if (!ec && reply.is_array() && reply.elements.size() >= 3 &&
                        reply.elements[0].str == "master") {
                        shard.primary_up = true;
                        shard.replicas = static_cast<int>(reply.elements[2].elements.size());
                    }
                    shard.degraded = !shard.primary_up || shard.replicas < self->wait_replicas;
                    if (--self->pending == 0) self->beat();
                });
        }
    }

    // This broker's heartbeat, then the brokers seen.
    void beat() {
        const std::int64_t now = clock.unix_ms();
        cluster.async_exec({"HSET", kBrokersKey, broker_id, std::to_string(now)},
                           [](std::error_code, redis::Reply) {});
        cluster.async_exec({"HGETALL", kBrokersKey}, [self = shared_from_this(), now](
                                                         std::error_code ec, redis::Reply reply) {
            if (self->stopped) return;
            if (!ec && reply.is_array()) {
                redis::Command forget = {"HDEL", kBrokersKey};
                for (std::size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
                    const std::int64_t age = now - to_int(reply.elements[i + 1].str);
                    if (age <= self->fresh.count()) ++self->next.brokers;
                    if (age > kForgotten.count()) forget.push_back(reply.elements[i].str);
                }
                if (forget.size() > 2)
                    self->cluster.async_exec(std::move(forget),
                                             [](std::error_code, redis::Reply) {});
            }
            self->done();
        });
    }

    void done() {
        // The status first, then the log lines: whoever reads a change in the
        // log and then scrapes the gauges sees the state the line announced.
        {
            std::lock_guard lock(mutex);
            last = next;
        }
        log_changes();
        timer.expires_after(interval);
        timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec) self->check();
        });
    }

    void log_changes() {
        if (next.reachable != was_reachable) {
            if (next.reachable)
                logger().info("event=engine_reachable shards={}", next.shards.size());
            else
                logger().error("event=engine_unreachable error={}", log_quote(next.reason));
            was_reachable = next.reachable;
        }
        for (const ShardHealth& shard : next.shards) {
            bool& was = was_degraded[shard.slots];
            if (shard.degraded == was) continue;
            was = shard.degraded;
            if (shard.degraded)
                logger().warn(
                    "event=shard_degraded shard={} primary={} primary_up={} replicas={} needed={} "
                    "reason=\"{}\"",
                    shard.slots, shard.primary.str(), shard.primary_up ? 1 : 0, shard.replicas,
                    wait_replicas,
                    shard.primary_up
                        ? "the primary has too few replicas: writes to these slots pause"
                        : "the primary does not answer: writes to these slots pause");
            else
                logger().info("event=shard_healthy shard={} primary={} replicas={}", shard.slots,
                              shard.primary.str(), shard.replicas);
        }
    }
};

EngineHealth::EngineHealth(redis::Cluster& cluster, std::string broker_id, int wait_replicas,
                           std::chrono::milliseconds interval, const Clock& clock)
    : state_(
          std::make_shared<State>(cluster, std::move(broker_id), wait_replicas, interval, clock)) {
    cluster.loop().post([state = state_] { state->check(); });
}

EngineHealth::~EngineHealth() {
    std::promise<void> stopped;
    state_->cluster.loop().post([state = state_, &stopped] {
        state->stopped = true;
        state->timer.cancel();
        stopped.set_value();
    });
    stopped.get_future().wait();
}

EngineHealthStatus EngineHealth::status() const {
    std::lock_guard lock(state_->mutex);
    return state_->last;
}

}  // namespace jobcast::cluster
