#include "live/hub.hpp"

#include <algorithm>

#include "common/thread_name.hpp"
#include "protocol/client_api.hpp"

namespace jobcast::live {

using client_api::sse_text;
using client_api::websocket_frame;

namespace {
// Events per shared frame; larger commits become several frames.
constexpr std::size_t kMaxEventsPerFrame = 256;
}  // namespace

GapFill fill_from(store::EventLog& log, std::size_t page) {
    return [&log, page](const std::string& job, std::uint64_t after, std::uint64_t before) {
        std::vector<Event> out;
        while (after + 1 < before) {
            auto events = log.read(job, after, std::min<std::uint64_t>(page, before - after - 1));
            if (events.empty()) break;
            for (auto& event : events) {
                if (event.seq >= before) return out;
                after = event.seq;
                out.push_back(std::move(event));
            }
        }
        return out;
    };
}

Hub::Hub(LiveFeed& feed, GapFill fill_gap)
    : feed_(feed), fill_gap_(std::move(fill_gap)), thread_([this] {
          name_this_thread("jc-hub");
          run();
      }) {}

Hub::~Hub() {
    stop();
}

void Hub::stop() {
    {
        std::lock_guard lock(queue_mutex_);
        if (stopping_) return;
        stopping_ = true;
    }
    queue_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Hub::publish(std::vector<store::JobEvents> events) {
    enqueue({std::move(events), false, std::chrono::steady_clock::now()});
}

void Hub::publish_remote(std::vector<store::JobEvents> events) {
    // One queue and one dedupe for both: a job's events may come either way
    // (its worker moved to another broker, a remote batch repeats a local one).
    enqueue({std::move(events), true});
}

void Hub::enqueue(Queued queued) {
    drop_unfollowed(queued.batch);
    if (queued.batch.empty()) return;
    {
        std::lock_guard lock(queue_mutex_);
        queue_.push_back(std::move(queued));
        ++enqueued_;
    }
    batches_.fetch_add(1, std::memory_order_relaxed);
    queue_cv_.notify_one();
}

void Hub::drop_unfollowed(std::vector<store::JobEvents>& batch) const {
    std::lock_guard lock(table_mutex_);
    std::erase_if(batch, [&](const store::JobEvents& job_events) {
        return job_events.events.empty() ||
               (!jobs_.contains(job_events.job) && !owners_.contains(job_events.owner));
    });
}

HubStats Hub::stats() const {
    return {remote_events_.load(std::memory_order_relaxed),
            gap_fills_.load(std::memory_order_relaxed), batches_.load(std::memory_order_relaxed)};
}

void Hub::drain() {
    std::unique_lock lock(queue_mutex_);
    auto target = enqueued_;
    drained_cv_.wait(lock, [&] { return done_ >= target || stopping_; });
}

void Hub::run() {
    for (;;) {
        Queued queued;
        {
            std::unique_lock lock(queue_mutex_);
            queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping
            queued = std::move(queue_.front());
            queue_.pop_front();
        }
        fan_out(queued);
        {
            std::lock_guard lock(queue_mutex_);
            ++done_;
        }
        drained_cv_.notify_all();
    }
}

void Hub::hand(const Entry& entry, const PublishedPtr& published, std::vector<LaneBatch>& lanes) {
    if (!entry.lane) {
        if (auto sink = entry.sink.lock()) sink->deliver(published);
        return;
    }
    auto it = std::find_if(lanes.begin(), lanes.end(),
                           [&](const LaneBatch& l) { return l.lane == entry.lane; });
    if (it == lanes.end()) it = lanes.insert(lanes.end(), LaneBatch{entry.lane, {}});
    it->deliveries.emplace_back(entry.sink, published);
}

void Hub::fan_out(Queued& queued) {
    auto& batch = queued.batch;
    const bool remote = queued.remote;
    std::vector<Entry> job_sinks, feed_sinks;
    std::vector<LaneBatch> lanes;
    for (auto& job_events : batch) {
        if (job_events.events.empty()) continue;
        job_sinks.clear();
        feed_sinks.clear();
        std::uint64_t job_delivered = 0, feed_delivered = 0;
        {
            std::lock_guard lock(table_mutex_);
            if (auto it = jobs_.find(job_events.job); it != jobs_.end()) {
                job_sinks = it->second.sinks;
                job_delivered = it->second.delivered;
            }
            if (auto it = owners_.find(job_events.owner); it != owners_.end()) {
                feed_sinks = it->second.sinks;
                if (auto d = it->second.delivered.find(job_events.job);
                    d != it->second.delivered.end()) {
                    feed_delivered = d->second;
                }
            }
        }
        if (job_sinks.empty() && feed_sinks.empty()) continue;
        if (!job_sinks.empty()) dedupe(job_events, job_delivered);
        auto& events = job_events.events;
        if (events.empty()) continue;
        note_delivered(job_events);
        if (remote && !job_sinks.empty())
            remote_events_.fetch_add(events.size(), std::memory_order_relaxed);

        PublishedPtr feed;
        if (!feed_sinks.empty()) {
            auto p = std::make_shared<Published>();
            p->job = job_events.job;
            p->owner = job_events.owner;
            p->feed = true;
            for (const auto& e : events) {
                if (e.kind == EventKind::state && e.seq > feed_delivered) p->events.push_back(e);
            }
            if (!p->events.empty()) {
                p->terminal = is_terminal_event(p->events.back());
                p->ws_frame =
                    std::make_shared<const std::string>(websocket_frame(p->job, p->events));
                p->bytes = p->ws_frame->size();
                feed = std::move(p);
            }
        }

        bool ws = false, sse = false;
        for (const auto& entry : job_sinks) {
            ws |= entry.format == WireFormat::websocket;
            sse |= entry.format == WireFormat::sse;
        }
        // A large commit is cut into frames of at most kMaxEventsPerFrame
        // events, so that one frame never dwarfs a connection's queue bound
        // and the first events reach clients without waiting for the rest.
        for (std::size_t begin = 0; begin < events.size() && !job_sinks.empty();
             begin += kMaxEventsPerFrame) {
            std::size_t end = std::min(events.size(), begin + kMaxEventsPerFrame);
            auto p = std::make_shared<Published>();
            p->job = job_events.job;
            p->owner = job_events.owner;
            p->events.assign(std::make_move_iterator(events.begin() + begin),
                             std::make_move_iterator(events.begin() + end));
            p->terminal = is_terminal_event(p->events.back());
            // Serialized once per format, shared by every subscriber.
            if (ws) {
                p->ws_frame =
                    std::make_shared<const std::string>(websocket_frame(p->job, p->events));
            }
            if (sse)
                p->sse_chunk = std::make_shared<const std::string>(sse_text(p->job, p->events));
            for (const auto& e : p->events)
                p->bytes += e.data.size() + 64;
            if (!remote) {
                p->committed_at = queued.committed_at;
                p->handed_at = std::chrono::steady_clock::now();
            }
            PublishedPtr shared = std::move(p);
            for (const auto& entry : job_sinks)
                hand(entry, shared, lanes);
        }
        if (feed) {
            for (const auto& entry : feed_sinks)
                hand(entry, feed, lanes);
        }
    }
    // One task per lane for the whole commit; a sink gone by the time it
    // runs simply gets nothing.
    for (auto& lane : lanes) {
        lane.lane->run([deliveries = std::move(lane.deliveries)] {
            for (const auto& [weak, published] : deliveries) {
                if (auto sink = weak.lock()) sink->deliver(published);
            }
        });
    }
}

void Hub::dedupe(store::JobEvents& job_events, std::uint64_t delivered) {
    auto& events = job_events.events;
    events.erase(events.begin(), std::find_if(events.begin(), events.end(),
                                              [&](const Event& e) { return e.seq > delivered; }));
    // Nothing handed out yet: each subscriber reads the store up to here itself.
    if (events.empty() || delivered == 0 || events.front().seq == delivered + 1) return;
    // What the store cannot give (yet) stays a hole, which each Subscription
    // fills from the store on its own.
    auto missing = fill_gap_(job_events.job, delivered, events.front().seq);
    if (!missing.empty()) gap_fills_.fetch_add(1, std::memory_order_relaxed);
    events.insert(events.begin(), std::make_move_iterator(missing.begin()),
                  std::make_move_iterator(missing.end()));
}

void Hub::note_delivered(const store::JobEvents& job_events) {
    const Event& last = job_events.events.back();
    bool ended = is_terminal_event(last);
    std::lock_guard lock(table_mutex_);
    if (auto it = jobs_.find(job_events.job); it != jobs_.end()) {
        it->second.delivered = std::max(it->second.delivered, last.seq);
    }
    if (auto it = owners_.find(job_events.owner); it != owners_.end()) {
        if (ended) {
            it->second.delivered.erase(job_events.job);  // nothing follows
        } else {
            auto& delivered = it->second.delivered[job_events.job];
            delivered = std::max(delivered, last.seq);
        }
    }
}

bool Hub::add(std::vector<Entry>& entries, const std::shared_ptr<LiveSink>& sink,
              WireFormat format) {
    for (const auto& e : entries) {
        if (e.key == sink.get()) return false;
    }
    entries.push_back({sink, sink.get(), format, sink->lane()});
    return true;
}

bool Hub::remove(std::vector<Entry>& entries, const LiveSink* sink) {
    auto before = entries.size();
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [&](const Entry& e) { return e.key == sink; }),
                  entries.end());
    return entries.size() != before;
}

