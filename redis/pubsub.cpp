#include "redis/pubsub.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <future>
#include <map>
#include <optional>
#include <utility>

#include "redis/cluster.hpp"
#include "redis/loop_impl.hpp"
#include "redis/slot.hpp"

namespace jobcast::redis {

struct ShardedPubSub::Impl : std::enable_shared_from_this<Impl> {
    struct Channel {
        std::uint16_t slot;
        std::optional<Endpoint> node;  // where SSUBSCRIBE was sent
        bool confirmed = false;
    };

    Impl(Cluster& cluster, MessageHandler on_message, SubscribedHandler on_subscribed)
        : cluster(cluster),
          on_message(std::move(on_message)),
          on_subscribed(std::move(on_subscribed)),
          resync_timer(io_of(cluster.loop())),
          owner_timer(io_of(cluster.loop())) {}

    // How often the channels' owners are compared with the slot map.
    static constexpr std::chrono::seconds kOwnerCheck{1};

    Cluster& cluster;
    MessageHandler on_message;
    SubscribedHandler on_subscribed;
    std::map<std::string, Channel> channels;
    std::map<Endpoint, std::shared_ptr<Connection>> connections;
    // SUNSUBSCRIBEs sent and not yet answered, per node and channel: their
    // answers look like the server's own unsubscribe (a slot moved), and a
    // channel subscribed again meanwhile must not take them as one.
    std::map<std::pair<Endpoint, std::string>, int> unsubscribing;
    asio::steady_timer resync_timer;
    asio::steady_timer owner_timer;
    bool resync_scheduled = false;
    std::optional<Endpoint> resync_ask_first;
    int failed_resyncs = 0;
    bool closed = false;

    std::shared_ptr<Connection> connection(const Endpoint& node) {
        auto& slot = connections[node];
        if (!slot || !slot->is_open()) {
            std::weak_ptr<Impl> weak = weak_from_this();
            slot = Connection::create(cluster.loop(), node, cluster.options().connection,
                                      [weak, node](Reply reply) {
                                          if (auto self = weak.lock()) self->pushed(node, reply);
                                      });
            slot->on_close([weak, node, raw = slot.get()](std::error_code) {
                if (auto self = weak.lock()) self->lost(node, raw);
            });
        }
        return slot;
    }

    void subscribe(const std::string& name) {
        if (closed || channels.contains(name)) return;
        place(channels.emplace(name, Channel{key_slot(name), std::nullopt, false}).first);
    }

    void unsubscribe(const std::string& name) {
        auto it = channels.find(name);
        if (it == channels.end()) return;
        if (it->second.node) send_unsubscribe(*it->second.node, name);
        channels.erase(it);
    }

    void send_unsubscribe(const Endpoint& node, const std::string& name) {
        auto conn = connections.find(node);
        if (conn == connections.end()) return;
        conn->second->send({"SUNSUBSCRIBE", name}, nullptr);
        ++unsubscribing[{node, name}];
    }

    void forget_unsubscribes(const Endpoint& node) {
        std::erase_if(unsubscribing, [&](const auto& entry) { return entry.first.first == node; });
    }

    // Whether a `sunsubscribe` from `node` answers one this client sent.
    bool asked_unsubscribe(const Endpoint& node, const std::string& name) {
        auto it = unsubscribing.find({node, name});
        if (it == unsubscribing.end()) return false;
        if (--it->second == 0) unsubscribing.erase(it);
        return true;
    }

    // Sends SSUBSCRIBE to the channel's owner, if the slot map knows it.
    void place(std::map<std::string, Channel>::iterator it) {
        auto owner = cluster.primary_of(it->second.slot);
        it->second.confirmed = false;
        if (!owner) {
            it->second.node.reset();
            return schedule_resync();
        }
        it->second.node = owner;
        connection(*owner)->send({"SSUBSCRIBE", it->first}, nullptr);
    }

    void pushed(const Endpoint& node, const Reply& reply) {
        if (closed) return;
        // MOVED, CLUSTERDOWN: the map is stale; this node knows better. The
        // error may answer a SUNSUBSCRIBE (a node that lost the slot answers
        // nothing else), so none of this node's is awaited any more: at worst
        // a late answer to one passes for the server's own and costs a resync.
        if (reply.is_error()) {
            forget_unsubscribes(node);
            return schedule_resync(node);
        }
        if (!reply.is_array() || reply.elements.size() < 3 || !reply.elements[0].is_text() ||
            !reply.elements[1].is_text())
            return;
        const std::string& kind = reply.elements[0].str;
        if (kind == "sunsubscribe" && asked_unsubscribe(node, reply.elements[1].str)) return;
        auto it = channels.find(reply.elements[1].str);
        if (it == channels.end() || it->second.node != node) return;
        if (kind == "smessage" && reply.elements[2].is_text()) {
            on_message(it->first, reply.elements[2].str);
        } else if (kind == "ssubscribe") {
            it->second.confirmed = true;
            failed_resyncs = 0;
            if (on_subscribed) on_subscribed(it->first);
        } else if (kind == "sunsubscribe") {
            // Not asked for: the slot moved or this node was demoted, and it
            // knows the new owner while other nodes may not have heard yet.
            it->second.node.reset();
            it->second.confirmed = false;
            schedule_resync(node);
        }
    }

