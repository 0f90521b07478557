#include "web/stream/keepalive_sweep.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

namespace jobcast::web {

namespace net = boost::asio;

KeepaliveSweeps::KeepaliveSweeps(std::size_t count, std::chrono::milliseconds interval)
    : sweeps_(count, [interval](const net::io_context::executor_type& io) {
          return std::make_shared<KeepaliveSweep>(net::make_strand(io), interval);
      }) {}

void KeepaliveSweeps::release() {
    for (auto& sweep : sweeps_.release())
        sweep->stop();
}

KeepaliveSweep::KeepaliveSweep(const net::any_io_executor& executor,
                               std::chrono::milliseconds interval)
    : tick_length_(std::max<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(1), std::chrono::steady_clock::duration(interval) / kSlots)),
      timer_(executor),
      slots_(kSlots + 1) {}

void KeepaliveSweep::schedule(std::weak_ptr<KeepaliveMember> member, std::uint64_t ticks) {
    ticks = std::clamp<std::uint64_t>(ticks, 1, kSlots);
    bool start = false;
    {
        std::lock_guard lock(mutex_);
        if (stopped_) return;
        // The slot `ticks` after the current one: never the current one itself
        // (kSlots + 1 slots), which has been walked already.
        slots_[(tick() + ticks) % slots_.size()].push_back(std::move(member));
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
    {
        std::lock_guard lock(mutex_);
        const auto now = tick() + 1;
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
    for (auto& weak : due) {
        if (auto member = weak.lock()) member->keepalive_due();
    }
}

}  // namespace jobcast::web
