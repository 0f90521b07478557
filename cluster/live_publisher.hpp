// The publishing half of cross-broker live fan-out (CLUSTER.md §5.5): after a
// commit round is replicated and confirmed, the broker that committed it
// SPUBLISHes each job's new events on the job's live channel and each changed
// job on its owner's feed channel. Brokers with subscribers of those channels
// (RedisLiveFeed) hand them to their hub. The same round's hints go to the
// partitions' hint channels, for the brokers' feeders (ClusterFeeder): a job
// queued (created, requeued, retried), and a cancel asked for of a running
// job, so that the broker holding its lease tells the worker at once.
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

// The shard channel of partition p's hints: jobs queued there, cancels asked
// for of its running jobs.
std::string hint_channel(const Partitions& partitions, std::uint32_t partition);

// The payload of a partition's hint channel.
struct Hint {
    enum class Kind { ready, cancel };
    Kind kind = Kind::ready;
    std::string subject;  // ready: the queued job's type; cancel: the job
};
std::string encode_hint(const Hint& hint);
std::optional<Hint> decode_hint(std::string_view payload);

struct LivePublisherStats {
    std::uint64_t publishes = 0;     // live batches and job changes the cluster published
    std::uint64_t failures = 0;      // SPUBLISH commands that failed (client or server error)
    std::uint64_t ready_hints = 0;   // ready hints the cluster published
    std::uint64_t cancel_hints = 0;  // cancel hints the cluster published
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
        std::atomic<std::uint64_t> ready_hints{0};
        std::atomic<std::uint64_t> cancel_hints{0};
    };
    // `sent` counts it once the cluster carried it out.
    void send(std::string channel, std::string payload, std::atomic<std::uint64_t> Counters::*sent);
    void send_hint(std::uint32_t partition, Hint hint);

    redis::Cluster& cluster_;
    const Partitions& partitions_;
    // Shared with the completions, which may run after the publisher is gone.
    std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
};

}  // namespace jobcast::cluster