    void lost(const Endpoint& node, const Connection* raw) {
        auto conn = connections.find(node);
        if (conn == connections.end() || conn->second.get() != raw) return;
        connections.erase(conn);
        forget_unsubscribes(node);
        if (closed) return;
        for (auto& [name, channel] : channels) {
            if (channel.node == node) {
                channel.node.reset();
                channel.confirmed = false;
            }
        }
        schedule_resync();
    }

    // Refresh the topology after a backoff (asking `ask_first` first), then
    // subscribe every channel that is not confirmed at its current owner.
    void schedule_resync(std::optional<Endpoint> ask_first = std::nullopt) {
        if (ask_first && !resync_ask_first) resync_ask_first = std::move(ask_first);
        if (closed || resync_scheduled) return;
        resync_scheduled = true;
        const ClusterOptions& options = cluster.options();
        auto delay = options.first_retry_delay * (1 << std::min(failed_resyncs, 16));
        resync_timer.expires_after(
            std::min<std::chrono::steady_clock::duration>(delay, options.max_retry_delay));
        resync_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec || self->closed) return;
            self->cluster.refresh_topology([self](std::error_code) { self->resync(); },
                                           std::exchange(self->resync_ask_first, std::nullopt));
        });
    }

    void resync() {
        resync_scheduled = false;
        if (closed) return;
        ++failed_resyncs;
        for (auto it = channels.begin(); it != channels.end(); ++it) {
            auto owner = cluster.primary_of(it->second.slot);
            if (it->second.confirmed && it->second.node == owner) continue;
            if (it->second.node && it->second.node != owner)
                send_unsubscribe(*it->second.node, it->first);
            place(it);
        }
    }

    // A primary that stops answering without closing its connections (a
    // stopped process, a host cut off) tells its subscribers nothing: its
    // replica is promoted and publishes go there, while the channels stay
    // subscribed where nothing comes. The slot map moves meanwhile (the
    // cluster's own refreshes: commands, health checks), so a channel whose
    // owner there is no longer the node it was sent to is placed again.
    void check_owners() {
        owner_timer.expires_after(kOwnerCheck);
        owner_timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
            auto self = weak.lock();
            if (ec || !self || self->closed) return;
            for (const auto& [name, channel] : self->channels) {
                if (!channel.node) continue;  // waiting for a resync already
                const auto owner = self->cluster.primary_of(channel.slot);
                if (owner && owner != channel.node) {
                    self->schedule_resync(owner);
                    break;
                }
            }
            self->check_owners();
        });
    }

    void shutdown() {
        closed = true;
        resync_timer.cancel();
        owner_timer.cancel();
        auto open = std::move(connections);
        connections.clear();
        for (auto& [node, conn] : open)
            conn->close();
        on_message = nullptr;
        on_subscribed = nullptr;
    }
};

ShardedPubSub::ShardedPubSub(Cluster& cluster, MessageHandler on_message,
                             SubscribedHandler on_subscribed)
    : impl_(std::make_shared<Impl>(cluster, std::move(on_message), std::move(on_subscribed))) {
    cluster.loop().post([impl = impl_] {
        if (!impl->closed) impl->check_owners();
    });
}

ShardedPubSub::~ShardedPubSub() {
    Loop& loop = impl_->cluster.loop();
    if (loop.in_loop_thread()) {
        impl_->shutdown();
        return;
    }
    std::promise<void> done;
    loop.post([impl = impl_, &done] {
        impl->shutdown();
        done.set_value();
    });
    done.get_future().wait();
}

void ShardedPubSub::subscribe(std::string channel) {
    impl_->cluster.loop().post(
        [impl = impl_, channel = std::move(channel)] { impl->subscribe(channel); });
}

void ShardedPubSub::unsubscribe(std::string channel) {
    impl_->cluster.loop().post(
        [impl = impl_, channel = std::move(channel)] { impl->unsubscribe(channel); });
}

}  // namespace jobcast::redis
