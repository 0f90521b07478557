#include "workers/reliable_stream.hpp"

#include <algorithm>

#include "protocol/codec.hpp"
#include "protocol/limits.hpp"

namespace jobcast::worker {

// ---------------------------------------------------------------- AttemptStream

const AttemptStream::Frame* AttemptStream::find(std::uint64_t wseq) const noexcept {
    if (frames_.empty() || wseq < frames_.front().wseq) return nullptr;
    const auto index = wseq - frames_.front().wseq;
    if (index >= frames_.size()) return nullptr;
    return &frames_[index];
}

std::size_t AttemptStream::trim(std::uint64_t wseq, std::vector<std::string>& spares) {
    if (wseq > acked_) acked_ = wseq;
    std::size_t freed = 0;
    while (!frames_.empty() && frames_.front().wseq <= wseq) {
        auto& bytes = frames_.front().bytes;
        freed += bytes.size();
        if (spares.size() < kMaxSpareBuffers && bytes.capacity() <= kMaxSpareBufferBytes) {
            bytes.clear();
            spares.push_back(std::move(bytes));
        }
        frames_.pop_front();
    }
    bytes_ -= freed;
    return freed;
}

std::uint64_t AttemptStream::rewind() noexcept {
    const auto first = first_unacked();
    const std::uint64_t again = next_to_send_ > first ? next_to_send_ - first : 0;
    next_to_send_ = first;
    return again;
}

// ---------------------------------------------------------------- ReliableStream

std::shared_ptr<AttemptStream> ReliableStream::open(std::string job, int attempt) {
    auto stream = std::make_shared<AttemptStream>(job, attempt);
    attempts_.insert_or_assign(std::move(job), stream);
    return stream;
}

const AttemptStream* ReliableStream::find(const std::string& job) const {
    const auto it = attempts_.find(job);
    return it == attempts_.end() ? nullptr : it->second.get();
}

bool ReliableStream::push(AttemptStream& attempt, std::uint64_t wseq, std::string bytes,
                          FrameKind kind) {
    if (attempt.dropped_ || wseq <= attempt.acked_) return false;
    if (kind == FrameKind::terminal) attempt.terminal_wseq_ = wseq;
    if (kind != FrameKind::chunk) attempt.message_wseq_ = wseq;
    attempt.bytes_ += bytes.size();
    attempt.frames_.push_back(
        AttemptStream::Frame{wseq, std::move(bytes), kind == FrameKind::chunk});
    schedule(attempt);
    return true;
}

ReliableStream::Acked ReliableStream::ack(const std::string& job, int attempt, std::uint64_t wseq) {
    const auto it = attempts_.find(job);
    if (it == attempts_.end() || it->second->attempt_ != attempt) return {};
    auto& stream = *it->second;
    Acked acked;
    acked.known = true;
    const auto before = stream.frames_.size();
    acked.bytes = stream.trim(wseq, spares_);
    acked.messages = before - stream.frames_.size();
    if (stream.gap_resend_active_ && wseq >= stream.gap_resend_upto_) {
        stream.gap_resend_active_ = false;
    }
    if (stream.terminal_wseq_ != 0 && stream.acked_ >= stream.terminal_wseq_) {
        acked.settled = true;  // done/fail committed: the job is the broker's business now
        set_ack_due(stream, false);
        attempts_.erase(it);
        return acked;
    }
    if (acked.messages > 0) stream.holds_released_ = false;
    if (!stream.in_flight()) {
        // The caller's turn takes the outbox after this (see ack_due).
        set_ack_due(stream, false);
        if (!stream.frames_.empty()) schedule(stream);  // what was held goes now
    }
    return acked;
}

ReliableStream::Rejected ReliableStream::reject(const std::string& job, int attempt,
                                                std::string_view reason, Steady now,
                                                Steady::duration resend_window) {
    const auto it = attempts_.find(job);
    // A reject about another attempt was caused by frames of one given up
    // (the job was assigned again): honouring it would leave the current
    // attempt's lease held by a worker that does not run it.
    if (it == attempts_.end() || (attempt != 0 && attempt != it->second->attempt_)) return {};
    auto& stream = *it->second;
    if (reason != "gap") return {RejectAnswer::drop};
    if (stream.gap_resend_active_ && now - stream.gap_resent_at_ < resend_window) {
        return {RejectAnswer::already_resending};
    }
    Rejected rejected{RejectAnswer::resent, stream.first_unacked()};
    stream.gap_resend_active_ = true;
    stream.gap_resend_upto_ = std::max(stream.first_unacked(), stream.next_to_send_ - 1);
    stream.gap_resent_at_ = now;
    rejected.resent = stream.rewind();
    set_ack_due(stream, false);
    schedule(stream);
    return rejected;
}

ReliableStream::Freed ReliableStream::drop(const std::string& job) {
    const auto it = attempts_.find(job);
    if (it == attempts_.end()) return {};
    auto& stream = *it->second;
    Freed freed{stream.frames_.size(), stream.bytes_};
    stream.dropped_ = true;
    set_ack_due(stream, false);
    stream.frames_.clear();
    stream.bytes_ = 0;
    attempts_.erase(it);
    return freed;
}

void ReliableStream::release_holds() {
    for (auto& [job, attempt] : attempts_) {
        if (!attempt->in_flight()) continue;
        attempt->holds_released_ = true;
        schedule(*attempt);
    }
}

void ReliableStream::watch_acks(bool on) noexcept {
    if (on == acks_watched_) return;
    acks_watched_ = on;
    for (auto& [job, attempt] : attempts_)
        set_ack_due(*attempt,
                    on && batch_chunks_ && !attempt->holds_released_ && attempt->in_flight());
}

bool ReliableStream::holding() const noexcept {
    for (const auto& [job, attempt] : attempts_) {
        if (!attempt->frames_.empty() &&
            attempt->frames_.back().wseq >=
                std::max(attempt->next_to_send_, attempt->first_unacked()) &&
            holds(*attempt))
            return true;
    }
    return false;
}

void ReliableStream::disconnected() {
    connected_ = false;
    batch_chunks_ = false;
    for (auto& attempt : send_queue_)
        attempt->send_pending_ = false;
    send_queue_.clear();
    // No ack comes on this connection; what producers queued meanwhile is
    // taken by the next turn, at the latest the one the reconnection makes.
    for (auto& [job, attempt] : attempts_)
        set_ack_due(*attempt, false);
}

std::uint64_t ReliableStream::reconnected() {
    disconnected();
    connected_ = true;
    std::uint64_t again = 0;
    for (auto& [job, attempt] : attempts_) {
        again += attempt->rewind();
        schedule(*attempt);
    }
    return again;
}

const std::string* ReliableStream::next_frame() {
    while (!send_queue_.empty()) {
        auto& attempt = *send_queue_.front();
        if (!attempt.dropped_) {
            attempt.next_to_send_ = std::max(attempt.next_to_send_, attempt.first_unacked());
            const auto* frame = attempt.find(attempt.next_to_send_);
            if (frame && !holds(attempt)) {
                if (frame->chunk && batch_chunks_) return chunks_from(attempt, *frame);
                frame_messages_ = 1;
                return &frame->bytes;
            }
        }
        attempt.send_pending_ = false;
        send_queue_.pop_front();
    }
    return nullptr;
}

const std::string* ReliableStream::chunks_from(const AttemptStream& attempt,
                                               const AttemptStream::Frame& first) {
    // A chunks takes fewer bytes than the chunks it carries: its envelope is
    // theirs plus the events' array header.
    std::size_t count = 1;
    std::size_t bytes = first.bytes.size() + 8;
    while (count < proto::kMaxChunksEvents) {
        const auto* next = attempt.find(first.wseq + count);
        if (!next || !next->chunk) break;
        bytes += next->bytes.size();
        if (bytes > proto::kMaxFrameBytes) break;
        ++count;
    }
    frame_messages_ = count;
    if (count == 1) return &first.bytes;
    proto::begin_chunks(attempt.job_, attempt.attempt_, first.wseq, count, frame_);
    for (std::size_t i = 0; i < count; ++i)
        proto::append_chunks_event(proto::chunk_event(attempt.find(first.wseq + i)->bytes), frame_);
    return &frame_;
}

void ReliableStream::sent() {
    if (send_queue_.empty()) return;
    auto& attempt = *send_queue_.front();
    attempt.next_to_send_ += frame_messages_;
    if (batch_chunks_ && !attempt.holds_released_ && acks_watched_) set_ack_due(attempt, true);
}

bool ReliableStream::holds(const AttemptStream& attempt) const noexcept {
    if (!batch_chunks_ || attempt.holds_released_ || !attempt.in_flight()) return false;
    // With acks read lazily, a few messages in flight do not hold the next:
    // holding would need a wake-up to watch for their ack.
    if (!acks_watched_ && attempt.next_to_send_ - attempt.first_unacked() < kMaxInFlightUnwatched)
        return false;
    // Not behind a checkpoint or done/fail, and not past a full batch.
    const auto next = attempt.next_to_send_;
    return attempt.message_wseq_ < next &&
           attempt.frames_.back().wseq - next + 1 < kMaxHeldChunks &&
           attempt.bytes_ < kMaxHeldBytes;
}

std::vector<proto::InflightJob> ReliableStream::inflight() const {
    std::vector<proto::InflightJob> out;
    out.reserve(attempts_.size());
    for (const auto& [job, attempt] : attempts_)
        out.push_back(proto::InflightJob{job, attempt->attempt_, attempt->next_wseq()});
    return out;
}

void ReliableStream::schedule(AttemptStream& attempt) {
    if (!connected_ || attempt.send_pending_) return;
    attempt.send_pending_ = true;
    send_queue_.push_back(attempt.shared_from_this());
}

}  // namespace jobcast::worker
