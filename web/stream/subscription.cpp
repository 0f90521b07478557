#include "web/stream/subscription.hpp"

#include <algorithm>

namespace jobcast::web {

bool stream_already_ended(const Job& job, std::uint64_t after, std::uint64_t written_seq) {
    return is_terminal(job.state) && after >= std::max(job.last_seq, written_seq);
}

bool after_beyond_log(const Job& job, std::uint64_t after, std::uint64_t written_seq) {
    return after > std::max(job.last_seq, written_seq);
}

bool LiveBufferBudget::take(std::size_t bytes) {
    if (bytes > limit_ - used_) return false;
    used_ += bytes;
    return true;
}

Subscription::Subscription(std::string job, std::uint64_t after, std::size_t buffer_limit,
                           LiveBufferBudget* budget)
    : job_(std::move(job)), cursor_(after), buffer_limit_(buffer_limit), budget_(budget) {}

Subscription::~Subscription() {
    drop_buffer();
}

void Subscription::drop_buffer() {
    if (budget_) budget_->give_back(buffer_bytes_);
    buffer_.clear();
    buffer_bytes_ = 0;
}

std::vector<Delivery> Subscription::on_live(const live::PublishedPtr& published) {
    std::vector<Delivery> out;
    if (published->events.empty() || published->last_seq() <= cursor_) return out;
    switch (mode_) {
        case Mode::ended:
            return out;
        case Mode::replay:
            if (!overflowed_ && (buffer_bytes_ + published->bytes > buffer_limit_ ||
                                 (budget_ && !budget_->take(published->bytes)))) {
                // Over this subscription's limit or the connection's budget:
                // keep nothing, the replay reads these from the store.
                drop_buffer();
                overflowed_ = true;
            }
            if (overflowed_) {  // the store has it; the replay will get there
                let_go_ = std::max(let_go_, published->last_seq());
                return out;
            }
            buffer_bytes_ += published->bytes;
            buffer_.push_back(published);
            return out;
        case Mode::live:
            if (published->first_seq() > cursor_ + 1) {
                // A hole between what was sent and this batch cannot be filled
                // from live: read it from the store.
                fall_behind();
                return on_live(published);
            }
            out.push_back(
                {published, static_cast<std::size_t>(cursor_ + 1 - published->first_seq())});
            cursor_ = published->last_seq();
            if (published->terminal) mode_ = Mode::ended;
            return out;
    }
    return out;
}

void Subscription::fall_behind() {
    if (mode_ != Mode::live) return;
    mode_ = Mode::replay;
    // Live events from now on are not kept (the buffer starts overflowed): the
    // replay reads them from the store, then buffers afresh before its last read.
    overflowed_ = true;
    drop_buffer();
}

Subscription::PageResult Subscription::on_page(const StorePage& page, bool full) {
    PageResult result;
    read_pending_ = false;
    if (mode_ != Mode::replay) return result;
    // Read after the cursor, which stays put while the read is pending: the
    // page starts right after it (the log has no holes).
    if (page.count != 0 && page.first == cursor_ + 1) {
        cursor_ = page.last;
        reads_later_ = 0;
        result.events = page.count;
        if (page.terminal) {
            mode_ = Mode::ended;
            result.ended = true;
            drop_buffer();
            return result;
        }
    }
    if (full) return result;  // more to read
    if (overflowed_) {
        // Caught up with the store, but live events were dropped meanwhile:
        // buffer from now on and read once more (the Clone switch, again).
        overflowed_ = false;
        return result;
    }
    if (cursor_ < let_go_) {
        // Events dropped from live, or written before the subscription began
        // (reach), that the store does not give yet. One node never gets here
        // (what is published is committed, and the read after the drop sees
        // it); in cluster mode this broker may be unable to confirm what
        // another one published, for as long as a shard has no replica.
        read_pending_ = true;
        result.read_later = true;
        if (result.events == 0) ++reads_later_;
        return result;
    }
    mode_ = Mode::live;
    std::deque<live::PublishedPtr> pending;
    pending.swap(buffer_);
    if (budget_) budget_->give_back(buffer_bytes_);
    buffer_bytes_ = 0;
    for (const auto& published : pending) {
        for (auto& delivery : on_live(published))
            result.live.push_back(std::move(delivery));
        if (mode_ == Mode::ended) {
            result.ended = true;
            break;
        }
        if (mode_ == Mode::replay) break;  // a hole: back to the store
    }
    return result;
}

}  // namespace jobcast::web
