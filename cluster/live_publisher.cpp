#include "cluster/live_publisher.hpp"

#include <algorithm>
#include <set>
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

namespace {
// A hint's payload: its kind's letter, ':', its subject.
constexpr char kReady = 'r';
constexpr char kCancel = 'c';
}  // namespace

std::string hint_channel(const Partitions& partitions, std::uint32_t partition) {
    return partitions.prefix(partition) + "hints";
}

std::string encode_hint(const Hint& hint) {
    std::string payload(1, hint.kind == Hint::Kind::ready ? kReady : kCancel);
    payload += ':';
    payload += hint.subject;
    return payload;
}

std::optional<Hint> decode_hint(std::string_view payload) {
    if (payload.size() < 3 || payload[1] != ':') return std::nullopt;
    Hint hint;
    if (payload[0] == kReady) {
        hint.kind = Hint::Kind::ready;
    } else if (payload[0] == kCancel) {
        hint.kind = Hint::Kind::cancel;
    } else {
        return std::nullopt;
    }
    hint.subject = payload.substr(2);
    return hint;
}

LivePublisher::LivePublisher(redis::Cluster& cluster, const Partitions& partitions)
    : cluster_(cluster), partitions_(partitions) {}

void LivePublisher::publish(const store::CommittedBatch& batch) {
    if (!batch.committed) return;
    std::unordered_map<std::string_view, const store::JobEvents*> events_of;
    for (const auto& job_events : batch.events) {
        if (job_events.events.empty()) continue;
        events_of.emplace(job_events.job, &job_events);
        send(partitions_.live_channel(job_events.job), encode_live_message(job_events),
             &Counters::publishes);
    }
    // One ready hint per partition and type is enough for a round: a feeder
    // reserves every job of the type it has room for.
    std::set<std::pair<std::uint32_t, std::string_view>> ready;
    for (const Job& job : batch.job_changes) {
        if (job.state == JobState::queued) {
            ready.emplace(partitions_.of(job.id), job.type);
        } else if (job.state == JobState::running && job.cancel_requested) {
            send_hint(partitions_.of(job.id), {Hint::Kind::cancel, job.id});
        }
        auto it = events_of.find(job.id);
        if (it == events_of.end()) continue;  // no state event: nothing the jobs feed shows
        store::JobEvents change{job.id, job.owner, {}};
        for (const Event& event : it->second->events)
            if (event.kind == EventKind::state) change.events.push_back(event);
        if (change.events.empty()) continue;
        send(Partitions::owner_feed_channel(job.owner), encode_job_change(change),
             &Counters::publishes);
    }
    for (const auto& [partition, type] : ready)
        send_hint(partition, {Hint::Kind::ready, std::string(type)});
}

void LivePublisher::send_hint(std::uint32_t partition, Hint hint) {
    auto counter =
        hint.kind == Hint::Kind::ready ? &Counters::ready_hints : &Counters::cancel_hints;
    send(hint_channel(partitions_, partition), encode_hint(hint), counter);
}

void LivePublisher::send(std::string channel, std::string payload,
                         std::atomic<std::uint64_t> Counters::*sent) {
    cluster_.async_exec(
        {"SPUBLISH", std::move(channel), std::move(payload)},
        [counters = counters_, sent](std::error_code ec, const redis::Reply& reply) {
            auto& counter = ec || reply.is_error() ? counters->failures : (*counters).*sent;
            counter.fetch_add(1, std::memory_order_relaxed);
        });
}

LivePublisherStats LivePublisher::stats() const {
    return {counters_->publishes.load(std::memory_order_relaxed),
            counters_->failures.load(std::memory_order_relaxed),
            counters_->ready_hints.load(std::memory_order_relaxed),
            counters_->cancel_hints.load(std::memory_order_relaxed)};
}

}  // namespace jobcast::cluster
