// Job -> subscribers. After each commit the writer hands the new events to
// the hub; its own thread serializes each job's events once per wire format
// into shared immutable buffers and hands them to every subscriber, so the
// writer never waits on fan-out and fan-out costs no copies. Subscribers
// (WebSocket and SSE sessions, long-polls) post the buffers to their own
// strands; no lock is held while anything is written.
//
// A second implementation (another broker's feed over a shared engine) can
// stand behind the same LiveSink interface.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "live/published.hpp"
#include "persistence/store.hpp"

namespace jobcast::live {

class Hub {
  public:
    Hub();
    ~Hub();
    Hub(const Hub&) = delete;
    Hub& operator=(const Hub&) = delete;

    // Writer thread, after COMMIT. Never blocks on subscribers.
    void publish(std::vector<store::JobEvents> events);

    // Live events of one job. The sink is held weakly: a session that is gone
    // simply stops receiving. Subscribe before reading the store (see Subscription).
    void subscribe(const std::string& job, const std::shared_ptr<LiveSink>& sink,
                   WireFormat format);
    void unsubscribe(const std::string& job, const LiveSink* sink);
    // State events of every job of `owner` (the "jobs" feed).
    void subscribe_feed(const std::string& owner, const std::shared_ptr<LiveSink>& sink,
                        WireFormat format);
    void unsubscribe_feed(const std::string& owner, const LiveSink* sink);

    std::size_t subscriptions() const { return subscriptions_.load(std::memory_order_relaxed); }
    // Waits until everything published so far has been handed to subscribers (tests).
    void drain();
    void stop();

  private:
    struct Entry {
        std::weak_ptr<LiveSink> sink;
        const LiveSink* key;
        WireFormat format;
    };
    using Table = std::unordered_map<std::string, std::vector<Entry>>;

    void run();
    void fan_out(std::vector<store::JobEvents>& batch);
    static void add(Table& table, const std::string& key, const std::shared_ptr<LiveSink>& sink,
                    WireFormat format);
    static bool remove(Table& table, const std::string& key, const LiveSink* sink);

    mutable std::mutex table_mutex_;
    Table jobs_;
    Table feeds_;
    std::atomic<std::size_t> subscriptions_{0};

    std::mutex queue_mutex_;
    std::condition_variable queue_cv_;
    std::condition_variable drained_cv_;
    std::deque<std::vector<store::JobEvents>> queue_;
    std::uint64_t enqueued_ = 0, done_ = 0;
    bool stopping_ = false;
    std::thread thread_;
};

// The wire formats of a batch of one job's events.
std::string websocket_frame(const std::string& job, const std::vector<Event>& events,
                            std::size_t skip = 0);
// Events of one job taken from several batches (each from its `skip` on).
struct EventSlice {
    const std::vector<Event>* events;
    std::size_t skip = 0;
};
std::string websocket_frame(const std::string& job, const std::vector<EventSlice>& slices);
std::string sse_text(const std::string& job, const std::vector<Event>& events,
                     std::size_t skip = 0);

}  // namespace jobcast::live
