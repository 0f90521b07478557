#include "cluster/redis_token_revocations.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <future>
#include <limits>
#include <random>
#include <stdexcept>
#include <unordered_set>
#include <utility>

#include <msgpack.hpp>

#include "cluster/msgpack_fields.hpp"
#include "common/logging.hpp"
#include "persistence/store.hpp"
#include "redis/cluster.hpp"
#include "redis/connection.hpp"
#include "redis/loop.hpp"
#include "redis/loop_impl.hpp"
#include "redis/pubsub.hpp"
#include "redis/slot.hpp"

namespace jobcast::cluster {

namespace {

using store::StoreError;
using store::TokenRevocation;

spdlog::logger& logger() {
    static const std::shared_ptr<spdlog::logger> instance = module_logger("cluster");
    return *instance;
}

constexpr std::string_view kPrefix = "jc:{revocations}:";
const std::string kIndex = std::string(kPrefix) + "index";
const std::string kVersion = std::string(kPrefix) + "version";
const std::string kChannel = std::string(kPrefix) + "revoked";
const std::uint16_t kSlot = redis::key_slot(kIndex);

// A load reads the index in pages of this many revocations.
constexpr std::size_t kPage = 1000;

// The add: merge with what is stored (the later revoked_at and until of the
// two: a later revocation covers more sessions), expire when every token it
// covers has, index it, prune the index, mark the change. Times are compared
// as numbers (exact below 2^53) and written back as given, never formatted by Lua.
// KEYS: 1 the revocation, 2 the index, 3 the version.
// ARGV: 1 kind, 2 owner, 3 key, 4 revoked_at, 5 until, 6 now, 7 index member,
//       8 new version. Answers {revoked_at, until} as stored.
constexpr const char* kAddScript = R"lua(
local revoked_at, expires = ARGV[4], ARGV[5]
local held = redis.call('HMGET', KEYS[1], 'revoked_at', 'until')
if held[1] and tonumber(held[1]) > tonumber(revoked_at) then revoked_at = held[1] end
if held[2] and tonumber(held[2]) > tonumber(expires) then expires = held[2] end
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'owner', ARGV[2], 'key', ARGV[3],
           'revoked_at', revoked_at, 'until', expires)
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('ZADD', KEYS[2], 'GT', expires, ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[6])
redis.call('SET', KEYS[3], ARGV[8], 'KEEPTTL')
for _, key in ipairs({KEYS[2], KEYS[3]}) do
  redis.call('PEXPIREAT', key, expires, 'NX')
  redis.call('PEXPIREAT', key, expires, 'GT')
end
return {revoked_at, expires}
)lua";

std::string member_of(const TokenRevocation& r) {
    std::string out;
    out.reserve(r.kind.size() + r.owner.size() + r.key.size() + 2);
    out.append(r.kind).push_back('\n');
    out.append(r.owner).push_back('\n');
    out.append(r.key);
    return out;
}

std::string key_of(std::string_view member) {
    return std::string(kPrefix) + "r:" + std::string(member);
}

std::optional<UnixMs> to_ms(const redis::Reply& reply) {
    if (!reply.is_text()) return std::nullopt;
    UnixMs value = 0;
    const char* end = reply.str.data() + reply.str.size();
    auto [ptr, ec] = std::from_chars(reply.str.data(), end, value);
    if (ec != std::errc() || ptr != end) return std::nullopt;
    return value;
}

std::string new_version() {
    std::random_device random;
    return std::to_string((std::uint64_t{random()} << 32) | random());
}

std::string describe(std::error_code ec, const redis::Reply& reply) {
    if (ec) return ec.message();
    if (reply.is_error()) return reply.str;
    return "an unexpected reply";
}

// The revocations in force at `now`, read page by page through the cluster
// client (which follows redirects and retries lost connections). Loop thread.
struct Loader : std::enable_shared_from_this<Loader> {
    using Done = std::function<void(std::optional<std::vector<TokenRevocation>>, std::string)>;

    Loader(redis::Cluster& cluster, UnixMs now, Done done)
        : cluster(cluster), now(now), done(std::move(done)) {}

    redis::Cluster& cluster;
    const UnixMs now;
    Done done;
    std::vector<TokenRevocation> found;
    // ZSCAN, not pages of ZRANGEBYSCORE by offset: another broker's add prunes
    // the index's expired members meanwhile, which would shift later members
    // past an offset and skip them. A scan returns every member present from
    // its start to its end (some more than once: `seen`).
    std::string cursor = "0";
    std::unordered_set<std::string> seen;
    std::size_t waiting = 0;  // HMGETs of the page not answered yet
    std::string error;        // the page's first failure

