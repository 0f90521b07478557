// Limits and timings of the streaming transports (WebSocket, SSE).
#pragma once

#include <chrono>
#include <cstddef>

namespace jobcast::web {

struct StreamingConfig {
    // Bytes queued for one connection before its subscriptions fall back to
    // the store. Frames are shared between subscribers, so this bounds what a
    // slow client can pin, not a copy per client.
    std::size_t max_queue_bytes = 1 << 20;
    std::size_t replay_page = 2000;           // events per store read
    std::size_t replay_page_bytes = 4 << 20;  // event data per store read (>= 1 event)
    std::size_t live_buffer_bytes = 1 << 20;  // per subscription, while replaying
    // Live events buffered across every subscription of one connection while
    // they replay; a subscription that would go past it reads them from the
    // store instead (as a slow consumer does).
    std::size_t connection_buffer_bytes = 8 << 20;
    std::size_t max_subscriptions = 1000;             // per connection
    std::size_t max_message_bytes = 64 * 1024;        // client WebSocket message
    std::chrono::milliseconds stall_timeout{30'000};  // a write that long: close, "resume"
    // TCP keepalive idle time, SSE comment interval, how often a WebSocket
    // with a write in flight is checked for a stall.
    std::chrono::milliseconds keepalive{45'000};
    std::chrono::milliseconds ws_ping_interval{240'000};  // ping of an idle WebSocket
};

}  // namespace jobcast::web
