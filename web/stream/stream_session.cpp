#include "web/stream/stream_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <span>

#include "common/clock.hpp"
#include "common/time_bounds.hpp"
#include "persistence/store.hpp"
#include "web/http/log.hpp"
#include "web/security/audit.hpp"

namespace jobcast::web {

namespace net = boost::asio;

namespace {

// A lane of the hub: a strand on one I/O thread's io_context.
class StrandLane final : public live::LiveLane {
  public:
    explicit StrandLane(const net::io_context::executor_type& io) : strand_(net::make_strand(io)) {}
    void run(std::function<void()> task) override { net::post(strand_, std::move(task)); }

  private:
    net::strand<net::io_context::executor_type> strand_;
};

}  // namespace

StreamLanes::StreamLanes()
    : lanes_([](const net::io_context::executor_type& io) {
          return std::make_shared<StrandLane>(io);
      }) {}

std::chrono::steady_clock::duration seconds_until(std::int64_t unix_seconds) {
    auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        time_bounds::duration_until(unix_seconds, now));
}

StreamSession::StreamSession(std::shared_ptr<StreamingContext> ctx,
                             boost::asio::any_io_executor strand, std::string owner,
                             Transport transport)
    : ctx_(std::move(ctx)),
      strand_(std::move(strand)),
      owner_(std::move(owner)),
      transport_(transport),
      lane_(ctx_->lanes->pick(strand_)),
      live_budget_(ctx_->config.connection_buffer_bytes) {
    ctx_->stats.connections[static_cast<std::size_t>(transport_)].fetch_add(1);
}

StreamSession::~StreamSession() {
    ctx_->stats.connections[static_cast<std::size_t>(transport_)].fetch_sub(1);
    end_all();  // the hub keys entries by address: remove them before it is reused
    ctx_->stats.queued_bytes.fetch_sub(static_cast<std::int64_t>(queued_bytes_));
}

void StreamSession::deliver(const live::PublishedPtr& published) {
    // On the lane's I/O thread this runs inline unless the strand is busy on
    // another thread; on the hub thread (no lane) it is a post.
    net::dispatch(strand_, [self = shared_from_this(), published] { self->on_live(published); });
}

void StreamSession::set_catching_up(Subscription& sub, bool before) {
    bool now = sub.mode() == Subscription::Mode::replay;
    if (now != before) ctx_->stats.catching_up.fetch_add(now ? 1 : -1);
}

void StreamSession::begin_subscription(const std::string& job, std::uint64_t after,
                                       std::uint64_t written) {
    if (closing_) return;
    if (subs_.count(job)) end_subscription(job);  // re-subscribing moves the cursor
    // Hub first, store second: whatever commits from here on is buffered.
    ctx_->hub.subscribe(job, after, shared_from_this(), live_format());
    Subscription& sub =
        subs_.try_emplace(job, job, after, ctx_->config.live_buffer_bytes, &live_budget_)
            .first->second;
    sub.serial = ++subscriptions_begun_;
    sub.reach(written);
    ctx_->stats.catching_up.fetch_add(1);
    if (after > 0) ctx_->stats.resumes.fetch_add(1, std::memory_order_relaxed);
    pump_reads();
}

void StreamSession::end_subscription(const std::string& job) {
    auto it = subs_.find(job);
    if (it == subs_.end()) return;
    if (it->second.mode() == Subscription::Mode::replay) ctx_->stats.catching_up.fetch_sub(1);
    subs_.erase(it);
    ctx_->hub.unsubscribe(job, this);
}

void StreamSession::begin_feed() {
    if (feed_ || closing_) return;
    feed_ = true;
    ctx_->hub.subscribe_feed(owner_, shared_from_this(), live::WireFormat::websocket);
}

void StreamSession::end_feed() {
    if (!feed_) return;
    feed_ = false;
    ctx_->hub.unsubscribe_feed(owner_, this);
}

void StreamSession::end_all() {
    std::vector<std::string> jobs;
    for (const auto& [job, sub] : subs_)
        jobs.push_back(job);
    for (const auto& job : jobs)
        end_subscription(job);
    end_feed();
}

