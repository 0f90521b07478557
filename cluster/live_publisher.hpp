// The publishing half of cross-broker live fan-out (CLUSTER.md §5.5): after a
// commit round is replicated and confirmed, the broker that committed it
// SPUBLISHes each job's new events on the job's live channel and each changed
// job on its owner's feed channel. Brokers with subscribers of those channels
// (RedisLiveFeed) hand them to their hub.
//
// Pub/sub is at-most-once and so is this: a publish that fails is counted,
// never retried or waited for. Nothing is lost by it, because readers number
// events by seq: the hub drops what it already handed out and fills a gap from
// the store, and RedisLiveFeed catches up from the store whenever its
// subscription was interrupted. A publish the cluster client resends after a
// lost connection may arrive twice; the hub drops the second.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cluster/partitions.hpp"
#include "persistence/store.hpp"

namespace jobcast::redis {
class Cluster;
}

namespace jobcast::cluster {

// The payload of an owner's feed channel (Partitions::owner_feed_channel): a
// job whose state changed in a commit round, as the jobs feed shows it: its
// id, its owner and the round's `state` events of the job, in the live
// message's encoding (live_message.hpp). Decoding refuses any other payload,
// events of other kinds included.
std::string encode_job_change(const store::JobEvents& state_events);
std::optional<store::JobEvents> decode_job_change(std::string_view payload);

struct LivePublisherStats {
    std::uint64_t publishes = 0;  // SPUBLISH commands the cluster carried out
    std::uint64_t failures = 0;   // SPUBLISH commands that failed (client or server error)
};

class LivePublisher {
  public:
    // Both must outlive the publisher.
    LivePublisher(redis::Cluster& cluster, const Partitions& partitions);

    // A batch the store made durable and visible (CommitListener, the store's
    // engine thread). Queues the publishes and returns: never waits for Redis.
    // A batch that did not commit publishes nothing.
    void publish(const store::CommittedBatch& batch);

    LivePublisherStats stats() const;

  private:
    struct Counters {
        std::atomic<std::uint64_t> publishes{0};
        std::atomic<std::uint64_t> failures{0};
    };
    void send(std::string channel, std::string payload);

    redis::Cluster& cluster_;
    const Partitions& partitions_;
    // Shared with the completions, which may run after the publisher is gone.
    std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
};

}  // namespace jobcast::cluster
