#include "broker/memory_job_queue.hpp"

#include <algorithm>

namespace jobcast::broker {

void MemoryJobQueue::enqueue(QueuedJob job) {
    leases_.erase(job.job);
    if (queued_index_.count(job.job)) return;
    queues_[job.type].insert(job);
    queued_index_.emplace(job.job, std::move(job));
}

void MemoryJobQueue::adopt(const std::string& job, int attempt, const std::string& worker) {
    Lease& lease = leases_[job];
    lease = Lease{};
    lease.worker = worker;
    lease.attempt = attempt;
    terms_.reloaded(lease);
    lease.key_known = false;  // the store keeps the worker's name only
}

void MemoryJobQueue::finished(const std::string& job) {
    unqueue(job);
    leases_.erase(job);
}

void MemoryJobQueue::unqueue(const std::string& job) {
    auto q = queued_index_.find(job);
    if (q == queued_index_.end()) return;
    auto type = queues_.find(q->second.type);
    if (type != queues_.end()) {
        type->second.erase(q->second);
        if (type->second.empty()) queues_.erase(type);
    }
    queued_index_.erase(q);
}

std::vector<QueuedJob> MemoryJobQueue::queued() const {
    std::vector<QueuedJob> out;
    out.reserve(queued_index_.size());
    for (const auto& [type, jobs] : queues_)
        out.insert(out.end(), jobs.begin(), jobs.end());
    return out;
}

std::vector<std::string> MemoryJobQueue::take(const std::vector<std::string>& types, std::size_t n,
                                              const WorkerRef& worker) {
    std::vector<std::string> out;
    while (out.size() < n) {
        decltype(queues_)::iterator best = queues_.end();
        for (const auto& type : types) {
            auto it = queues_.find(type);
            if (it == queues_.end()) continue;
            if (best == queues_.end() || Order{}(*it->second.begin(), *best->second.begin()))
                best = it;
        }
        if (best == queues_.end()) break;
        auto head = best->second.begin();
        const std::string job = head->job;
        best->second.erase(head);
        if (best->second.empty()) queues_.erase(best);
        queued_index_.erase(job);
        Lease& lease = leases_[job];
        lease = Lease{};
        lease.peer = worker.peer;
        lease.worker = worker.name;
        lease.key = worker.key;
        out.push_back(job);
    }
    return out;
}

void MemoryJobQueue::leased(const std::string& job, int attempt) {
    auto it = leases_.find(job);
    if (it != leases_.end()) it->second.attempt = attempt;
}

void MemoryJobQueue::assign_sent(const std::string& job, std::uint64_t number) {
    auto it = leases_.find(job);
    if (it != leases_.end()) terms_.assign_sent(it->second, number);
}

NameHold MemoryJobQueue::name_hold(const std::string& name, const PeerId& except,
                                   const std::string& key) const {
    NameHold hold;
    for (const auto& [job, lease] : leases_) {
        if (lease.lost || lease.worker != name || (!lease.peer.empty() && lease.peer == except))
            continue;
        hold.held = true;
        if (!lease.key_known) {
            hold.unknown_key = true;
        } else if (lease.key != key) {
            hold.other_key = true;
        }
    }
    return hold;
}

Claim MemoryJobQueue::claim(const WorkerRef& worker, const Inflight& inflight,
                            const std::optional<PeerId>& previous) {
    Claim out;
    std::set<std::string> kept;
    for (const auto& [job, attempt] : inflight) {
        auto it = leases_.find(job);
        if (it != leases_.end() &&
            LeaseTerms::claimable(it->second, worker.name, attempt, previous)) {
            terms_.claim(it->second, worker.peer, worker.key);
            kept.insert(job);
            out.resumed.push_back(job);
        } else {
            out.refused.emplace_back(job, attempt);
        }
    }
    if (previous) out.lost = lose_except(*previous, kept);
    return out;
}

std::vector<LostLease> MemoryJobQueue::lose_except(const PeerId& worker,
                                                   const std::set<std::string>& kept) {
    std::vector<LostLease> lost;
    for (auto it = leases_.begin(); it != leases_.end();) {
        Lease& lease = it->second;
        if (lease.peer != worker || kept.count(it->first)) {
            ++it;
        } else if (lease.attempt > 0) {
            lost.push_back({it->first, lease.attempt, lease.worker});
            // The lease stays, held by no one, until the requeue commits; a
            // chunk from the old connection is refused meanwhile.
            lease.peer.clear();
            lease.lost = true;
            ++it;
        } else {
            it = leases_.erase(it);  // a reservation whose LeaseJob is in flight
        }
    }
    return lost;
}

std::vector<LostLease> MemoryJobQueue::lose(const PeerId& worker) {
    return lose_except(worker, {});
}

std::size_t MemoryJobQueue::orphan(const PeerId& worker) {
    std::size_t orphaned = 0;
    for (auto it = leases_.begin(); it != leases_.end();) {
        Lease& lease = it->second;
        if (lease.peer != worker) {
            ++it;
        } else if (lease.attempt == 0) {
            it = leases_.erase(it);  // a reservation: the lease result finds no holder
        } else {
            if (!lease.lost) {
                terms_.orphan(lease);  // its chunks are refused until it is claimed
                ++orphaned;
            }
            ++it;
        }
    }
    return orphaned;
}

std::vector<LostLease> MemoryJobQueue::renew(const PeerId& worker, const Inflight& inflight,
                                             std::uint64_t assigned) {
    std::vector<LostLease> lost;
    for (auto& [job, lease] : leases_) {
        // A reservation whose LeaseJob is being written is not reconciled.
        if (lease.peer != worker || lease.attempt == 0 || lease.lost) continue;
        const bool listed = std::find(inflight.begin(), inflight.end(),
                                      std::pair{job, lease.attempt}) != inflight.end();
        const LeaseReport report = terms_.report(lease, listed, assigned);
        if (report == LeaseReport::kept) continue;
        lost.push_back({job, lease.attempt, lease.worker, report == LeaseReport::never_received});
        // As for a silent worker: held by no one until the requeue commits.
        lease.peer.clear();
        lease.lost = true;
    }
    return lost;
}

std::vector<LostLease> MemoryJobQueue::expire() {
    std::vector<LostLease> lost;
    for (auto& [job, lease] : leases_) {
        if (terms_.orphan_expired(lease)) {
            lost.push_back({job, lease.attempt, lease.worker});
            lease.lost = true;  // reported once
        }
    }
    return lost;
}

void MemoryJobQueue::pause(Steady::duration away) {
    for (auto& [job, lease] : leases_)
        terms_.pause(lease, away);
}

std::optional<PeerId> MemoryJobQueue::holder(const std::string& job, int attempt) const {
    auto it = leases_.find(job);
    if (it == leases_.end() || it->second.attempt != attempt || it->second.peer.empty()) {
        return std::nullopt;
    }
    return it->second.peer;
}

std::optional<PeerId> MemoryJobQueue::holder(const std::string& job) const {
    auto it = leases_.find(job);
    if (it == leases_.end() || it->second.peer.empty()) return std::nullopt;
    return it->second.peer;
}

Inflight MemoryJobQueue::held() const {
    Inflight out;
    for (const auto& [job, lease] : leases_)
        if (lease.attempt > 0 && !lease.lost && !lease.peer.empty())
            out.emplace_back(job, lease.attempt);
    return out;
}

bool MemoryJobQueue::holds(const std::string& job, int attempt) const {
    auto it = leases_.find(job);
    return it != leases_.end() && it->second.attempt == attempt && !it->second.lost;
}

}  // namespace jobcast::broker
