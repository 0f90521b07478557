// The Redis stream log: keys and ids, the durable write (a pipeline on the
// slot's primary ending in a fence write and WAIT), the confirmed watermark,
// and the change notices between brokers.
#include "cluster/redis_stream_log.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "cluster/retry.hpp"
#include "persistence/store.hpp"
#include "redis/cluster.hpp"
#include "redis/connection.hpp"
#include "redis/error.hpp"
#include "redis/loop.hpp"
#include "redis/pubsub.hpp"

namespace jobcast::cluster {

namespace {

using redis::Command;
using redis::Endpoint;
using redis::Reply;
using Replies = std::vector<Reply>;
using store::StoreError;

// A stream's id is its partition's counter times this, plus the partition
// (jc_stream_create computes it the same way).
constexpr std::int64_t kIdStride = kMaxPartitions;
constexpr std::size_t kReadPage = 1000;
// Appends decided again because another write changed the stream first.
constexpr int kMaxDecisions = 64;
// jc_stream_create's arguments before the messages, with FCALL, its name,
// the key count and the key.
constexpr std::size_t kCreateArgs = 23;

template <class Int>
Int to_int(std::string_view text) {
    Int value{};
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

std::string text(const Reply& reply) {
    if (reply.is_integer()) return std::to_string(reply.integer);
    return reply.is_text() ? reply.str : std::string();
}

std::string random_token() {
    std::random_device random;
    std::uniform_int_distribution<std::uint64_t> bits;
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(bits(random)));
    return out;
}

// A stream as stored, unconfirmed parts included (jc_stream_get's answer).
struct Stored {
    store::StreamInfo info;  // last_seq and closed as stored
    domain::StreamRecord record;
    std::optional<domain::ProducerState> producer;
    std::string version;
    std::uint64_t cseq = 0;
    bool cclosed = false;
    bool confirmed = false;  // its creation was confirmed
    // A fork: its source's id (0: not a fork), the fork as asked (offset
    // nullopt: none given) and how many forks deep it is.
    std::int64_t fork_of = 0;
    store::ForkFrom fork;
    std::uint32_t fork_depth = 0;

    // Only what a WAIT has covered.
    store::StreamInfo visible() const {
        store::StreamInfo out = info;
        out.last_seq = cseq;
        out.closed = cclosed;
        return out;
    }
    bool settled() const { return confirmed && cseq == info.last_seq && cclosed == info.closed; }
};

std::optional<Stored> parse_stored(const Reply& reply) {
    if (!reply.is_array() || reply.elements.size() < 3) return std::nullopt;
    Stored s;
    s.info.id = to_int<std::int64_t>(text(reply.elements[0]));
    const auto& flat = reply.elements[1].elements;
    for (std::size_t i = 0; i + 1 < flat.size(); i += 2) {
        const std::string& name = flat[i].str;
        const std::string& value = flat[i + 1].str;
        if (name == "owner")
            s.info.owner = value;
        else if (name == "name")
            s.info.name = value;
        else if (name == "ct")
            s.info.content_type = value;
        else if (name == "ttl")
            s.info.ttl_seconds = to_int<std::int64_t>(value);
        else if (name == "ea")
            s.info.expires_at = value;
        else if (name == "eam")
            s.info.expires_at_ms = to_int<std::int64_t>(value);
        else if (name == "closed")
            s.info.closed = value == "1";
        else if (name == "cb")
            s.record.closed_by = value;
        else if (name == "ss")
            s.record.stream_seq = value;
        else if (name == "seq")
            s.info.last_seq = to_int<std::uint64_t>(value);
        else if (name == "cseq")
            s.cseq = to_int<std::uint64_t>(value);
        else if (name == "cclosed")
            s.cclosed = value == "1";
        else if (name == "c")
            s.confirmed = value == "1";
        else if (name == "created")
            s.info.created_at_ms = to_int<std::int64_t>(value);
        else if (name == "accessed")
            s.record.accessed_at_ms = to_int<std::int64_t>(value);
        else if (name == "ver")
            s.version = value;
        else if (name == "fo")
            s.fork_of = to_int<std::int64_t>(value);
        else if (name == "ff")
            s.fork.source = value;
        else if (name == "fof" && value != "-1")
            s.fork.offset = to_int<std::uint64_t>(value);
        else if (name == "fso")
            s.fork.sub_offset = to_int<std::uint64_t>(value);
        else if (name == "fd")
            s.fork_depth = to_int<std::uint32_t>(value);
        else if (name == "del")
            s.info.deleted = value == "1";
    }
    s.record.content_type = domain::normalize_content_type(s.info.content_type);
    s.record.closed = s.info.closed;
    s.record.ttl_seconds = s.info.ttl_seconds;
    s.record.expires_at_ms = s.info.expires_at_ms;
    const std::string producer = text(reply.elements[2]);
    if (auto space = producer.find(' '); space != std::string::npos) {
        s.producer = domain::ProducerState{to_int<std::uint64_t>(producer.substr(0, space)),
                                           to_int<std::uint64_t>(producer.substr(space + 1))};
    }
    return s;
}

}  // namespace

struct RedisStreamLog::Impl : std::enable_shared_from_this<Impl> {
    Impl(redis::Cluster& cluster, const Partitions& partitions, RedisStreamLogConfig config)
        : cluster(cluster), partitions(partitions), config(config) {}

