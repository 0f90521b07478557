// The hand-off of encoded messages from handler threads to the worker's I/O
// thread: a mutex-protected vector plus an eventfd the I/O thread polls,
// written at most once between two takes (so a busy handler costs one syscall
// per I/O batch, not per token), not at all when the submitting thread
// delivered the queue itself (set_deliver: the worker sends from the handler's
// thread while its I/O thread waits in poll), and not at all for a chunk of an attempt
// whose next chunks the I/O thread holds until an ack it is waiting for
// (AttemptStream::ack_due): it takes them when that ack comes, unless a full
// batch (kMaxHeldChunks, kMaxHeldBytes) is queued first. It holds the worker's
// UnackedBudget: submit blocks while the bytes queued here or waiting for an
// ack in the ReliableStream are over the bound, until acks release them
// (backpressure, not loss) or the job is closed. Acknowledged messages' buffers
// come back through release() and go to the next submits, so that a producer
// reusing its buffer allocates nothing per message.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "workers/reliable_stream.hpp"

namespace jobcast::worker {

class Outbox {
  public:
    struct Message {
        std::shared_ptr<AttemptStream> attempt;
        std::uint64_t wseq;
        std::string frame;
        FrameKind kind;
    };

    // Throws std::runtime_error when no eventfd can be made.
    explicit Outbox(std::size_t max_unacked_bytes);
    ~Outbox();
    Outbox(const Outbox&) = delete;
    Outbox& operator=(const Outbox&) = delete;

    // Handler threads. Queues message `wseq` of `attempt`, taking `frame`'s
    // bytes and leaving an empty buffer in it (a spare one when there is);
    // waits while it does not fit the bound; queues nothing once `closed` is
    // set (through close()).
    void submit(const std::shared_ptr<AttemptStream>& attempt, std::uint64_t wseq,
                std::string& frame, FrameKind kind, const std::atomic<bool>& closed);
    // Sets `closed`: the job takes no more output, and its blocked submit returns.
    void close(std::atomic<bool>& closed);

    // Any thread; async-signal-safe (an eventfd write).
    void wake() noexcept;

    // Before any submit: called (outside the outbox's lock) by a submit that
    // would wake the I/O thread; returning true means it took the queue and
    // handed it on itself, so there is no wake-up. It must not block.
    void set_deliver(std::function<bool()> deliver) { deliver_ = std::move(deliver); }

    // I/O thread: the fd to poll for wake-ups and its reset, what handlers
    // queued since the last take (swapped into `batch`), a message made on the
    // I/O thread itself (its bytes count against the bound, and it counts as
    // submitted), and bytes acknowledged or not kept (with the emptied buffers
    // of acknowledged messages, taken from `spares`, up to kMaxSpareBuffers).
    int fd() const noexcept { return fd_; }
    void clear_wake() noexcept;
    void take(std::vector<Message>& batch);
    // Something is queued (e.g. held for an ack, see AttemptStream::ack_due).
    bool pending() const;
    void reserve(std::size_t bytes);
    void release(std::size_t bytes, std::vector<std::string>* spares = nullptr);

    // Bytes queued or waiting for an ack; messages submitted (or reserved),
    // and submit calls that had to wait for room.
    std::size_t unacked_bytes() const;
    std::uint64_t submitted() const noexcept { return submitted_.load(); }
    std::uint64_t waits() const noexcept { return waits_.load(); }

  private:
    int fd_ = -1;
    mutable std::mutex mutex_;  // guards queue_ and budget_
    std::condition_variable space_;
    std::vector<Message> queue_;
    std::vector<std::string> spares_;
    std::size_t queued_bytes_ = 0;  // of queue_
    bool woken_ = false;            // the eventfd was written since the last take
    UnackedBudget budget_;
    std::function<bool()> deliver_;
    std::atomic<std::uint64_t> submitted_{0};
    std::atomic<std::uint64_t> waits_{0};
};

}  // namespace jobcast::worker
