// A few threads for work that blocks (SQLite reads, store submits under
// backpressure), so the I/O threads never wait on the disk. Bounded: when the
// queue is full, post() says no and the caller answers "busy" instead of
// letting work pile up without limit.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace jobcast::web {

class BlockingPool {
  public:
    explicit BlockingPool(std::size_t threads, std::size_t max_queued = 4096);
    ~BlockingPool();
    BlockingPool(const BlockingPool&) = delete;
    BlockingPool& operator=(const BlockingPool&) = delete;

    // Queues `task`; false (and `task` is dropped) when the queue is full or the
    // pool is stopping. A task's exception is logged, never propagated.
    bool post(std::function<void()> task);

    // Runs what is already queued, then joins the threads. Idempotent.
    void stop();

  private:
    void run();

    const std::size_t max_queued_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace jobcast::web
