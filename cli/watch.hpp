// `jobcast watch`: follows one job's log over the WebSocket until its
// terminal state event, and survives the connection dropping.
//
// It remembers the seq of the last event it showed. After any disconnect
// (broker restart, network trouble, close 1001/1012/4001) it waits a jittered
// backoff, reconnects and subscribes again after that seq; events at or below
// it are dropped, so the output continues with no gap and no duplicate. It
// gives up when no connection has worked for `reconnect.give_up`.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "cli/errors.hpp"
#include "cli/message_stream.hpp"
#include "cli/reconnect.hpp"
#include "cli/renderer.hpp"

namespace jobcast::cli {

// Time for the reconnect loop; the tests' fake advances on sleep().
class WatchClock {
  public:
    virtual ~WatchClock() = default;
    virtual std::chrono::milliseconds now() = 0;  // monotonic
    virtual void sleep(std::chrono::milliseconds delay) = 0;
};

// std::chrono::steady_clock and std::this_thread::sleep_for.
WatchClock& steady_watch_clock();

struct WatchOptions {
    std::string job;
    std::uint64_t after = 0;  // show events with seq > after
    ReconnectPolicy::Config reconnect;
    std::uint64_t seed = 0;  // of the backoff jitter
};

// The exit code follows the job's outcome (0 succeeded, 1 failed, 3
// cancelled); 5 for an unknown job, 4 when the broker stayed unreachable or
// refused the connection, 2 for an `after` beyond the job's log.
ExitCode watch_job(const WatchOptions& options, Connector& connector, Renderer& renderer,
                   WatchClock& clock);

}  // namespace jobcast::cli