    redis::Cluster& cluster;
    const Partitions& partitions;
    const RedisStreamLogConfig config;
    // Names this log's op ids and its own change notices.
    const std::string token = random_token();
    std::atomic<std::uint64_t> next_op{0};

    // The loop thread: this log's connections, one per primary, for the
    // pipelines that end in WAIT (a WAIT covers its own connection's writes).
    std::map<Endpoint, std::shared_ptr<redis::Connection>> connections;
    bool closed = false;

    struct Watch {
        int readers = 0;
        std::uint64_t after = 0;  // the lowest seq its readers hold
        bool subscribed = false;  // the channel was confirmed
    };
    std::mutex watch_mutex;
    std::unordered_map<std::int64_t, Watch> watches;
    std::unordered_map<std::string, std::int64_t> watched_channels;
    std::unique_ptr<redis::ShardedPubSub> pubsub;

    std::mutex listener_mutex;  // held while the listener runs
    ChangeListener listener;

    // ---- keys ------------------------------------------------------------------

    // All of an owner's streams share one partition: a fork is always of the
    // same owner's stream, so it shares its source's hash slot, and creating
    // it, reading along its chain of sources and a delete that frees them up
    // the chain are each one Function call there, atomic, with nothing copied
    // (the other way, copying the source's messages into a fork's own slot,
    // would still have to count forks on the source's slot: two calls, not
    // one). The cost: one owner's streams are served by one shard.
    std::uint32_t partition_of(const std::string& owner) const { return partitions.of(owner); }
    static std::uint32_t partition_of(std::int64_t id) {
        return static_cast<std::uint32_t>(id % kIdStride);
    }
    std::string name_key(std::uint32_t p, const std::string& owner, const std::string& name) const {
        return partitions.prefix(p) + "sn:" + std::to_string(owner.size()) + ":" + owner + name;
    }
    std::string hash_key(std::int64_t id) const {
        return partitions.prefix(partition_of(id)) + "s:" + std::to_string(id);
    }
    std::string messages_key(std::int64_t id) const {
        return partitions.prefix(partition_of(id)) + "sm:" + std::to_string(id);
    }
    std::string channel(std::int64_t id) const {
        return partitions.prefix(partition_of(id)) + "sch:" + std::to_string(id);
    }
    std::string op_id() { return token + ":" + std::to_string(next_op.fetch_add(1)); }

    // ---- calls -----------------------------------------------------------------

    Reply exec(Command command) {
        Reply reply;
        try {
            reply = cluster.exec(std::move(command));
        } catch (const std::system_error& error) {
            throw StoreError(std::string("redis: ") + error.what());
        }
        if (reply.is_error()) throw StoreError("redis: " + reply.str);
        return reply;
    }

    std::optional<Stored> stored(std::uint32_t p, const std::string& key,
                                 const std::string& producer = {}) {
        return parse_stored(
            exec({"FCALL_RO", "jc_stream_get", "1", key, partitions.prefix(p), producer}));
    }

    // Runs `start` on the loop thread and waits for what it hands back.
    template <class T>
    T on_loop(std::function<void(std::function<void(T)>)> start) {
        auto promise = std::make_shared<std::promise<T>>();
        auto future = promise->get_future();
        cluster.loop().post([promise, start = std::move(start)] {
            start([promise](T value) { promise->set_value(std::move(value)); });
        });
        return future.get();
    }

