#include "cluster/live_publisher.hpp"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "cluster/live_message.hpp"
#include "redis/cluster.hpp"

namespace jobcast::cluster {

std::string encode_job_change(const store::JobEvents& state_events) {
    return encode_live_message(state_events);
}

std::optional<store::JobEvents> decode_job_change(std::string_view payload) {
    auto change = decode_live_message(payload);
    if (!change || change->events.empty() ||
        !std::all_of(change->events.begin(), change->events.end(),
                     [](const Event& e) { return e.kind == EventKind::state; }))
        return std::nullopt;
    return change;
}

LivePublisher::LivePublisher(redis::Cluster& cluster, const Partitions& partitions)
    : cluster_(cluster), partitions_(partitions) {}

void LivePublisher::publish(const store::CommittedBatch& batch) {
    if (!batch.committed) return;
    std::unordered_map<std::string_view, const store::JobEvents*> events_of;
    for (const auto& job_events : batch.events) {
        if (job_events.events.empty()) continue;
        events_of.emplace(job_events.job, &job_events);
        send(partitions_.live_channel(job_events.job), encode_live_message(job_events));
    }
    for (const Job& job : batch.job_changes) {
        auto it = events_of.find(job.id);
        if (it == events_of.end()) continue;  // no state event: nothing the jobs feed shows
        store::JobEvents change{job.id, job.owner, {}};
        for (const Event& event : it->second->events)
            if (event.kind == EventKind::state) change.events.push_back(event);
        if (change.events.empty()) continue;
        send(Partitions::owner_feed_channel(job.owner), encode_job_change(change));
    }
}

void LivePublisher::send(std::string channel, std::string payload) {
    cluster_.async_exec({"SPUBLISH", std::move(channel), std::move(payload)},
                        [counters = counters_](std::error_code ec, const redis::Reply& reply) {
                            auto& counter =
                                ec || reply.is_error() ? counters->failures : counters->publishes;
                            counter.fetch_add(1, std::memory_order_relaxed);
                        });
}

LivePublisherStats LivePublisher::stats() const {
    return {counters_->publishes.load(std::memory_order_relaxed),
            counters_->failures.load(std::memory_order_relaxed)};
}

}  // namespace jobcast::cluster
