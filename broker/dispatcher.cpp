#include "broker/dispatcher.hpp"

#include <algorithm>

namespace jobcast::broker {

std::optional<std::string> Dispatcher::identity_refusal(const PeerId& peer, const std::string& name,
                                                        const WorkerIdentity& identity) const {
    const bool curve = !identity.key.empty();
    bool held = false;
    bool other_key = false;    // held under a key other than this hello's
    bool unknown_key = false;  // held by leases reloaded from the store
    for (const auto& [id, w] : workers_) {
        if (id == peer || w.name != name) continue;
        held = true;
        if (w.key != identity.key) other_key = true;
    }
    for (const auto& [job, lease] : leases_) {
        if (lease.lost || lease.worker != name || (!lease.peer.empty() && lease.peer == peer))
            continue;
        held = true;
        if (!lease.key_known) {
            unknown_key = true;
        } else if (lease.key != identity.key) {
            other_key = true;
        }
    }
    if (!held) return std::nullopt;
    if (curve && other_key) return "worker name is held by another CURVE key";
    if (identity.session_ok) return std::nullopt;
    if (curve && !unknown_key) return std::nullopt;  // the same key holds all of it
    return "worker name is in use and the hello did not carry its session";
}

bool Dispatcher::name_held(const std::string& name) const {
    for (const auto& [id, w] : workers_)
        if (w.name == name) return true;
    for (const auto& [job, lease] : leases_)
        if (!lease.lost && lease.worker == name) return true;
    return false;
}

HelloOutcome Dispatcher::hello(const PeerId& peer, const std::string& name,
                               const std::vector<std::string>& types, int capacity,
                               const std::vector<std::pair<std::string, int>>& inflight,
                               const WorkerIdentity& identity) {
    HelloOutcome out;
    if (auto refusal = identity_refusal(peer, name, identity)) {
        out.refused_identity = true;
        out.refusal = std::move(*refusal);
        return out;
    }
    // The same worker reconnecting (new socket, new routing id) replaces its
    // previous connection; leases it still runs move over, the others end.
    std::optional<PeerId> previous;
    for (const auto& [id, w] : workers_) {
        if (id != peer && w.name == name) previous = id;
    }
    if (workers_.count(peer)) previous = peer;  // a second hello on the same connection

    Worker fresh;
    fresh.name = name;
    fresh.key = identity.key;
    fresh.types = types;
    fresh.capacity = std::max(1, capacity);
    fresh.last_seen = terms_.now();

    std::unordered_set<std::string> kept;
    for (const auto& [job, attempt] : inflight) {
        auto it = leases_.find(job);
        if (it != leases_.end() && LeaseTerms::claimable(it->second, name, attempt, previous)) {
            terms_.claim(it->second, peer, identity.key);
            fresh.jobs.insert(job);
            kept.insert(job);
            out.resumed.push_back(job);
        } else {
            out.refused.emplace_back(job, attempt);
        }
    }

    if (previous) {
        auto old = workers_.find(*previous);
        for (const auto& job : old->second.jobs) {
            if (kept.count(job)) continue;
            auto lease = leases_.find(job);
            if (lease == leases_.end()) continue;
            if (lease->second.attempt > 0) {
                out.lost.push_back({job, lease->second.attempt, lease->second.worker});
                lease->second.peer.clear();  // no holder: its chunks are refused now
                lease->second.lost = true;
            } else {
                leases_.erase(lease);  // a reservation whose LeaseJob is in flight
            }
        }
        workers_.erase(old);
        if (*previous != peer) out.replaced = previous;
    }
    workers_[peer] = std::move(fresh);
    return out;
}

void Dispatcher::seen(const PeerId& peer) {
    auto it = workers_.find(peer);
    if (it != workers_.end()) it->second.last_seen = terms_.now();
}

std::vector<LostLease> Dispatcher::remove_worker(const PeerId& peer) {
    std::vector<LostLease> lost;
    auto it = workers_.find(peer);
    if (it == workers_.end()) return lost;
    for (const auto& job : it->second.jobs) {
        auto lease = leases_.find(job);
        if (lease == leases_.end()) continue;
        if (lease->second.attempt > 0) {
            lost.push_back({job, lease->second.attempt, lease->second.worker});
            // The lease stays, held by no one, until the requeue commits; a
            // chunk from the old connection is refused meanwhile.
            lease->second.peer.clear();
            lease->second.lost = true;
        } else {
            leases_.erase(lease);
        }
    }
    workers_.erase(it);
    return lost;
}

std::size_t Dispatcher::disconnect(const PeerId& peer) {
    auto it = workers_.find(peer);
    if (it == workers_.end()) return 0;
    std::size_t orphaned = 0;
    for (const auto& job : it->second.jobs) {
        auto lease = leases_.find(job);
        if (lease == leases_.end()) continue;
        if (lease->second.attempt > 0 && !lease->second.lost) {
            terms_.orphan(lease->second);  // its chunks are refused until it is claimed
            ++orphaned;
        } else if (lease->second.attempt == 0) {
            leases_.erase(lease);  // a reservation: the lease result finds no holder
        }
    }
    workers_.erase(it);
    return orphaned;
}

std::vector<LostLease> Dispatcher::expire() {
    std::vector<LostLease> lost;
    std::vector<PeerId> silent;
    for (const auto& [peer, w] : workers_) {
        if (terms_.silent(w.last_seen)) silent.push_back(peer);
    }
    for (const auto& peer : silent) {
        auto more = remove_worker(peer);
        lost.insert(lost.end(), more.begin(), more.end());
    }
    for (auto& [job, lease] : leases_) {
        if (terms_.orphan_expired(lease)) {
            lost.push_back({job, lease.attempt, lease.worker});
            lease.lost = true;  // reported once
        }
    }
    return lost;
}

void Dispatcher::pause(Steady::duration away) {
    for (auto& [peer, w] : workers_)
        w.last_seen += away;
    for (auto& [job, lease] : leases_)
        terms_.pause(lease, away);
}

std::vector<PeerId> Dispatcher::peers() const {
    std::vector<PeerId> out;
    out.reserve(workers_.size());
    for (const auto& [peer, w] : workers_)
        out.push_back(peer);
    return out;
}

std::string Dispatcher::worker_name(const PeerId& peer) const {
    auto it = workers_.find(peer);
    return it == workers_.end() ? std::string() : it->second.name;
}

void Dispatcher::enqueue(QueuedJob job) {
    if (queued_index_.count(job.job) || leases_.count(job.job)) return;
    queues_[job.type].insert(job);
    queued_index_.emplace(job.job, std::move(job));
}

void Dispatcher::forget(const std::string& job) {
    if (auto q = queued_index_.find(job); q != queued_index_.end()) {
        auto type = queues_.find(q->second.type);
        if (type != queues_.end()) {
            type->second.erase(q->second);
            if (type->second.empty()) queues_.erase(type);
        }
        queued_index_.erase(q);
    }
    end_lease(job);
}

Dispatcher::WorkerMap::iterator Dispatcher::free_worker_for(const std::string& type) {
    auto best = workers_.end();
    int best_free = 0;
    for (auto it = workers_.begin(); it != workers_.end(); ++it) {
        const Worker& w = it->second;
        int free = w.capacity - static_cast<int>(w.jobs.size());
        if (free <= best_free) continue;
        if (std::find(w.types.begin(), w.types.end(), type) == w.types.end()) continue;
        best = it;
        best_free = free;
    }
    return best;
}

std::vector<Assignment> Dispatcher::assign() {
    std::vector<Assignment> out;
    for (;;) {
        const QueuedJob* best = nullptr;
        for (auto& [type, jobs] : queues_) {
            const QueuedJob& head = *jobs.begin();
            if (best && !Order{}(head, *best)) continue;
            if (free_worker_for(type) != workers_.end()) best = &head;
        }
        if (!best) break;
        auto chosen = free_worker_for(best->type);
        const PeerId& peer = chosen->first;
        Worker* w = &chosen->second;
        QueuedJob job = *best;
        auto type = queues_.find(job.type);
        type->second.erase(type->second.begin());
        if (type->second.empty()) queues_.erase(type);
        queued_index_.erase(job.job);
        w->jobs.insert(job.job);
        Lease& lease = leases_[job.job];
        lease = Lease{};
        lease.peer = peer;
        lease.worker = w->name;
        lease.key = w->key;
        out.push_back({job.job, peer, w->name});
    }
    return out;
}

void Dispatcher::lease_granted(const std::string& job, int attempt) {
    auto it = leases_.find(job);
    if (it != leases_.end()) it->second.attempt = attempt;
}

void Dispatcher::assign_sent(const std::string& job) {
    auto lease = leases_.find(job);
    if (lease == leases_.end()) return;
    auto w = workers_.find(lease->second.peer);
    if (w != workers_.end()) terms_.assign_sent(lease->second, ++w->second.assigns_sent);
}

std::vector<LostLease> Dispatcher::reconcile(
    const PeerId& peer, const std::vector<std::pair<std::string, int>>& inflight,
    std::uint64_t assigned) {
    std::vector<LostLease> lost;
    auto w = workers_.find(peer);
    if (w == workers_.end()) return lost;
    auto& jobs = w->second.jobs;
    for (auto it = jobs.begin(); it != jobs.end();) {
        auto lease = leases_.find(*it);
        if (lease == leases_.end() || lease->second.attempt == 0 || lease->second.peer != peer ||
            lease->second.lost) {
            ++it;  // a reservation whose LeaseJob is being written, or not this connection's
            continue;
        }
        Lease& l = lease->second;
        const bool listed = std::find(inflight.begin(), inflight.end(),
                                      std::pair{*it, l.attempt}) != inflight.end();
        const LeaseReport report = terms_.report(l, listed, assigned);
        if (report == LeaseReport::kept) {
            ++it;
            continue;
        }
        lost.push_back({*it, l.attempt, l.worker, report == LeaseReport::never_received});
        // As for a silent worker: held by no one until the requeue commits.
        l.peer.clear();
        l.lost = true;
        it = jobs.erase(it);
    }
    return lost;
}

void Dispatcher::lease_refused(const std::string& job) {
    end_lease(job);
}

void Dispatcher::adopt_orphan(const std::string& job, int attempt, const std::string& worker) {
    Lease& lease = leases_[job];
    lease = Lease{};
    lease.worker = worker;
    lease.attempt = attempt;
    terms_.orphan(lease);
    lease.key_known = false;  // the store keeps the worker's name only
}

void Dispatcher::release_slot(const std::string& job, const Lease& lease) {
    if (lease.peer.empty()) return;
    auto w = workers_.find(lease.peer);
    if (w != workers_.end()) w->second.jobs.erase(job);
}

void Dispatcher::end_lease(const std::string& job) {
    auto it = leases_.find(job);
    if (it == leases_.end()) return;
    release_slot(job, it->second);
    leases_.erase(it);
}

std::optional<PeerId> Dispatcher::holder(const std::string& job, int attempt) const {
    auto it = leases_.find(job);
    if (it == leases_.end() || it->second.attempt != attempt || it->second.peer.empty()) {
        return std::nullopt;
    }
    return it->second.peer;
}

std::optional<PeerId> Dispatcher::holder(const std::string& job) const {
    auto it = leases_.find(job);
    if (it == leases_.end() || it->second.peer.empty()) return std::nullopt;
    return it->second.peer;
}

}  // namespace jobcast::broker