void StreamSession::on_live(const live::PublishedPtr& published) {
    if (closing_) return;
    if (published->feed) {  // a state change for the jobs feed
        if (feed_ && published->owner == owner_ && published->ws_frame) {
            enqueue({published->ws_frame, {}, published->events.size()});
        }
        return;
    }
    auto it = subs_.find(published->job);
    if (it == subs_.end()) return;  // unsubscribed while the batch was on its way
    Subscription& sub = it->second;
    bool before = sub.mode() == Subscription::Mode::replay;
    if (sub.mode() == Subscription::Mode::live && queued_bytes_ >= ctx_->config.max_queue_bytes) {
        // Too far behind: stop queueing live events for it; the store has them.
        sub.fall_behind();
        ctx_->stats.catchups.fetch_add(1, std::memory_order_relaxed);
    }
    for (auto& delivery : sub.on_live(published)) {
        enqueue_live(delivery.published, delivery.skip);
    }
    set_catching_up(sub, before);
    if (sub.mode() == Subscription::Mode::ended) {
        end_subscription(published->job);
        subscription_ended(published->job);
        return;
    }
    // Back to the store (a hole before this batch, or too far behind): read
    // now. A write completing would pump too, but the connection may have
    // nothing queued, and a job that has ended sends nothing more.
    if (sub.wants_read()) pump_reads();
}

std::optional<Job> StreamSession::visible_job(const std::string& id) const {
    try {
        auto job = ctx_->jobs.get(id);
        if (job && job->owner == owner_) return job;
    } catch (const std::exception& e) {
        log().error("event=job_lookup_failed job={} error={}", audit_quote(id),
                    audit_quote(e.what()));
    }
    return std::nullopt;
}

void StreamSession::enqueue_control(std::string frame) {
    if (closing_) return;
    enqueue({std::make_shared<const std::string>(std::move(frame)), {}, 0});
}

void StreamSession::enqueue_live(const live::PublishedPtr& published, std::size_t skip) {
    Outgoing out{live_frame(*published, skip), {}, published->events.size() - skip};
    out.live.push_back({published, skip});
    enqueue(std::move(out));
}

void StreamSession::add_queued(std::int64_t delta) {
    queued_bytes_ = static_cast<std::size_t>(static_cast<std::int64_t>(queued_bytes_) + delta);
    queued_for_reads_.store(queued_bytes_, std::memory_order_relaxed);
    ctx_->stats.queued_bytes.fetch_add(delta, std::memory_order_relaxed);
}

void StreamSession::enqueue(Outgoing out) {
    add_queued(static_cast<std::int64_t>(out.bytes->size()));
    queue_.push_back(std::move(out));
    if (!writing_) start_write();
}

void StreamSession::start_write() {
    coalesce_front();
    writing_ = true;
    write_started_ = std::chrono::steady_clock::now();
    write_front(queue_.front().bytes);
}

// Live frames that queued up behind a write in flight (several commits, of
// one job or of many) are written when the socket is writable again, as one
// frame per job: one write (and one system call) per job instead of one per
// commit, so the more a client lags, the cheaper it is to serve, and no timer
// holds anything back at low load. Only the run of live frames at the front
// is merged (a control or replay frame keeps its place), each job's events
// stay in order, and shared frames stay shared while the client keeps up.
void StreamSession::coalesce_front() {
    constexpr std::size_t kMaxCoalescedBytes = 256 * 1024;
    if (queue_.size() < 2 || queue_.front().live.empty()) return;
    std::size_t n = 0, bytes = 0;
    for (const auto& out : queue_) {
        if (out.live.empty() || (n > 0 && bytes + out.bytes->size() > kMaxCoalescedBytes)) break;
        bytes += out.bytes->size();
        ++n;
    }
    if (n < 2) return;
    // One group per job, in the order of their first frame.
    struct Group {
        Outgoing out;
        std::vector<const std::string*> frames;
    };
    std::vector<Group> groups;
    for (std::size_t i = 0; i < n; ++i) {
        const Outgoing& out = queue_[i];
        const std::string& job = out.live.front().published->job;
        auto group = std::find_if(groups.begin(), groups.end(), [&](const Group& g) {
            return g.out.live.front().published->job == job;
        });
        if (group == groups.end()) group = groups.insert(groups.end(), Group{});
        group->out.live.insert(group->out.live.end(), out.live.begin(), out.live.end());
        group->out.events += out.events;
        group->out.bytes = out.bytes;  // kept as is when it is the job's only frame
        group->frames.push_back(out.bytes.get());
    }
    if (groups.size() == n) return;  // no two frames of one job
    std::size_t merged_bytes = 0;
    for (auto& group : groups) {
        if (group.frames.size() > 1)
            group.out.bytes = coalesced_frame(group.out.live, group.frames);
        merged_bytes += group.out.bytes->size();
    }
    const auto delta = static_cast<std::int64_t>(merged_bytes) - static_cast<std::int64_t>(bytes);
    add_queued(delta);
    // The frames merged from are dropped only now: `frames` pointed into them.
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    for (auto group = groups.rbegin(); group != groups.rend(); ++group)
        queue_.push_front(std::move(group->out));
    ctx_->stats.coalesced_frames.fetch_add(n - groups.size(), std::memory_order_relaxed);
}

