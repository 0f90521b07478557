#include "web/stream/frame_buffers.hpp"

namespace jobcast::web {

std::string FrameBuffers::take() {
    std::lock_guard lock(mutex_);
    if (free_.empty()) return {};
    std::string buffer = std::move(free_.back());  // the warmest in cache
    free_.pop_back();
    return buffer;
}

std::shared_ptr<const std::string> FrameBuffers::share(std::string frame) {
    // The deleter holds the buffers weakly: a frame may outlive them (a write
    // finishing after the server let its context go).
    return std::shared_ptr<const std::string>(
        new std::string(std::move(frame)), [buffers = weak_from_this()](const std::string* shared) {
            std::unique_ptr<std::string> owned(const_cast<std::string*>(shared));
            if (auto self = buffers.lock()) self->give_back(std::move(*owned));
        });
}

void FrameBuffers::give_back(std::string&& buffer) {
    if (buffer.capacity() < min_capacity_ || buffer.capacity() > max_capacity_) return;
    buffer.clear();
    std::lock_guard lock(mutex_);
    if (free_.size() < max_buffers_) free_.push_back(std::move(buffer));
}

std::size_t FrameBuffers::kept() const {
    std::lock_guard lock(mutex_);
    return free_.size();
}

std::size_t FrameBuffers::kept_bytes() const {
    std::lock_guard lock(mutex_);
    std::size_t bytes = 0;
    for (const auto& buffer : free_)
        bytes += buffer.capacity();
    return bytes;
}

}  // namespace jobcast::web