    void page() {
        cluster.async_exec({"ZSCAN", kIndex, cursor, "COUNT", std::to_string(kPage)},
                           [self = shared_from_this()](std::error_code ec, redis::Reply reply) {
                               self->on_page(ec, std::move(reply));
                           });
    }

    void on_page(std::error_code ec, redis::Reply reply) {
        if (ec || !reply.is_array() || reply.elements.size() != 2 || !reply.elements[0].is_text() ||
            !reply.elements[1].is_array())
            return finish(describe(ec, reply));
        cursor = reply.elements[0].str;
        const bool last = cursor == "0";
        std::vector<std::string> members;
        const auto& pairs = reply.elements[1].elements;
        for (std::size_t i = 0; i + 1 < pairs.size(); i += 2) {
            // The score is `until`: expired ones are left out here (one
            // that does not parse is read, and its hash's `until` decides).
            const auto until = to_ms(pairs[i + 1]);
            if (until && *until <= now) continue;
            if (seen.insert(pairs[i].str).second) members.push_back(pairs[i].str);
        }
        if (members.empty()) return last ? finish({}) : page();
        waiting = members.size();
        for (const std::string& member : members) {
            cluster.async_exec(
                {"HMGET", key_of(member), "kind", "owner", "key", "revoked_at", "until"},
                [self = shared_from_this(), last](std::error_code ec, redis::Reply fields) {
                    self->on_revocation(ec, fields, last);
                });
        }
    }

    void on_revocation(std::error_code ec, const redis::Reply& fields, bool last) {
        if (ec || !fields.is_array() || fields.elements.size() != 5) {
            if (error.empty()) error = describe(ec, fields);
        } else if (fields.elements[0].is_text()) {  // nil: expired since the page was read
            const auto& f = fields.elements;
            auto revoked_at = to_ms(f[3]);
            auto until = to_ms(f[4]);
            if (f[1].is_text() && f[2].is_text() && revoked_at && until && *until > now)
                found.push_back({f[0].str, f[1].str, f[2].str, *revoked_at, *until});
        }
        if (--waiting > 0) return;
        if (!error.empty()) return finish(error);
        if (last) return finish({});
        page();
    }

    void finish(std::string failure) {
        if (failure.empty()) return done(std::move(found), {});
        done(std::nullopt, std::move(failure));
    }
};

void load_async(redis::Cluster& cluster, UnixMs now, Loader::Done done) {
    std::make_shared<Loader>(cluster, now, std::move(done))->page();
}

// One add on its own connection to the slot's primary: the script, then WAIT
// on that same connection (a WAIT covers its connection's writes only).
// Retried as a whole, with backoff and a fresh topology, until the deadline:
// the script is idempotent. Loop thread.
struct Adder : std::enable_shared_from_this<Adder> {
    Adder(redis::Cluster& cluster, const RedisRevocationsConfig& config,
          const TokenRevocation& revocation, UnixMs now)
        : cluster(cluster),
          config(config),
          revocation(revocation),
          script({"EVAL", kAddScript, "3", key_of(member_of(revocation)), kIndex, kVersion,
                  revocation.kind, revocation.owner, revocation.key,
                  std::to_string(revocation.revoked_at), std::to_string(revocation.until),
                  std::to_string(now), member_of(revocation), new_version()}),
          deadline(std::chrono::steady_clock::now() + config.add_timeout),
          timer(redis::io_of(cluster.loop())) {}

    redis::Cluster& cluster;
    const RedisRevocationsConfig config;
    TokenRevocation revocation;  // as stored, once it is
    const redis::Command script;
    const std::chrono::steady_clock::time_point deadline;
    boost::asio::steady_timer timer;
    std::chrono::milliseconds backoff{50};
    std::promise<std::string> answer;  // empty: stored and replicated

