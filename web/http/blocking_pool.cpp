#include "web/http/blocking_pool.hpp"

#include <exception>

#include "common/thread_name.hpp"
#include "web/http/log.hpp"
#include "web/security/audit.hpp"

namespace jobcast::web {

BlockingPool::BlockingPool(std::size_t threads, std::size_t max_queued)
    : max_queued_(max_queued == 0 ? 1 : max_queued) {
    if (threads == 0) threads = 1;
    threads_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i)
        threads_.emplace_back([this] {
            name_this_thread("jc-blocking");
            run();
        });
}

BlockingPool::~BlockingPool() {
    stop();
}

bool BlockingPool::post(std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || queue_.size() >= max_queued_) return false;
        queue_.push_back(std::move(task));
    }
    wake_.notify_one();
    return true;
}

void BlockingPool::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && threads_.empty()) return;
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) {
        if (thread.joinable()) thread.join();
    }
    threads_.clear();
}

void BlockingPool::run() {
    for (;;) {
        std::function<void()> task;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping and drained
            task = std::move(queue_.front());
            queue_.pop_front();
        }
        try {
            task();
        } catch (const std::exception& e) {
            log().error("blocking task failed error={}", audit_quote(e.what()));
        } catch (...) {
            log().error("blocking task failed error=unknown");
        }
    }
}

}  // namespace jobcast::web