    struct Outcome {
        std::error_code error;
        Endpoint node;
        Replies replies;
        bool still_primary = false;  // the node owned the slot when the replies were in
    };

    // Loop thread: `commands` pipelined on this log's connection to `node`.
    void send_at(const Endpoint& node, std::vector<Command> commands,
                 std::function<void(std::error_code, Replies)> done) {
        if (closed) return done(redis::Errc::closed, {});
        auto& conn = connections[node];
        if (!conn || !conn->is_open())
            conn = redis::Connection::create(cluster.loop(), node, cluster.options().connection);
        struct Pending {
            Replies replies;
            std::size_t left;
            bool failed = false;
            std::function<void(std::error_code, Replies)> done;
        };
        auto pending = std::make_shared<Pending>();
        pending->replies.resize(commands.size());
        pending->left = commands.size();
        pending->done = std::move(done);
        for (std::size_t i = 0; i < commands.size(); ++i) {
            conn->send(std::move(commands[i]), [pending, i](std::error_code ec, Reply reply) {
                if (pending->failed) return;
                if (ec) {
                    pending->failed = true;
                    return pending->done(ec, {});
                }
                pending->replies[i] = std::move(reply);
                if (--pending->left == 0) pending->done({}, std::move(pending->replies));
            });
        }
    }

    // `commands` on the primary of `slot`, then a fence write and WAIT on the
    // same connection: the WAIT covers the fence, so every earlier write of
    // that primary (the commands', and any unconfirmed one they looked at).
    // Answers the node and the commands' replies once the replicas have it
    // all and the node still owns the slot; until `deadline` it tries again
    // (the slot moved, the node refused or could not replicate), then throws.
    std::pair<Endpoint, Replies> durable(std::uint32_t p, std::vector<Command> commands,
                                         std::chrono::steady_clock::time_point deadline) {
        const std::uint16_t slot = partitions.slot(p);
        const std::size_t count = commands.size();
        commands.push_back({"SET", partitions.prefix(p) + "fence", token});
        commands.push_back(wait_command(config));
        std::chrono::milliseconds backoff{10};
        for (;;) {
            Outcome outcome = on_loop<Outcome>([this, slot, commands](auto done) {
                auto node = cluster.primary_of(slot);
                if (!node) return done(Outcome{redis::Errc::no_topology, {}, {}, false});
                send_at(*node, commands,
                        [this, slot, node = *node, done](std::error_code ec, Replies replies) {
                            const auto owner = cluster.primary_of(slot);
                            done(Outcome{ec, node, std::move(replies), owner && *owner == node});
                        });
            });
            const std::string why = refusal(outcome);
            if (why.empty()) {
                outcome.replies.resize(count);
                return {outcome.node, std::move(outcome.replies)};
            }
            if (std::chrono::steady_clock::now() + backoff > deadline)
                throw StoreError("the Redis cluster did not confirm a stream write: " + why);
            on_loop<bool>([this](auto done) {
                cluster.refresh_topology([done](std::error_code) { done(true); });
            });
            std::this_thread::sleep_for(backoff);
            backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(1));
        }
    }

    // Why a durable pipeline's outcome does not count (empty: it does).
    std::string refusal(const Outcome& outcome) const {
        if (outcome.error) return outcome.error.message();
        for (const Reply& reply : outcome.replies)
            if (reply.is_error() && retry_kind(reply) != Retry::none) return reply.str;
        if (auto shortfall = wait_shortfall(config, outcome.replies.back()); !shortfall.empty())
            return shortfall;
        if (!outcome.still_primary)
            return "the slot moved while its writes waited for the replicas";
        return {};
    }

    std::chrono::steady_clock::time_point write_deadline() const {
        return std::chrono::steady_clock::now() + config.write_timeout;
    }

    // After a WAIT on `node` covered the stream up to `seq` and `closed`:
    // readers may see that much. Pinned to the node the WAIT ran on; a node
    // demoted meanwhile refuses, and the next reader confirms instead.
    void confirm(const Endpoint& node, std::int64_t id, std::uint64_t seq, bool closed) {
        on_loop<bool>([this, node, key = hash_key(id), seq, closed](auto done) {
            send_at(
                node,
                {{"FCALL", "jc_stream_confirm", "1", key, std::to_string(seq), closed ? "1" : "0"}},
                [done](std::error_code, Replies) { done(true); });
        });
    }

