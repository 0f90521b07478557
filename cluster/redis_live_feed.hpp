// The receiving half of cross-broker live fan-out (CLUSTER.md §5.5): a
// live::LiveFeed over sharded pub/sub. A job with subscribers on this broker
// has its live channel subscribed; each batch published there by the broker
// that committed it is handed over (to Hub::publish_remote, which drops what
// it already handed out and fills gaps from the store). An owner whose jobs
// feed has subscribers here has its feed channel subscribed; its job changes
// are handed over the same way, at most once (the jobs feed has no resume).
//
// Pub/sub loses whatever is published while a channel is not subscribed: so
// each time the server confirms a job's channel, the job is caught up from the
// store on this feed's own thread (never on the hub's lock, never on the Redis
// loop thread):
// - after a resubscribe (lost connection, slot moved, failover), every event
//   after the last seq handed over is read and handed over;
// - after the first subscribe, only the newest event is: the subscriber reads
//   everything up to it from the store itself, and an event beyond what it
//   read makes it read the store again (a Subscription fills its own holes).
//   That closes the window between watch() and the confirmation without
//   reading the job's log twice.
// A catch-up is done once it handed over what the job's log held when it
// was first tried (store::WrittenSeqs; live batches count): while this broker cannot confirm events
// another broker published (their shard lost its replica, or a failover lost the confirm), it is
// tried again a little later. Those events may be the last the job ever publishes: nothing else
// would bring them. Seqs make the rest exact: the hub hands each event out once and in order
// whichever way (live, catch-up or its own gap fill) it came.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cluster/partitions.hpp"
#include "live/live_feed.hpp"
#include "persistence/store.hpp"
#include "persistence/written_seqs.hpp"

namespace jobcast::redis {
class Cluster;
class ShardedPubSub;
}  // namespace jobcast::redis

namespace jobcast::cluster {

struct RedisLiveFeedStats {
    std::uint64_t remote_batches = 0;   // live channel batches handed over
    std::uint64_t job_changes = 0;      // owner feed job changes handed over
    std::uint64_t catch_ups = 0;        // store reads after a channel was confirmed
    std::uint64_t gap_fills = 0;        // ... that handed over events pub/sub had not
    std::uint64_t decode_failures = 0;  // payloads that are not what a broker publishes
    std::uint64_t resubscribes = 0;     // confirmations of a watched job's channel after the first
    std::uint64_t store_errors = 0;     // catch-up reads that failed (retried)
};

class RedisLiveFeed final : public live::LiveFeed {
  public:
    // Receives a batch from any of this feed's threads; must not block.
    using Deliver = std::function<void(std::vector<store::JobEvents>)>;

    // `cluster`, `partitions`, `log` and `written` (how far each job's log is
    // written, shown or not; the same store) outlive the feed. `on_events`
    // gets jobs' committed events (Hub::publish_remote), `on_job_changes` the
    // `state` events of an owner's changed jobs (the jobs feed).
    RedisLiveFeed(redis::Cluster& cluster, const Partitions& partitions, store::EventLog& log,
                  store::WrittenSeqs& written, Deliver on_events, Deliver on_job_changes);
    // Unsubscribes everything; nothing is handed over afterwards.
    ~RedisLiveFeed() override;
    // The same, before the feed goes: once it returns, no thread of the feed
    // runs a callback or reads the store. Idempotent.
    void stop();
    RedisLiveFeed(const RedisLiveFeed&) = delete;
    RedisLiveFeed& operator=(const RedisLiveFeed&) = delete;

    // LiveFeed: thread-safe, never block, never call back.
    void watch(const std::string& job, std::uint64_t last_seq) override;
    void unwatch(const std::string& job) override;
    void watch_owner(const std::string& owner) override;
    void unwatch_owner(const std::string& owner) override;

    RedisLiveFeedStats stats() const;

  private:
    struct Watch {
        std::string channel;
        std::string owner;         // learned from its batches; empty until one came
        std::uint64_t handed = 0;  // the last seq handed over (or the watch's last_seq)
        bool confirmed = false;    // its channel was confirmed at least once
        // The written seq a pending catch-up must hand over (store::WrittenSeqs
        // at its first try); none when no catch-up is short of it.
        std::optional<std::uint64_t> reach;
    };
    struct Counters {
        std::atomic<std::uint64_t> remote_batches{0}, job_changes{0}, catch_ups{0}, gap_fills{0},
            decode_failures{0}, resubscribes{0}, store_errors{0};
    };

    // The Redis loop thread.
    void on_message(const std::string& channel, const std::string& payload);
    void on_subscribed(const std::string& channel);
    // Queues a catch-up of `job` for the catch-up thread; mutex_ held.
    void queue_catch_up(const std::string& job, bool tail_only);
    // The catch-up thread.
    void run();
    // Hands over what the store has past the job's last handed seq (only its
    // newest event when `tail_only`). False if the store failed, or if it
    // does not show yet all the log held when the catch-up began: then it is
    // tried again.
    bool catch_up(const std::string& job, bool tail_only);

    const Partitions& partitions_;
    store::EventLog& log_;
    store::WrittenSeqs& written_;
    Deliver on_events_;
    Deliver on_job_changes_;
    Counters counters_;

    mutable std::mutex mutex_;
    std::unordered_map<std::string, Watch> jobs_;            // job -> its watch
    std::unordered_map<std::string, std::string> job_of_;    // live channel -> job
    std::unordered_map<std::string, std::string> owner_of_;  // feed channel -> owner
    std::unordered_map<std::string, bool> pending_;          // job to catch up -> tail only
    std::condition_variable wake_;
    bool stopping_ = false;
    std::once_flag stopped_;

    std::unique_ptr<redis::ShardedPubSub> pubsub_;
    std::thread catcher_;
};

}  // namespace jobcast::cluster
