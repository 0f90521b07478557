// Sharded pub/sub (SSUBSCRIBE / SUNSUBSCRIBE / smessage) over a Cluster's
// topology, on dedicated connections, one per primary, one channel per
// SSUBSCRIBE (a command may name channels of one slot only). Channels are kept
// subscribed: after a lost connection, a server-side SUNSUBSCRIBE (the slot
// moved or the primary was demoted), a redirect, or a slot map that no longer
// names the node a channel was sent to (a primary stopped without closing its
// connections, its replica promoted: checked every second), the topology is
// refreshed and the channel is subscribed again at its new owner, with backoff
// while the cluster has none.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace jobcast::redis {

class Cluster;

class ShardedPubSub {
  public:
    using MessageHandler =
        std::function<void(const std::string& channel, const std::string& payload)>;
    // Each time the server confirms a channel: on the first subscribe and on
    // every resubscribe. Pub/sub is at-most-once, so whatever was published
    // while the channel was not subscribed is gone: this is when a reader
    // catches up from the store.
    using SubscribedHandler = std::function<void(const std::string& channel)>;

    // Handlers run on the cluster's loop thread. `cluster` must outlive this.
    ShardedPubSub(Cluster& cluster, MessageHandler on_message,
                  SubscribedHandler on_subscribed = nullptr);
    // Closes the connections; no handler runs afterwards.
    ~ShardedPubSub();
    ShardedPubSub(const ShardedPubSub&) = delete;
    ShardedPubSub& operator=(const ShardedPubSub&) = delete;

    // Thread-safe; subscribing twice to a channel is one subscription.
    void subscribe(std::string channel);
    void unsubscribe(std::string channel);

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace jobcast::redis