    // The stream of a name as readers may see it: what it holds is confirmed
    // first when part of it is not yet (WAIT on its primary), within one
    // WAIT's time; what stays unconfirmed is not shown.
    std::optional<Stored> settled(std::uint32_t p, const std::string& key, Stored found,
                                  std::chrono::steady_clock::time_point deadline) {
        if (found.settled()) return found;
        try {
            auto [node, replies] = durable(
                p, {{"FCALL_RO", "jc_stream_get", "1", key, partitions.prefix(p), ""}}, deadline);
            auto now = parse_stored(replies[0]);
            if (!now) return std::nullopt;
            confirm(node, now->info.id, now->info.last_seq, now->info.closed);
            now->cseq = now->info.last_seq;
            now->cclosed = now->info.closed;
            now->confirmed = true;
            return now;
        } catch (const StoreError&) {
            if (!found.confirmed) return std::nullopt;
            return found;
        }
    }

    // Messages of stream `id` with seq > after, along its chain of sources,
    // until their data reaches `max_bytes` (at least one when there is one).
    std::vector<store::StreamMessage> read(std::int64_t id, std::uint64_t after,
                                           std::size_t max_bytes) {
        std::vector<store::StreamMessage> messages;
        std::size_t bytes = 0;
        const std::uint32_t p = partition_of(id);
        while (bytes < max_bytes) {
            Reply reply =
                exec({"FCALL_RO", "jc_stream_read", "1", hash_key(id), std::to_string(after),
                      std::to_string(kReadPage), partitions.prefix(p), std::to_string(id)});
            if (!reply.is_array() || reply.elements.size() < 2) break;
            const auto& entries = reply.elements[1].elements;
            for (const Reply& entry : entries) {
                if (entry.elements.size() < 2 || entry.elements[1].elements.size() < 2) continue;
                store::StreamMessage& message = messages.emplace_back();
                message.seq = to_int<std::uint64_t>(entry.elements[0].str);
                message.data = entry.elements[1].elements[1].str;
                after = message.seq;
                bytes += message.data.size();
                if (bytes >= max_bytes) break;
            }
            if (entries.size() < kReadPage) break;
        }
        return messages;
    }

    // Where a fork starts, as resolve_fork found it on its source.
    struct Fork {
        std::int64_t source = 0;  // 0: not a fork
        std::uint32_t depth = 0;
        store::ForkPoint point;
    };

    // Resolves `op`'s fork against its source as readers see it (confirmed)
    // into the fork point and the inherited settings, as SQLite's
    // resolve_fork does; a status other than `created` refuses it.
    // jc_stream_create checks that the source is still that stream.
    store::StreamWrite resolve_fork(std::uint32_t p, store::CreateStream& op, Fork& fork,
                                    std::chrono::steady_clock::time_point deadline) {
        const store::ForkFrom& asked = *op.fork;
        const std::string key = name_key(p, op.owner, asked.source);
        auto found = stored(p, key);
        if (!found || (!found->info.deleted && domain::stream_expired(found->record, op.now_ms)))
            return store::StreamWrite::source_missing;
        if (found->info.deleted) return store::StreamWrite::source_gone;
        if (domain::fork_too_deep(found->fork_depth)) return store::StreamWrite::fork_too_deep;
        auto source = settled(p, key, std::move(*found), deadline);
        if (!source) return store::StreamWrite::source_missing;
        const auto status = store::resolve_fork_point(
            op, source->info, source->record.content_type, source->cseq,
            [&](std::uint64_t after) { return read(source->info.id, after, 1); }, fork.point);
        if (status != store::StreamWrite::created) return status;
        fork.source = source->info.id;
        fork.depth = source->fork_depth + 1;
        return store::StreamWrite::created;
    }

    // Tells other brokers' readers that stream `id` moved.
    void announce(std::int64_t id) {
        cluster.async_exec({"SPUBLISH", channel(id), token}, [](std::error_code, Reply) {});
    }

    // ---- change notices --------------------------------------------------------

    void tell(std::int64_t id) {
        std::lock_guard lock(listener_mutex);
        if (listener) listener(id);
    }

