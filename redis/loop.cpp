#include "redis/loop.hpp"

#include <boost/asio/post.hpp>

#include "common/thread_name.hpp"
#include "redis/loop_impl.hpp"

namespace jobcast::redis {

Loop::Loop() : impl_(std::make_unique<Impl>()) {
    impl_->thread = std::thread([this] {
        name_this_thread("jc-redis");
        impl_->io.run();
    });
}

Loop::~Loop() {
    impl_->work.reset();
    impl_->io.stop();
    impl_->thread.join();
}

void Loop::post(std::function<void()> fn) {
    asio::post(impl_->io, std::move(fn));
}

bool Loop::in_loop_thread() const {
    return impl_->io.get_executor().running_in_this_thread();
}

}  // namespace jobcast::redis
