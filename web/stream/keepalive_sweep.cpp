#include "web/stream/keepalive_sweep.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

namespace jobcast::web {

namespace net = boost::asio;

namespace {
constexpr std::int64_t kMaxRatio = 256;  // 4,097 buckets at most
}

KeepaliveSweeps::KeepaliveSweeps(std::chrono::milliseconds keepalive,
                                 std::chrono::milliseconds ping_interval)
    : sweeps_([keepalive, ping_interval](const net::io_context::executor_type& io) {
          // The longer one is at most kMaxRatio times the tick interval, so
          // the wheel stays small (precision gives way beyond that).
          const auto longer = std::max<std::int64_t>(1, std::max(keepalive, ping_interval).count());
          const auto shorter = std::max<std::int64_t>(
              {1, std::min(keepalive, ping_interval).count(), longer / kMaxRatio});
          // The longer one in ticks, rounded up, and one more for rounding.
          const auto horizon = static_cast<std::uint64_t>(
              (longer * static_cast<std::int64_t>(KeepaliveSweep::kSlots) + shorter - 1) / shorter +
              1);
          return std::make_shared<KeepaliveSweep>(net::make_strand(io),
                                                  std::chrono::milliseconds(shorter), horizon);
      }) {}

void KeepaliveSweeps::release() {
    for (auto& sweep : sweeps_.release())
        sweep->stop();
}

KeepaliveSweep::KeepaliveSweep(const net::any_io_executor& executor,
                               std::chrono::milliseconds interval, std::uint64_t horizon)
    : tick_length_(std::max<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(1), std::chrono::steady_clock::duration(interval) / kSlots)),
      horizon_(std::max(horizon, kSlots)),
      timer_(executor),
      slots_(horizon_ + 1) {}

std::uint64_t KeepaliveSweep::ticks_for(std::chrono::milliseconds duration) const {
    const auto ticks =
        (std::chrono::steady_clock::duration(duration) + tick_length_ / 2) / tick_length_;
    return std::clamp<std::uint64_t>(static_cast<std::uint64_t>(std::max<std::int64_t>(ticks, 0)),
                                     1, horizon_);
}

void KeepaliveSweep::schedule(const std::shared_ptr<KeepaliveMember>& member, std::uint64_t ticks) {
    ticks = std::clamp<std::uint64_t>(ticks, 1, horizon_);
    bool start = false;
    {
        std::lock_guard lock(mutex_);
        if (stopped_) return;
        // The slot `ticks` after the current one: never the current one itself
        // (horizon + 1 slots), which has been walked already.
        const auto due = tick() + ticks;
        member->due_tick_.store(due, std::memory_order_relaxed);
        slots_[due % slots_.size()].push_back(member);
        ++members_;
        start = !armed_;
        armed_ = true;
    }
    if (start) {
        net::post(timer_.get_executor(), [self = shared_from_this()] {
            self->timer_.expires_after(self->tick_length_);
            self->wait();
        });
    }
}

void KeepaliveSweep::stop() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    for (auto& slot : slots_)
        slot.clear();
    members_ = 0;
}

void KeepaliveSweep::wait() {
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->on_tick();
    });
}

void KeepaliveSweep::on_tick() {
    std::vector<std::weak_ptr<KeepaliveMember>> due;
    bool more = false;
    std::uint64_t now = 0;
    {
        std::lock_guard lock(mutex_);
        now = tick() + 1;
        tick_.store(now, std::memory_order_relaxed);
        due.swap(slots_[now % slots_.size()]);
        members_ -= due.size();
        // Members scheduled from here on (the walk below reschedules most
        // of these) start the timer again if it stops now.
        more = members_ > 0 && !stopped_;
        armed_ = more;
    }
    // On the next tick's deadline, not a tick after this one ran: the wheel
    // keeps time however long a walk takes.
    if (more) {
        timer_.expires_at(timer_.expiry() + tick_length_);
        wait();
    }
    // A member rescheduled since (sooner) is visited at its new tick only.
    for (auto& weak : due) {
        if (auto member = weak.lock(); member && member->due_tick() == now)
            member->keepalive_due(now);
    }
}

}  // namespace jobcast::web