    // Tells the listener if stream `id` is past `after`, closed or gone.
    void look(std::int64_t id, std::uint64_t after) {
        std::weak_ptr<Impl> weak = weak_from_this();
        cluster.async_exec({"HMGET", hash_key(id), "cseq", "cclosed"},
                           [weak, id, after](std::error_code ec, Reply reply) {
                               auto self = weak.lock();
                               if (!self) return;
                               const bool moved =
                                   ec || !reply.is_array() || reply.elements.size() < 2 ||
                                   reply.elements[0].is_nil() ||
                                   to_int<std::uint64_t>(reply.elements[0].str) > after ||
                                   reply.elements[1].str == "1";
                               if (moved) self->tell(id);
                           });
    }

    void on_message(const std::string& channel, const std::string& payload) {
        if (payload == token) return;  // this broker's own write: its readers were told
        std::int64_t id = 0;
        {
            std::lock_guard lock(watch_mutex);
            auto it = watched_channels.find(channel);
            if (it == watched_channels.end()) return;
            id = it->second;
        }
        tell(id);
    }

    void on_subscribed(const std::string& channel) {
        std::int64_t id = 0;
        std::uint64_t after = 0;
        {
            std::lock_guard lock(watch_mutex);
            auto it = watched_channels.find(channel);
            if (it == watched_channels.end()) return;
            id = it->second;
            Watch& entry = watches[id];
            entry.subscribed = true;
            after = entry.after;
        }
        look(id, after);
    }

    void shutdown() {
        closed = true;
        for (auto& [node, conn] : connections)
            if (conn) conn->close();
        connections.clear();
    }
};

RedisStreamLog::RedisStreamLog(redis::Cluster& cluster, const Partitions& partitions,
                               RedisStreamLogConfig config)
    : impl_(std::make_shared<Impl>(cluster, partitions, config)) {
    if (config.retention.count() <= 0)
        throw StoreError("redis stream log: the retention must be > 0");
    std::weak_ptr<Impl> weak = impl_;
    impl_->pubsub = std::make_unique<redis::ShardedPubSub>(
        cluster,
        [weak](const std::string& channel, const std::string& payload) {
            if (auto self = weak.lock()) self->on_message(channel, payload);
        },
        [weak](const std::string& channel) {
            if (auto self = weak.lock()) self->on_subscribed(channel);
        });
}

RedisStreamLog::~RedisStreamLog() {
    impl_->pubsub.reset();
    std::promise<void> done;
    impl_->cluster.loop().post([impl = impl_, &done] {
        impl->shutdown();
        done.set_value();
    });
    done.get_future().wait();
}

store::StreamWriteResult RedisStreamLog::create(store::CreateStream op) {
    Impl& m = *impl_;
    const std::uint32_t p = m.partition_of(op.owner);
    const std::string key = m.name_key(p, op.owner, op.name);
    const std::string op_id = m.op_id();
    const auto deadline = m.write_deadline();
    store::StreamWriteResult result;
    for (int decision = 0; decision < kMaxDecisions; ++decision) {
        auto found = m.stored(p, key);
        // Expired, the name is free; deleted and kept for its forks, it is
        // not (jc_stream_create answers `conflict`, unless its forks expired).
        if (found && !found->info.deleted && !domain::stream_expired(found->record, op.now_ms)) {
            result.status = store::asks_again(found->info, found->record.content_type,
                                              found->fork_of != 0 ? &found->fork : nullptr, op)
                                ? store::StreamWrite::exists
                                : store::StreamWrite::conflict;
            auto shown = m.settled(p, key, *found, deadline);
            if (!shown) throw StoreError("the Redis cluster did not confirm the stream's creation");
            result.stream = shown->visible();
            return result;
        }
        // Copied: a "stale" answer decides again (a fork against its source anew).
        store::CreateStream made = op;
        Impl::Fork fork;
        if (made.fork) {
            result.status = m.resolve_fork(p, made, fork, deadline);
            if (result.status != store::StreamWrite::created) return result;
        }
        Command command = {
            "FCALL",
            "jc_stream_create",
            "1",
            key,
            m.partitions.prefix(p),
            std::to_string(p),
            found ? std::to_string(found->info.id) : "0",
            op_id,
            std::to_string(made.now_ms),
            std::to_string(m.config.retention.count()),
            made.content_type,
            std::to_string(made.ttl_seconds),
            made.expires_at,
            std::to_string(made.expires_at_ms),
            made.closed ? "1" : "0",
            made.owner,
            made.name,
            std::to_string(fork.source),
            std::to_string(fork.point.at),
            made.fork ? made.fork->source : "",
            made.fork && made.fork->offset ? std::to_string(*made.fork->offset) : "-1",
            made.fork ? std::to_string(made.fork->sub_offset) : "0",
            std::to_string(fork.depth)};
        if (fork.point.partial) command.push_back(std::move(*fork.point.partial));
        for (std::string& message : made.messages)
            command.push_back(std::move(message));
        const std::uint64_t count = command.size() - kCreateArgs;
        auto [node, replies] = m.durable(p, {std::move(command)}, deadline);
        const Reply& reply = replies[0];
        if (reply.is_error()) throw StoreError("redis: " + reply.str);
        if (!reply.is_array() || reply.elements.empty()) throw StoreError("redis: bad answer");
        const std::string status = text(reply.elements[0]);
        if (status == "stale") continue;  // the name or the source changed hands: again
        if (status == "conflict") {       // expired or deleted, and kept for its forks
            result.status = store::StreamWrite::conflict;
            return result;
        }
        if (status == "source_gone") {
            result.status = store::StreamWrite::source_gone;
            return result;
        }
        store::StreamInfo info;
        info.id = to_int<std::int64_t>(text(reply.elements.at(1)));
        info.name = made.name;
        info.owner = made.owner;
        info.content_type = made.content_type;
        info.ttl_seconds = made.ttl_seconds;
        info.expires_at = made.expires_at;
        info.expires_at_ms = made.expires_at_ms;
        info.closed = made.closed;
        info.last_seq = fork.point.at + count;
        info.created_at_ms = made.now_ms;
        m.confirm(node, info.id, info.last_seq, made.closed);
        result.status = store::StreamWrite::created;
        result.stream = std::move(info);
        return result;
    }
    throw StoreError("stream create: the name kept changing hands");
}