void Hub::subscribe(const std::string& job, std::uint64_t after,
                    const std::shared_ptr<LiveSink>& sink, WireFormat format) {
    std::lock_guard lock(table_mutex_);
    auto [it, first] = jobs_.try_emplace(job);
    if (add(it->second.sinks, sink, format)) subscriptions_.fetch_add(1, std::memory_order_relaxed);
    if (first) feed_.watch(job, after);
}

void Hub::unsubscribe(const std::string& job, const LiveSink* sink) {
    std::lock_guard lock(table_mutex_);
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return;
    if (remove(it->second.sinks, sink)) subscriptions_.fetch_sub(1, std::memory_order_relaxed);
    if (it->second.sinks.empty()) {
        jobs_.erase(it);
        feed_.unwatch(job);
    }
}

void Hub::subscribe_feed(const std::string& owner, const std::shared_ptr<LiveSink>& sink,
                         WireFormat format) {
    std::lock_guard lock(table_mutex_);
    auto [it, first] = owners_.try_emplace(owner);
    add(it->second.sinks, sink, format);
    if (first) feed_.watch_owner(owner);
}

void Hub::unsubscribe_feed(const std::string& owner, const LiveSink* sink) {
    std::lock_guard lock(table_mutex_);
    auto it = owners_.find(owner);
    if (it == owners_.end()) return;
    remove(it->second.sinks, sink);
    if (it->second.sinks.empty()) {
        owners_.erase(it);
        feed_.unwatch_owner(owner);
    }
}

}  // namespace jobcast::live