    void attempt() {
        const auto primary = cluster.primary_of(kSlot);
        if (!primary) return retry("no primary is known for the revocations' slot");
        // A node that stops answering fails the attempt within the add's time.
        redis::ConnectionOptions options = cluster.options().connection;
        options.reply_timeout = config.add_timeout;
        auto conn = redis::Connection::create(cluster.loop(), *primary, options);
        conn->send(script,
                   [self = shared_from_this(), conn](std::error_code ec, redis::Reply stored) {
                       if (ec || !stored.is_array() || stored.elements.size() != 2) {
                           conn->close();
                           return self->retry(describe(ec, stored));
                       }
                       auto revoked_at = to_ms(stored.elements[0]);
                       auto until = to_ms(stored.elements[1]);
                       if (!revoked_at || !until) {
                           conn->close();
                           return self->retry("the script answered no times");
                       }
                       self->revocation.revoked_at = *revoked_at;
                       self->revocation.until = *until;
                       conn->send(wait_command(self->config),
                                  [self, conn](std::error_code ec, redis::Reply wait) {
                                      conn->close();
                                      if (ec) return self->retry(describe(ec, wait));
                                      std::string shortfall = wait_shortfall(self->config, wait);
                                      if (!shortfall.empty())
                                          return self->retry(std::move(shortfall));
                                      self->publish();
                                  });
                   });
    }

    void retry(std::string error) {
        if (std::chrono::steady_clock::now() + backoff > deadline)
            return answer.set_value(std::move(error));
        logger().debug("event=revocation_add_retry error=\"{}\" backoff_ms={}", error,
                       backoff.count());
        timer.expires_after(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
        timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec) return self->answer.set_value("stopped");
            self->cluster.refresh_topology([self](std::error_code) { self->attempt(); });
        });
    }

    // Other brokers hear of it at once; one that misses the message finds
    // the version changed.
    void publish() {
        cluster.async_exec({"SPUBLISH", kChannel, encode_revocation(revocation)},
                           [](std::error_code ec, const redis::Reply& reply) {
                               if (ec || reply.is_error()) {
                                   logger().warn(
                                       "event=revocation_publish_failed error=\"{}\" "
                                       "reason=\"other brokers reload it within a second\"",
                                       describe(ec, reply));
                               }
                           });
        answer.set_value({});
    }
};

bool read_ms(const msgpack::object& o, UnixMs& out) {
    if (o.type != msgpack::type::POSITIVE_INTEGER ||
        o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<UnixMs>::max()))
        return false;
    out = static_cast<UnixMs>(o.via.u64);
    return true;
}

}  // namespace

std::string encode_revocation(const TokenRevocation& revocation) {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pack(buffer);
    pack.pack_array(5);
    pack.pack(revocation.kind);
    pack.pack(revocation.owner);
    pack.pack(revocation.key);
    pack.pack(revocation.revoked_at);
    pack.pack(revocation.until);
    return {buffer.data(), buffer.size()};
}

std::optional<TokenRevocation> decode_revocation(std::string_view payload) {
    const auto handle = unpack_array(payload, 5);
    if (!handle) return std::nullopt;
    const msgpack::object* f = handle->get().via.array.ptr;
    TokenRevocation out;
    if (!read_string(f[0], out.kind) || !read_string(f[1], out.owner) ||
        !read_string(f[2], out.key) || !read_ms(f[3], out.revoked_at) || !read_ms(f[4], out.until))
        return std::nullopt;
    return out;
}

// ---- RedisTokenRevocations ----------------------------------------------------

RedisTokenRevocations::RedisTokenRevocations(redis::Cluster& cluster, RedisRevocationsConfig config)
    : cluster_(cluster), config_(config) {}

std::vector<TokenRevocation> RedisTokenRevocations::load(UnixMs now) {
    if (cluster_.loop().in_loop_thread())
        throw std::logic_error("revocations cannot be loaded on the Redis loop thread");
    using Loaded = std::pair<std::optional<std::vector<TokenRevocation>>, std::string>;
    auto answer = std::make_shared<std::promise<Loaded>>();
    auto loaded = answer->get_future();
    cluster_.loop().post([this, now, answer] {
        load_async(cluster_, now,
                   [answer](std::optional<std::vector<TokenRevocation>> found, std::string error) {
                       answer->set_value({std::move(found), std::move(error)});
                   });
    });
    Loaded result;
    try {
        result = loaded.get();
    } catch (const std::future_error&) {
        throw StoreError("redis: the token revocations could not be read: the client stopped");
    }
    if (!result.first)
        throw StoreError("redis: the token revocations could not be read: " + result.second);
    return std::move(*result.first);
}

