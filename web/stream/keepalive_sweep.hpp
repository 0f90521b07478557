// Internal to web/: the keepalive checks of WebSocket sessions without a
// timer per connection. One sweep per I/O thread holds its connections in a
// timer wheel of coarse buckets (kSlots per tick interval, as many buckets
// as the longest wait a member may ask for) and wakes once per bucket,
// whatever the number of connections; a connection is visited only when it
// is due. Connections mark activity by the sweep's tick counter (one relaxed
// load, no clock read per read or write) and decide at their visit, on their
// own strand, whether to ping, close, or just be due again later.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "web/stream/per_io_thread.hpp"

namespace jobcast::web {

// A connection the sweep checks.
class KeepaliveMember {
  public:
    virtual ~KeepaliveMember() = default;
    // The member is due at `tick`: called on the sweep's thread; must not
    // block (hand the check to the member's own strand).
    virtual void keepalive_due(std::uint64_t tick) = 0;
    // The tick of the member's latest schedule(): an earlier schedule that
    // it superseded is not visited (its entry is dropped at its tick).
    std::uint64_t due_tick() const { return due_tick_.load(std::memory_order_relaxed); }

  private:
    friend class KeepaliveSweep;
    std::atomic<std::uint64_t> due_tick_{0};
};

class KeepaliveSweep : public std::enable_shared_from_this<KeepaliveSweep> {
  public:
    // Ticks per `interval`: a due member is visited at most one tick
    // (interval / kSlots) late.
    static constexpr std::uint64_t kSlots = 16;

    // `executor`: a strand of its I/O thread's io_context, the sweep's own.
    // A tick is `interval` / kSlots; a member may ask to be due up to
    // `horizon` ticks ahead (at least kSlots).
    KeepaliveSweep(const boost::asio::any_io_executor& executor, std::chrono::milliseconds interval,
                   std::uint64_t horizon = kSlots);

    // The number of ticks so far: the members' coarse clock. Any thread.
    std::uint64_t tick() const { return tick_.load(std::memory_order_relaxed); }
    // How many ticks `duration` is (rounded, 1 to the horizon).
    std::uint64_t ticks_for(std::chrono::milliseconds duration) const;
    // Any thread: `member` is due in `ticks` ticks (1 to the horizon), and
    // no longer at the tick of its previous schedule(). The sweep holds it
    // weakly: a member that is gone is dropped at its visit.
    void schedule(const std::shared_ptr<KeepaliveMember>& member, std::uint64_t ticks);
    // Drops every member and lets the timer run out (release()).
    void stop();

  private:
    void wait();
    void on_tick();

    const std::chrono::steady_clock::duration tick_length_;
    const std::uint64_t horizon_;
    boost::asio::steady_timer timer_;  // on the sweep's strand
    std::atomic<std::uint64_t> tick_{0};
    std::mutex mutex_;
    // Ring of buckets; slot (tick % size) holds the members due at that tick.
    std::vector<std::vector<std::weak_ptr<KeepaliveMember>>> slots_;
    std::size_t members_ = 0;  // in the slots
    bool armed_ = false;       // the timer runs: while there are members
    bool stopped_ = false;
};

// The sweeps of the I/O threads: one per thread, on that thread's
// io_context; a connection gets the sweep of its own io_context. Their
// ticks are a sixteenth of the shorter of `keepalive` and `ping_interval`;
// members may ask for the longer one.
class KeepaliveSweeps {
  public:
    KeepaliveSweeps(std::chrono::milliseconds keepalive, std::chrono::milliseconds ping_interval);
    // One sweep per io_context of `io` (the HTTP server's).
    void attach(const std::vector<IoExecutor>& io) { sweeps_.attach(io); }
    // The sweep for a connection whose strand is `session_strand`. Null when
    // the strand is not an io_context strand or its io_context was not
    // attached, and after release(): such a connection is left to TCP
    // keepalive.
    std::shared_ptr<KeepaliveSweep> pick(const boost::asio::any_io_executor& session_strand) {
        return sweeps_.pick(session_strand);
    }
    // Stops the sweeps before their io_context goes (their timers must not
    // outlive it); pick() answers null afterwards. The HTTP server calls it
    // when it goes.
    void release();

  private:
    PerIoThread<KeepaliveSweep> sweeps_;
};

}  // namespace jobcast::web