bool StreamSession::stalled(std::chrono::steady_clock::time_point now) const {
    return writing_ && now - write_started_ > ctx_->config.stall_timeout;
}

void StreamSession::on_write_done(boost::beast::error_code ec) {
    writing_ = false;
    if (ec || queue_.empty()) return;  // the transport closes the session
    Outgoing done = std::move(queue_.front());
    queue_.pop_front();
    add_queued(-static_cast<std::int64_t>(done.bytes->size()));
    if (done.events) {
        ctx_->stats.delivered[static_cast<std::size_t>(transport_)].fetch_add(
            done.events, std::memory_order_relaxed);
    }
    if (!done.live.empty()) {
        auto now = Clock::system().unix_us();
        const auto written = std::chrono::steady_clock::now();
        for (const auto& slice : done.live) {
            const auto& p = *slice.published;
            if (p.handed_at != std::chrono::steady_clock::time_point{}) {
                const std::uint64_t n = p.events.size() - slice.skip;  // per event
                ctx_->stats.fanout.observe(p.handed_at - p.committed_at, n);
                ctx_->stats.write.observe(written - p.handed_at, n);
            }
            const auto& events = slice.published->events;
            for (std::size_t i = slice.skip; i < events.size(); ++i) {
                if (auto latency = time_bounds::elapsed_since(events[i].ts, now)) {
                    ctx_->stats.latency.observe_us(*latency);
                }
            }
        }
    }
    if (!queue_.empty()) {
        start_write();
    } else {
        queue_drained();
    }
    if (queued_bytes_ <= ctx_->config.max_queue_bytes / 2) backlog_cleared();
    pump_reads();
}

void StreamSession::pump_reads() {
    if (closing_) return;
    // Reads are paced by the client: a page is fetched only while the queue
    // has room, so catching up never grows the broker's memory.
    if (!reads_have_room()) return;
    for (auto& [job, sub] : subs_) {
        if (!sub.wants_read()) continue;
        sub.read_started();
        read_page(job, sub.serial, sub.cursor());
    }
}

// Pages read and on their way to the strand count as queued: a store read
// running on from page to page stops where a new one would not begin. The
// strand queues a page, then takes it off the transit (release), so the
// transit is loaded first (acquire): a page is counted once or twice here,
// never in neither.
bool StreamSession::reads_have_room() const {
    const std::size_t in_transit = pages_in_transit_.load(std::memory_order_acquire);
    return in_transit + queued_for_reads_.load(std::memory_order_relaxed) <=
           ctx_->config.max_queue_bytes / 2;
}

bool StreamSession::read_replay(store::EventLog& log, FrameBuffers& buffers, const std::string& job,
                                std::uint64_t after, std::size_t limit, std::size_t max_bytes,
                                std::optional<client_api::PageFramer::Format> format,
                                ReplayPage& page) {
    Subscription::StorePage& seqs = page.seqs;
    std::optional<client_api::PageFramer> framer;
    if (format) framer.emplace(*format, job, buffers.take());
    const auto totals =
        log.read_into(job, after, limit, max_bytes, [&](std::span<const EventView> events) {
            for (const EventView& event : events) {
                if (seqs.terminal) return;  // nothing follows the end of a stream
                if (seqs.count++ == 0) seqs.first = event.seq;
                seqs.last = event.seq;
                seqs.terminal = live::is_terminal_event(event);
                if (framer) {
                    framer->add(event);
                } else {
                    page.events.push_back(
                        {event.seq, event.kind, event.ts, std::string(event.data)});
                }
            }
        });
    if (framer && seqs.count != 0) page.frame = buffers.share(framer->take());
    // What the frame did not take (an empty page; a one-event frame is built
    // apart) goes back unused.
    if (framer) buffers.give_back(framer->release_buffer());
    page.bytes = page.frame ? page.frame->size() : totals.bytes + 64 * seqs.count;
    return totals.events == limit || totals.bytes >= max_bytes;
}

