// Job -> subscribers. After each commit the writer hands the new events to
// the hub; its own thread serializes each job's events once per wire format
// into shared immutable buffers and hands them to every subscriber, so the
// writer never waits on fan-out and fan-out costs no copies. Subscribers
// that name a lane (WebSocket and SSE sessions: one lane per I/O thread) get
// a commit through one task per lane, which walks that lane's subscribers; a
// subscriber without one (a long-poll) is called on the hub thread. No lock
// is held while anything is written.
//
// Batches come from the local commit stream (publish) and from a LiveFeed
// (publish_remote: another broker's commits over a shared engine). Either
// way, per job with subscribers here, an event at or below the last seq
// handed out is dropped, and a batch that skips ahead has the missing events
// read from the store first (the gap fill), so subscribers see each event
// once and in order whichever way it came. The hub tells its feed when a job
// or an owner gets its first subscriber and loses its last. A job that no
// one here follows is left out on the publishing thread, so its commits do
// not wake the hub: a reader subscribes before it reads the store, so what
// was committed before it subscribed is in its read.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "live/live_feed.hpp"
#include "live/published.hpp"
#include "persistence/store.hpp"

namespace jobcast::live {

// Reads a job's committed events with after < seq < before, in seq order:
// how the hub fills a gap. Runs on the hub thread.
using GapFill = std::function<std::vector<Event>(const std::string& job, std::uint64_t after,
                                                 std::uint64_t before)>;
// A GapFill reading `log` in pages of `page` events.
GapFill fill_from(store::EventLog& log, std::size_t page = 1000);

// Counters only grow.
struct HubStats {
    // Events of publish_remote batches handed to subscribers here (what was
    // not already handed out through the local commit stream).
    std::uint64_t remote_events = 0;
    std::uint64_t gap_fills = 0;  // batches that skipped ahead, filled from the store
    // Batches the hub's thread was woken for: those with a job or an owner
    // followed here (the rest are dropped on the publishing thread).
    std::uint64_t batches = 0;
};

class Hub {
  public:
    // `feed` outlives the hub.
    Hub(LiveFeed& feed, GapFill fill_gap);
    ~Hub();
    Hub(const Hub&) = delete;
    Hub& operator=(const Hub&) = delete;

    // The local commit stream: writer thread, after COMMIT. Never blocks on subscribers.
    void publish(std::vector<store::JobEvents> events);
    // Committed batches a LiveFeed brought from elsewhere; any thread, never blocks.
    void publish_remote(std::vector<store::JobEvents> events);

    // Live events of one job. The sink is held weakly: a session that is gone
    // simply stops receiving. Subscribe before reading the store (see
    // Subscription); `after` is the seq the subscriber reads the store from.
    void subscribe(const std::string& job, std::uint64_t after,
                   const std::shared_ptr<LiveSink>& sink, WireFormat format);
    void unsubscribe(const std::string& job, const LiveSink* sink);
    // State events of every job of `owner` (the "jobs" feed).
    void subscribe_feed(const std::string& owner, const std::shared_ptr<LiveSink>& sink,
                        WireFormat format);
    void unsubscribe_feed(const std::string& owner, const LiveSink* sink);

    std::size_t subscriptions() const { return subscriptions_.load(std::memory_order_relaxed); }
    HubStats stats() const;
    // Waits until everything published so far has been handed to subscribers (tests).
    void drain();
    void stop();

  private:
    struct Entry {
        std::weak_ptr<LiveSink> sink;
        const LiveSink* key;
        WireFormat format;
        std::shared_ptr<LiveLane> lane;  // null: delivered on the hub thread
    };
    // What one commit hands to one lane: its sinks' batches, in order.
    struct LaneBatch {
        std::shared_ptr<LiveLane> lane;
        std::vector<std::pair<std::weak_ptr<LiveSink>, PublishedPtr>> deliveries;
    };
    // A job with subscribers here, and the last seq handed to them (0: none yet).
    struct JobWatch {
        std::vector<Entry> sinks;
        std::uint64_t delivered = 0;
    };
    // An owner whose jobs feed has subscribers here, and the last seq handed
    // to them per job (until the job ends).
    struct OwnerWatch {
        std::vector<Entry> sinks;
        std::unordered_map<std::string, std::uint64_t> delivered;
    };

    struct Queued {
        std::vector<store::JobEvents> batch;
        bool remote = false;  // from publish_remote
        // When publish() had the commit (stage timing; zero for remote batches).
        std::chrono::steady_clock::time_point committed_at{};
    };
    void enqueue(Queued queued);
    // Leaves out the jobs that no one here follows, by job or by owner.
    void drop_unfollowed(std::vector<store::JobEvents>& batch) const;
    void run();
    void fan_out(Queued& queued);
    // Delivers at once (no lane) or adds to the entry's lane batch.
    static void hand(const Entry& entry, const PublishedPtr& published,
                     std::vector<LaneBatch>& lanes);
    // Drops the events at or below `delivered` and fills a gap before the rest.
    void dedupe(store::JobEvents& job_events, std::uint64_t delivered);
    // Records the last seq of `job_events` as handed out.
    void note_delivered(const store::JobEvents& job_events);
    static bool add(std::vector<Entry>& entries, const std::shared_ptr<LiveSink>& sink,
                    WireFormat format);
    static bool remove(std::vector<Entry>& entries, const LiveSink* sink);

    LiveFeed& feed_;
    GapFill fill_gap_;
    mutable std::mutex table_mutex_;
    std::unordered_map<std::string, JobWatch> jobs_;
    std::unordered_map<std::string, OwnerWatch> owners_;
    std::atomic<std::size_t> subscriptions_{0};
    std::atomic<std::uint64_t> remote_events_{0};
    std::atomic<std::uint64_t> gap_fills_{0};
    std::atomic<std::uint64_t> batches_{0};

    std::mutex queue_mutex_;
    std::condition_variable queue_cv_;
    std::condition_variable drained_cv_;
    std::deque<Queued> queue_;
    std::uint64_t enqueued_ = 0, done_ = 0;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace jobcast::live
