// The frames of one job attempt that the broker has not acknowledged yet, in
// wseq order. They stay encoded exactly as first sent so that a re-send after a
// reconnect is byte-identical (the broker drops duplicates by wseq). Pure: no
// I/O, no locking (the worker's I/O thread owns it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace jobcast::worker {

class UnackedFrames {
  public:
    struct Frame {
        std::uint64_t wseq;
        std::string bytes;
    };

    // Appends the frame with the next wseq; wseqs are consecutive per attempt.
    // A frame at or below the acknowledged wseq is dropped (already committed).
    void push(std::uint64_t wseq, std::string bytes) {
        if (wseq <= acked_) return;
        bytes_ += bytes.size();
        frames_.push_back(Frame{wseq, std::move(bytes)});
    }

    // Cumulative ack: forgets every frame with wseq <= `wseq`; returns the bytes freed.
    std::size_t ack(std::uint64_t wseq) {
        if (wseq > acked_) acked_ = wseq;
        std::size_t freed = 0;
        while (!frames_.empty() && frames_.front().wseq <= wseq) {
            freed += frames_.front().bytes.size();
            frames_.pop_front();
        }
        bytes_ -= freed;
        return freed;
    }

    // The frame with this wseq, or nullptr when it was acknowledged or never pushed.
    const Frame* find(std::uint64_t wseq) const {
        if (frames_.empty() || wseq < frames_.front().wseq) return nullptr;
        const auto index = wseq - frames_.front().wseq;
        if (index >= frames_.size()) return nullptr;
        return &frames_[index];
    }

    // Drops everything (the job is no longer ours); returns the bytes freed.
    std::size_t clear() {
        const std::size_t freed = bytes_;
        frames_.clear();
        bytes_ = 0;
        return freed;
    }

    std::uint64_t acked() const noexcept { return acked_; }
    // wseq of the oldest unacknowledged frame, or acked() + 1 when there is none.
    std::uint64_t first_unacked() const noexcept {
        return frames_.empty() ? acked_ + 1 : frames_.front().wseq;
    }
    // wseq of the newest frame pushed (or acked() when empty).
    std::uint64_t last() const noexcept { return frames_.empty() ? acked_ : frames_.back().wseq; }
    std::size_t size() const noexcept { return frames_.size(); }
    std::size_t bytes() const noexcept { return bytes_; }
    bool empty() const noexcept { return frames_.empty(); }

  private:
    std::deque<Frame> frames_;
    std::uint64_t acked_ = 0;
    std::size_t bytes_ = 0;
};

}  // namespace jobcast::worker
