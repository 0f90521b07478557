// What the hub hands to subscribers: the events one commit appended to one
// job, shared by every subscriber, with each wire format serialized once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protocol/model.hpp"

namespace jobcast::live {

// The events one commit appended to one job, shared by every subscriber, with
// each wire format serialized once (by the hub) when someone needs it.
struct Published {
    std::string job;
    std::string owner;
    std::vector<Event> events;  // contiguous seqs
    bool terminal = false;      // the last event ends the job
    bool feed = false;          // state events only, for the jobs feed (seqs not contiguous)
    std::shared_ptr<const std::string> ws_frame;   // "event"/"events" frame of all events
    std::shared_ptr<const std::string> sse_chunk;  // every event as SSE text
    std::size_t bytes = 0;                         // approximate payload size
    // Local commits (stage timing): when the hub had the commit, when it had
    // serialized it for the I/O threads; zero for other brokers' commits.
    std::chrono::steady_clock::time_point committed_at{}, handed_at{};

    std::uint64_t first_seq() const { return events.front().seq; }
    std::uint64_t last_seq() const { return events.back().seq; }
};
using PublishedPtr = std::shared_ptr<const Published>;

// True for a `state` event whose state is terminal (succeeded/failed/cancelled).
bool is_terminal_event(const EventView& event);
inline bool is_terminal_event(const Event& event) {
    return is_terminal_event(view_of(event));
}

// Which wire format a subscriber writes, so the hub serializes only those.
enum class WireFormat : std::uint8_t { websocket = 1, sse = 2, none = 0 };

// A thread (or serialized executor) that serves many subscribers. After each
// commit the hub hands every lane one task that delivers the commit to all of
// its subscribers, instead of one wake-up per subscriber.
class LiveLane {
  public:
    virtual ~LiveLane() = default;
    // Runs `task` on the lane, after every task handed to it before. Called
    // on the hub thread; must not block.
    virtual void run(std::function<void()> task) = 0;
};

// A subscriber of the hub (a WebSocket or SSE session, a long-poll).
class LiveSink {
  public:
    virtual ~LiveSink() = default;
    // Called on the sink's lane, or on the hub thread for a sink without one;
    // must not block (hand the batch to your own strand).
    virtual void deliver(const PublishedPtr& published) = 0;
    // The lane that delivers to this sink (asked once, at subscribe); null:
    // the hub thread calls deliver() itself.
    virtual std::shared_ptr<LiveLane> lane() { return nullptr; }
};

}  // namespace jobcast::live
