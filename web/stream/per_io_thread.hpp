// Internal to web/: objects kept one per I/O thread on the sessions'
// io_context, the sessions spread over them in turn (the hub's lanes, the
// keepalive sweeps).
#pragma once

#include <algorithm>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace jobcast::web {

template <class T>
class PerIoThread {
  public:
    using IoExecutor = boost::asio::io_context::executor_type;
    using Make = std::function<std::shared_ptr<T>(const IoExecutor&)>;

    PerIoThread(std::size_t count, Make make)
        : count_(std::max<std::size_t>(1, count)), make_(std::move(make)) {}

    // The object for a session whose strand is `session_strand`; the
    // objects are made on the first call, on that strand's io_context. Null
    // when the strand is not an io_context strand, runs on another
    // io_context, or after release().
    std::shared_ptr<T> pick(const boost::asio::any_io_executor& session_strand) {
        const auto* strand = session_strand.target<boost::asio::strand<IoExecutor>>();
        if (!strand) return nullptr;
        const auto& io = strand->get_inner_executor();
        std::lock_guard lock(mutex_);
        if (released_) return nullptr;
        if (items_.empty()) {
            context_ = &io.context();
            for (std::size_t i = 0; i < count_; ++i)
                items_.push_back(make_(io));
        }
        if (context_ != &io.context()) return nullptr;
        return items_[next_++ % items_.size()];
    }

    // Gives the objects up (they must not outlive their io_context); pick()
    // answers null afterwards.
    std::vector<std::shared_ptr<T>> release() {
        std::vector<std::shared_ptr<T>> items;
        std::lock_guard lock(mutex_);
        released_ = true;
        items.swap(items_);
        return items;
    }

  private:
    std::mutex mutex_;
    bool released_ = false;
    const std::size_t count_;
    const Make make_;
    const void* context_ = nullptr;
    std::vector<std::shared_ptr<T>> items_;
    std::size_t next_ = 0;
};

}  // namespace jobcast::web