store::StreamWriteResult RedisStreamLog::append(store::AppendToStream op) {
    Impl& m = *impl_;
    const std::uint32_t p = m.partition_of(op.owner);
    const std::string key = m.name_key(p, op.owner, op.name);
    const std::string op_id = m.op_id();
    const auto deadline = m.write_deadline();
    const auto& request = op.request;
    store::StreamWriteResult result;
    for (int decision = 0; decision < kMaxDecisions; ++decision) {
        auto found = m.stored(p, key, request.producer ? request.producer->id : "");
        if (found && found->info.deleted) {
            result.status = store::StreamWrite::gone;
            return result;
        }
        if (!found || domain::stream_expired(found->record, op.now_ms)) {
            result.status = store::StreamWrite::not_found;
            return result;
        }
        result.decision = domain::decide_append(found->record, found->producer, request);
        const bool taken = result.decision.verdict == domain::AppendVerdict::append;
        const auto& next = result.decision.producer_next;
        const std::int64_t id = found->info.id;
        Command command = {"FCALL",
                           "jc_stream_append",
                           "1",
                           m.hash_key(id),
                           m.partitions.prefix(p),
                           std::to_string(id),
                           found->version,
                           op_id,
                           std::to_string(op.now_ms),
                           std::to_string(m.config.retention.count()),
                           taken ? "1" : "0",
                           request.close ? "1" : "0",
                           request.producer ? domain::producer_tuple(*request.producer) : "",
                           request.stream_seq.value_or(""),
                           next ? request.producer->id : "",
                           next ? std::to_string(next->epoch) : "",
                           next ? std::to_string(next->seq) : ""};
        if (taken) {
            for (const std::string& message : op.messages)
                command.push_back(message);
        }
        auto [node, replies] = m.durable(p, {std::move(command)}, deadline);
        const Reply& reply = replies[0];
        if (reply.is_error()) throw StoreError("redis: " + reply.str);
        if (!reply.is_array() || reply.elements.empty()) throw StoreError("redis: bad answer");
        const std::string status = text(reply.elements[0]);
        // Changed since it was decided, or deleted meanwhile: decide again.
        if (status == "stale" || status == "gone") continue;
        store::StreamInfo info = found->info;
        info.last_seq = to_int<std::uint64_t>(text(reply.elements.at(1)));
        info.closed = text(reply.elements.at(2)) == "1";
        m.confirm(node, id, info.last_seq, info.closed);
        if (taken) m.announce(id);
        result.status = store::StreamWrite::decided;
        result.stream = std::move(info);
        return result;
    }
    throw StoreError("stream append: other writes kept changing the stream first");
}