// One store read runs on from page to page while the queue has room (the
// rule pump_reads applies, with the pages on their way counted in): each
// page goes to the strand as soon as it is framed and the next is read
// meanwhile, so a catching-up reader does not wait for a hand-off to the I/O
// thread and back between pages, which took about as long as reading one.
// It stops at the end of the log, when the queue is half full, once the
// strand has dropped a page of it (the subscription ended or was replaced),
// and after 2 ms: the blocking pool's threads also serve the REST API and
// the subscriptions' checks, and a long replay's next read then queues
// behind them (pump_reads begins it when the strand has the last page).
void StreamSession::read_page(const std::string& job, std::uint64_t serial, std::uint64_t after) {
    auto self = shared_from_this();
    std::size_t limit = ctx_->config.replay_page;
    std::size_t max_bytes = ctx_->config.replay_page_bytes;
    auto go_on = std::make_shared<std::atomic<bool>>(true);
    bool queued = ctx_->run_blocking([self, job, serial, after, limit, max_bytes, go_on,
                                      format = replay_format()]() mutable {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
        for (;;) {
            ReplayPage page;
            bool full = false;
            bool ok = true;
            try {
                full = read_replay(self->ctx_->events, *self->ctx_->frame_buffers, job, after,
                                   limit, max_bytes, format, page);
            } catch (const std::exception&) {
                ok = false;
            }
            const std::size_t bytes = page.bytes;
            self->pages_in_transit_.fetch_add(bytes, std::memory_order_relaxed);
            const bool more = ok && full && page.seqs.count != 0 && !page.seqs.terminal &&
                              go_on->load(std::memory_order_relaxed) && self->reads_have_room() &&
                              std::chrono::steady_clock::now() < until;
            after = page.seqs.last;
            boost::asio::post(self->strand_, [self, job, serial, page = std::move(page), full, ok,
                                              more, bytes, go_on]() mutable {
                if (!ok) {
                    self->retry_read_later(job, serial);
                } else if (!self->on_page(job, serial, std::move(page), full, more)) {
                    go_on->store(false, std::memory_order_relaxed);
                }
                // After the page is queued (release: a read that sees the bytes
                // leave the transit sees them queued; reads_have_room).
                self->pages_in_transit_.fetch_sub(bytes, std::memory_order_release);
                // Its bytes may have held back a read of another subscription
                // (one that nothing else would pump: a stale page wakes no write).
                self->pump_reads();
            });
            if (!more) return;
        }
    });
    if (!queued) retry_read_later(job, serial);  // the read pool is saturated
}

// 50 ms, doubling while the store keeps not giving what the subscription
// waits for (up to 1.6 s): streams waiting on a shard without its replica
// do not each read it 20 times a second.
void StreamSession::retry_read_later(const std::string& job, std::uint64_t serial) {
    const Subscription* sub = current(job, serial);
    if (!sub) return;
    const int waits = std::clamp(sub->reads_later() - 1, 0, 5);
    auto timer = std::make_shared<boost::asio::steady_timer>(
        strand_, std::chrono::milliseconds(50 << waits));
    timer->async_wait([self = shared_from_this(), job, serial, timer](boost::beast::error_code) {
        Subscription* sub = self->current(job, serial);
        if (!sub) return;
        sub->on_page({}, true);  // nothing read; the subscription asks again
        self->pump_reads();
    });
}

Subscription* StreamSession::current(const std::string& job, std::uint64_t serial) {
    auto it = subs_.find(job);
    if (it == subs_.end() || it->second.serial != serial) return nullptr;
    return &it->second;
}

bool StreamSession::on_page(const std::string& job, std::uint64_t serial, ReplayPage page,
                            bool full, bool more) {
    Subscription* current_sub = current(job, serial);
    if (!current_sub || closing_) return false;
    Subscription& sub = *current_sub;
    bool before = sub.mode() == Subscription::Mode::replay;
    auto result = sub.on_page(page.seqs, full);
    // The read goes on with the next page: still pending, no other begins.
    if (more && sub.mode() == Subscription::Mode::replay) sub.read_started();
    if (result.events != 0) {
        ctx_->stats.replayed.fetch_add(result.events, std::memory_order_relaxed);
        auto frame = page.frame ? std::move(page.frame) : page_frame(job, page.events);
        enqueue({std::move(frame), {}, result.events});
    }
    for (auto& delivery : result.live) {
        enqueue_live(delivery.published, delivery.skip);
    }
    set_catching_up(sub, before);
    if (result.ended) {
        end_subscription(job);
        subscription_ended(job);
        return true;
    }
    if (result.read_later) {
        retry_read_later(job, serial);
        return true;
    }
    pump_reads();
    return true;
}

}  // namespace jobcast::web