void RedisTokenRevocations::add(const TokenRevocation& revocation, UnixMs now) {
    if (cluster_.loop().in_loop_thread())
        throw std::logic_error("a revocation cannot be added on the Redis loop thread");
    auto adder = std::make_shared<Adder>(cluster_, config_, revocation, now);
    auto stored = adder->answer.get_future();
    // Only the loop holds it: should the loop go first, the promise breaks.
    cluster_.loop().post([adder = std::move(adder)] { adder->attempt(); });
    std::string error;
    try {
        error = stored.get();
    } catch (const std::future_error&) {
        error = "the client stopped";
    }
    if (!error.empty()) throw StoreError("redis: the token revocation was not stored: " + error);
}

// ---- RevocationFollower ---------------------------------------------------------

struct RevocationFollower::State : std::enable_shared_from_this<State> {
    State(redis::Cluster& cluster, Deliver deliver, std::chrono::milliseconds interval,
          const Clock& clock)
        : cluster(cluster),
          deliver(std::move(deliver)),
          interval(interval),
          clock(clock),
          timer(redis::io_of(cluster.loop())) {}

    redis::Cluster& cluster;
    const Deliver deliver;
    const std::chrono::milliseconds interval;
    const Clock& clock;

    // Loop thread only.
    boost::asio::steady_timer timer;
    std::unique_ptr<redis::ShardedPubSub> pubsub;
    std::optional<std::string> version;  // as of the last full load ("" none); unset: load again
    bool reloading = false;
    bool again = false;  // a reload was asked for while one ran
    bool stopped = false;

    void start() {
        std::weak_ptr<State> weak = weak_from_this();
        pubsub = std::make_unique<redis::ShardedPubSub>(
            cluster,
            [weak](const std::string&, const std::string& payload) {
                if (auto self = weak.lock()) self->on_message(payload);
            },
            [weak](const std::string&) {
                if (auto self = weak.lock()) self->reload();
            });
        pubsub->subscribe(kChannel);
        schedule_check();
    }

    void on_message(const std::string& payload) {
        if (stopped) return;
        auto revocation = decode_revocation(payload);
        if (!revocation) {
            logger().warn("event=revocation_message_dropped bytes={} reason=\"not a revocation\"",
                          payload.size());
            return;
        }
        deliver({std::move(*revocation)});
    }

    void schedule_check() {
        timer.expires_after(interval);
        timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec || self->stopped) return;
            self->check();
            self->schedule_check();
        });
    }

    // The version, cheaply: a full load only when it changed.
    void check() {
        if (reloading) return;
        if (!version) return reload();
        cluster.async_exec({"GET", kVersion},
                           [self = shared_from_this()](std::error_code ec, redis::Reply reply) {
                               if (self->stopped || ec || reply.is_error()) return;
                               if (!self->version || reply.str != *self->version) self->reload();
                           });
    }

    // The version first, then the set: a change in between shows as a newer
    // version at the next check.
    void reload() {
        if (stopped) return;
        if (reloading) {
            again = true;
            return;
        }
        reloading = true;
        cluster.async_exec(
            {"GET", kVersion}, [self = shared_from_this()](std::error_code ec, redis::Reply got) {
                if (ec || got.is_error()) return self->reloaded(std::nullopt, describe(ec, got));
                load_async(self->cluster, self->clock.unix_ms(),
                           [self, seen = got.str](std::optional<std::vector<TokenRevocation>> found,
                                                  std::string error) {
                               if (found) self->version = seen;
                               self->reloaded(std::move(found), std::move(error));
                           });
            });
    }

    void reloaded(std::optional<std::vector<TokenRevocation>> found, const std::string& error) {
        reloading = false;
        if (stopped) return;
        if (found) {
            deliver(std::move(*found));
        } else {
            version.reset();  // the next check loads again
            logger().warn("event=revocation_reload_failed error=\"{}\" next_attempt_ms={}", error,
                          interval.count());
        }
        if (std::exchange(again, false)) reload();
    }

    void stop() {
        stopped = true;
        timer.cancel();
        pubsub.reset();  // no message or confirmation after this
    }
};

RevocationFollower::RevocationFollower(redis::Cluster& cluster, Deliver deliver,
                                       std::chrono::milliseconds reload_interval,
                                       const Clock& clock)
    : state_(std::make_shared<State>(cluster, std::move(deliver), reload_interval, clock)) {
    cluster.loop().post([state = state_] { state->start(); });
}

RevocationFollower::~RevocationFollower() {
    stop();
}

void RevocationFollower::stop() {
    std::promise<void> done;
    auto stopped = done.get_future();
    state_->cluster.loop().post([state = state_, &done] {
        state->stop();
        done.set_value();
    });
    stopped.wait();
}

}  // namespace jobcast::cluster