// The op id makes the call safe to send again (durable() does after a lost
// connection or a refused WAIT): a re-sent call that finds its own earlier
// delete answers `removed` again, and the readers are told.
store::StreamWrite RedisStreamLog::remove(const std::string& name, const std::string& owner,
                                          std::int64_t now_ms) {
    Impl& m = *impl_;
    const std::uint32_t p = m.partition_of(owner);
    const std::string key = m.name_key(p, owner, name);
    auto found = m.stored(p, key);
    if (!found) return store::StreamWrite::not_found;
    if (found->info.deleted) return store::StreamWrite::gone;
    if (domain::stream_expired(found->record, now_ms)) return store::StreamWrite::not_found;
    auto [node, replies] =
        m.durable(p,
                  {{"FCALL", "jc_stream_remove", "1", key, m.partitions.prefix(p), m.op_id(),
                    std::to_string(m.config.write_timeout.count())}},
                  m.write_deadline());
    const Reply& reply = replies[0];
    if (reply.is_error()) throw StoreError("redis: " + reply.str);
    if (!reply.is_array() || reply.elements.empty()) throw StoreError("redis: bad answer");
    const std::string status = text(reply.elements[0]);
    if (status == "none") return store::StreamWrite::not_found;
    if (status == "gone") return store::StreamWrite::gone;
    m.announce(to_int<std::int64_t>(text(reply.elements.at(1))));
    return store::StreamWrite::removed;
}

// Not waited for: a read's keep-alive a failover loses only shortens the
// stream's life by what passed since the one before.
void RedisStreamLog::touch(std::int64_t id, std::int64_t now_ms) {
    Impl& m = *impl_;
    m.exec({"FCALL", "jc_stream_touch", "1", m.hash_key(id),
            m.partitions.prefix(Impl::partition_of(id)), std::to_string(id), std::to_string(now_ms),
            std::to_string(m.config.retention.count())});
}

std::optional<store::StreamInfo> RedisStreamLog::get(const std::string& name,
                                                     const std::string& owner,
                                                     std::int64_t now_ms) {
    Impl& m = *impl_;
    const std::uint32_t p = m.partition_of(owner);
    const std::string key = m.name_key(p, owner, name);
    auto found = m.stored(p, key);
    if (!found || (!found->info.deleted && domain::stream_expired(found->record, now_ms)))
        return std::nullopt;
    auto shown = m.settled(
        p, key, std::move(*found),
        std::chrono::steady_clock::now() + m.config.wait_timeout + std::chrono::milliseconds(100));
    if (!shown) return std::nullopt;
    return shown->visible();
}

std::vector<store::StreamMessage> RedisStreamLog::read(std::int64_t id, std::uint64_t after,
                                                       std::size_t max_bytes) {
    return impl_->read(id, after, max_bytes);
}

std::size_t RedisStreamLog::expire(std::int64_t) {
    return 0;  // every key of an expired stream expires in Redis itself
}

void RedisStreamLog::listen(ChangeListener listener) {
    std::lock_guard lock(impl_->listener_mutex);
    impl_->listener = std::move(listener);
}

void RedisStreamLog::watch(std::int64_t id, std::uint64_t after) {
    Impl& m = *impl_;
    const std::string channel = m.channel(id);
    bool fresh = false;
    bool look_now = false;
    {
        std::lock_guard lock(m.watch_mutex);
        Impl::Watch& entry = m.watches[id];
        fresh = entry.readers++ == 0;
        entry.after = fresh ? after : std::min(entry.after, after);
        look_now = entry.subscribed;
        if (fresh) {
            // Posted in lock order, so a subscribe never overtakes an unsubscribe.
            m.watched_channels[channel] = id;
            m.pubsub->subscribe(channel);
        }
    }
    // A new channel is looked at once the server confirms it.
    if (look_now) m.look(id, after);
}

void RedisStreamLog::unwatch(std::int64_t id) {
    Impl& m = *impl_;
    const std::string channel = m.channel(id);
    {
        std::lock_guard lock(m.watch_mutex);
        auto it = m.watches.find(id);
        if (it == m.watches.end() || --it->second.readers > 0) return;
        m.watches.erase(it);
        m.watched_channels.erase(channel);
        m.pubsub->unsubscribe(channel);
    }
}

}  // namespace jobcast::cluster
