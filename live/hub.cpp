#include "live/hub.hpp"

#include <algorithm>

#include "protocol/json.hpp"

namespace jobcast::live {

namespace {
// Events per shared frame; larger commits become several frames.
constexpr std::size_t kMaxEventsPerFrame = 256;
}  // namespace

std::string websocket_frame(const std::string& job, const std::vector<Event>& events,
                            std::size_t skip) {
    return websocket_frame(job, std::vector<EventSlice>{{&events, skip}});
}

std::string websocket_frame(const std::string& job, const std::vector<EventSlice>& slices) {
    std::size_t n = 0, reserve = 64;
    const Event* only = nullptr;
    for (const auto& slice : slices) {
        for (std::size_t i = slice.skip; i < slice.events->size(); ++i) {
            only = &(*slice.events)[i];
            reserve += only->data.size() + 64;
            ++n;
        }
    }
    if (n == 1) {
        // {"type":"event","job":ID,"seq":N,"kind":K,"ts":T,"data":{...}}
        return json::event_frame(job, *only);
    }
    std::string out;
    out.reserve(reserve);
    out.append(R"({"type":"events","job":)");
    json::append_quoted(out, job);
    out.append(R"(,"events":[)");
    bool first = true;
    for (const auto& slice : slices) {
        for (std::size_t i = slice.skip; i < slice.events->size(); ++i) {
            if (!first) out.push_back(',');
            first = false;
            json::append_event_object(out, (*slice.events)[i]);
        }
    }
    out.append("]}");
    return out;
}

std::string sse_text(const std::string& job, const std::vector<Event>& events, std::size_t skip) {
    std::string out;
    for (std::size_t i = skip; i < events.size(); ++i) {
        const Event& e = events[i];
        out.append("id: ").append(std::to_string(e.seq));
        out.append("\nevent: ").append(to_string(e.kind));
        out.append("\ndata: ");
        json::append_event_object(out, e);
        out.append("\n\n");
    }
    return out;
}

Hub::Hub() : thread_([this] { run(); }) {}

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
    if (events.empty()) return;
    {
        std::lock_guard lock(queue_mutex_);
        queue_.push_back(std::move(events));
        ++enqueued_;
    }
    queue_cv_.notify_one();
}

void Hub::drain() {
    std::unique_lock lock(queue_mutex_);
    auto target = enqueued_;
    drained_cv_.wait(lock, [&] { return done_ >= target || stopping_; });
}

void Hub::run() {
    for (;;) {
        std::vector<store::JobEvents> batch;
        {
            std::unique_lock lock(queue_mutex_);
            queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping
            batch = std::move(queue_.front());
            queue_.pop_front();
        }
        fan_out(batch);
        {
            std::lock_guard lock(queue_mutex_);
            ++done_;
        }
        drained_cv_.notify_all();
    }
}

void Hub::fan_out(std::vector<store::JobEvents>& batch) {
    std::vector<Entry> job_sinks, feed_sinks;
    for (auto& job_events : batch) {
        if (job_events.events.empty()) continue;
        job_sinks.clear();
        feed_sinks.clear();
        {
            std::lock_guard lock(table_mutex_);
            if (auto it = jobs_.find(job_events.job); it != jobs_.end()) job_sinks = it->second;
            if (auto it = feeds_.find(job_events.owner); it != feeds_.end()) {
                feed_sinks = it->second;
            }
        }
        if (job_sinks.empty() && feed_sinks.empty()) continue;

        bool has_state = std::any_of(job_events.events.begin(), job_events.events.end(),
                                     [](const Event& e) { return e.kind == EventKind::state; });
        PublishedPtr feed;
        if (!feed_sinks.empty() && has_state) {
            auto p = std::make_shared<Published>();
            p->job = job_events.job;
            p->owner = job_events.owner;
            p->feed = true;
            for (const auto& e : job_events.events) {
                if (e.kind == EventKind::state) p->events.push_back(e);
            }
            p->terminal = is_terminal_event(p->events.back());
            p->ws_frame = std::make_shared<const std::string>(websocket_frame(p->job, p->events));
            p->bytes = p->ws_frame->size();
            feed = std::move(p);
        }

        bool ws = false, sse = false;
        for (const auto& entry : job_sinks) {
            ws |= entry.format == WireFormat::websocket;
            sse |= entry.format == WireFormat::sse;
        }
        // A large commit is cut into frames of at most kMaxEventsPerFrame
        // events, so that one frame never dwarfs a connection's queue bound
        // and the first events reach clients without waiting for the rest.
        auto& events = job_events.events;
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
            PublishedPtr shared = std::move(p);
            for (const auto& entry : job_sinks) {
                if (auto sink = entry.sink.lock()) sink->deliver(shared);
            }
        }
        if (feed) {
            for (const auto& entry : feed_sinks) {
                if (auto sink = entry.sink.lock()) sink->deliver(feed);
            }
        }
    }
}

void Hub::add(Table& table, const std::string& key, const std::shared_ptr<LiveSink>& sink,
              WireFormat format) {
    auto& entries = table[key];
    for (const auto& e : entries) {
        if (e.key == sink.get()) return;
    }
    entries.push_back({sink, sink.get(), format});
}

bool Hub::remove(Table& table, const std::string& key, const LiveSink* sink) {
    auto it = table.find(key);
    if (it == table.end()) return false;
    auto& entries = it->second;
    auto before = entries.size();
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [&](const Entry& e) { return e.key == sink; }),
                  entries.end());
    bool removed = entries.size() != before;
    if (entries.empty()) table.erase(it);
    return removed;
}

void Hub::subscribe(const std::string& job, const std::shared_ptr<LiveSink>& sink,
                    WireFormat format) {
    std::lock_guard lock(table_mutex_);
    auto before = jobs_.count(job) ? jobs_[job].size() : 0;
    add(jobs_, job, sink, format);
    if (jobs_[job].size() != before) subscriptions_.fetch_add(1, std::memory_order_relaxed);
}

void Hub::unsubscribe(const std::string& job, const LiveSink* sink) {
    std::lock_guard lock(table_mutex_);
    if (remove(jobs_, job, sink)) subscriptions_.fetch_sub(1, std::memory_order_relaxed);
}

void Hub::subscribe_feed(const std::string& owner, const std::shared_ptr<LiveSink>& sink,
                         WireFormat format) {
    std::lock_guard lock(table_mutex_);
    add(feeds_, owner, sink, format);
}

void Hub::unsubscribe_feed(const std::string& owner, const LiveSink* sink) {
    std::lock_guard lock(table_mutex_);
    remove(feeds_, owner, sink);
}

}  // namespace jobcast::live
