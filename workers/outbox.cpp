#include "workers/outbox.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace jobcast::worker {

Outbox::Outbox(std::size_t max_unacked_bytes) : budget_(max_unacked_bytes) {
    fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
}

Outbox::~Outbox() {
    ::close(fd_);
}

void Outbox::submit(const std::shared_ptr<AttemptStream>& attempt, std::uint64_t wseq,
                    std::string& frame, FrameKind kind, const std::atomic<bool>& closed) {
    Message message{attempt, wseq, std::move(frame), kind};
    frame.clear();
    const std::size_t size = message.frame.size();
    bool wake_up = false;
    {
        std::unique_lock lock(mutex_);
        if (!budget_.fits(size)) {
            waits_.fetch_add(1, std::memory_order_relaxed);
            wake();  // for the I/O thread to watch for the acks that make room
            space_.wait(lock, [&] { return budget_.fits(size) || closed.load(); });
        }
        if (closed.load()) return;
        budget_.take(size);
        queued_bytes_ += size;
        // The I/O thread takes this when the ack it waits for comes, unless
        // something else (another attempt, a checkpoint, a full batch) needs it now.
        const bool taken_on_ack = kind == FrameKind::chunk && attempt->ack_due() &&
                                  queue_.size() + 1 < kMaxHeldChunks &&
                                  queued_bytes_ < kMaxHeldBytes;
        wake_up = !woken_ && !taken_on_ack;
        woken_ = woken_ || wake_up;
        queue_.push_back(std::move(message));
        if (!spares_.empty()) {
            frame = std::move(spares_.back());
            spares_.pop_back();
        }
    }
    submitted_.fetch_add(1, std::memory_order_relaxed);
    if (wake_up && !(deliver_ && deliver_())) wake();
}

void Outbox::close(std::atomic<bool>& closed) {
    {
        std::lock_guard lock(mutex_);
        closed.store(true, std::memory_order_release);
    }
    space_.notify_all();
}

void Outbox::wake() noexcept {
    const std::uint64_t one = 1;
    // A full counter (EAGAIN) already means "wake up"; nothing else can fail here.
    [[maybe_unused]] auto written = ::write(fd_, &one, sizeof one);
}

void Outbox::clear_wake() noexcept {
    std::uint64_t value = 0;
    [[maybe_unused]] auto got = ::read(fd_, &value, sizeof value);
}

void Outbox::take(std::vector<Message>& batch) {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
    queued_bytes_ = 0;
    woken_ = false;
}

bool Outbox::pending() const {
    std::lock_guard lock(mutex_);
    return !queue_.empty();
}

void Outbox::reserve(std::size_t bytes) {
    {
        std::lock_guard lock(mutex_);
        budget_.take(bytes);
    }
    submitted_.fetch_add(1, std::memory_order_relaxed);
}

void Outbox::release(std::size_t bytes, std::vector<std::string>* spares) {
    {
        std::lock_guard lock(mutex_);
        budget_.release(bytes);
        if (spares) {
            for (auto& spare : *spares) {
                if (spares_.size() == kMaxSpareBuffers) break;
                spares_.push_back(std::move(spare));
            }
        }
    }
    if (spares) spares->clear();
    space_.notify_all();
}

std::size_t Outbox::unacked_bytes() const {
    std::lock_guard lock(mutex_);
    return budget_.used();
}

}  // namespace jobcast::worker
