// Internal to web/: objects kept one per I/O thread (the hub's lanes, the
// keepalive sweeps). Each I/O thread runs its own io_context; a session
// gets the object of its strand's io_context, so everything of one
// connection runs on one thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace jobcast::web {

// The executor of one I/O thread's io_context.
using IoExecutor = boost::asio::io_context::executor_type;

template <class T>
class PerIoThread {
  public:
    using Make = std::function<std::shared_ptr<T>(const IoExecutor&)>;

    explicit PerIoThread(Make make) : make_(std::move(make)) {}

    // Makes one object on each io_context of `io` that has none yet (the
    // HTTP server's, one per I/O thread). Nothing after release().
    void attach(const std::vector<IoExecutor>& io) {
        std::lock_guard lock(mutex_);
        if (released_) return;
        for (const auto& executor : io) {
            if (find(&executor.context())) continue;
            items_.push_back({&executor.context(), make_(executor)});
        }
    }

    // The object of the io_context that `session_strand` runs on. Null when
    // the strand is not an io_context strand, its io_context was not
    // attached, or after release().
    std::shared_ptr<T> pick(const boost::asio::any_io_executor& session_strand) {
        const auto* strand = session_strand.target<boost::asio::strand<IoExecutor>>();
        if (!strand) return nullptr;
        const auto* context = &strand->get_inner_executor().context();
        std::lock_guard lock(mutex_);
        const auto* item = find(context);
        return item ? item->object : nullptr;
    }

    // Gives the objects up (they must not outlive their io_context); pick()
    // answers null afterwards.
    std::vector<std::shared_ptr<T>> release() {
        std::vector<std::shared_ptr<T>> objects;
        std::lock_guard lock(mutex_);
        released_ = true;
        for (auto& item : items_)
            objects.push_back(std::move(item.object));
        items_.clear();
        return objects;
    }

  private:
    struct Item {
        const boost::asio::io_context* context;
        std::shared_ptr<T> object;
    };

    // Under mutex_; a handful of io_contexts.
    const Item* find(const boost::asio::io_context* context) const {
        for (const auto& item : items_) {
            if (item.context == context) return &item;
        }
        return nullptr;
    }

    std::mutex mutex_;
    bool released_ = false;
    const Make make_;
    std::vector<Item> items_;
};

}  // namespace jobcast::web
