// The engine thread: one thread running the event loop that owns every Redis
// socket of a Cluster and its ShardedPubSub. Their callbacks run on it.
#pragma once

#include <functional>
#include <memory>

namespace jobcast::redis {

class Loop {
  public:
    // Starts the thread.
    Loop();
    // Stops the loop and joins the thread; the clients using it must be
    // destroyed first.
    ~Loop();
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;

    // Runs `fn` on the loop thread (never inline). Thread-safe.
    void post(std::function<void()> fn);
    bool in_loop_thread() const;

    struct Impl;
    // The Asio side, for redis/*.cpp only (see loop_impl.hpp).
    Impl& impl() { return *impl_; }

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace jobcast::redis
