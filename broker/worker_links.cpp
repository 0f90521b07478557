#include "broker/worker_links.hpp"

#include <algorithm>

namespace jobcast::broker {

std::optional<std::string> identity_refusal(const NameHold& hold, const WorkerIdentity& identity) {
    if (!hold.held) return std::nullopt;
    const bool curve = !identity.key.empty();
    if (curve && hold.other_key) return "worker name is held by another CURVE key";
    if (identity.session_ok) return std::nullopt;
    if (curve && !hold.unknown_key) return std::nullopt;  // the same key holds all of it
    return "worker name is in use and the hello did not carry its session";
}

NameHold WorkerLinks::name_hold(const std::string& name, const PeerId& except,
                                const std::string& key) const {
    NameHold hold;
    for (const auto& [peer, link] : links_) {
        if (peer == except || link.worker.name != name) continue;
        hold.held = true;
        if (link.worker.key != key) hold.other_key = true;
    }
    return hold;
}

std::optional<PeerId> WorkerLinks::previous(const PeerId& peer, const std::string& name) const {
    if (links_.count(peer)) return peer;  // a second hello on the same connection
    std::optional<PeerId> out;
    for (const auto& [id, link] : links_) {
        if (link.worker.name == name) out = id;
    }
    return out;
}

void WorkerLinks::connect(const WorkerRef& worker, const std::vector<std::string>& types,
                          int capacity, const std::vector<std::string>& jobs) {
    Link link;
    link.worker = worker;
    link.types = types;
    link.capacity = std::max(1, capacity);
    link.last_seen = terms_.now();
    for (const auto& job : jobs) {
        link.jobs.insert(job);
        slot_of_[job] = worker.peer;
    }
    links_[worker.peer] = std::move(link);
}

void WorkerLinks::remove(const PeerId& peer) {
    auto it = links_.find(peer);
    if (it == links_.end()) return;
    for (const auto& job : it->second.jobs)
        slot_of_.erase(job);
    links_.erase(it);
}

void WorkerLinks::seen(const PeerId& peer) {
    auto it = links_.find(peer);
    if (it != links_.end()) it->second.last_seen = terms_.now();
}

std::vector<PeerId> WorkerLinks::silent() const {
    std::vector<PeerId> out;
    for (const auto& [peer, link] : links_) {
        if (terms_.silent(link.last_seen)) out.push_back(peer);
    }
    return out;
}

void WorkerLinks::pause(Steady::duration away) {
    for (auto& [peer, link] : links_)
        link.last_seen += away;
}

std::optional<Offer> WorkerLinks::freest(const std::unordered_set<PeerId>& drained) const {
    const Link* best = nullptr;
    int best_free = 0, next_free = 0;
    for (const auto& [peer, link] : links_) {
        if (drained.count(peer)) continue;
        const int free = free_slots(link);
        if (free > best_free) {
            next_free = best_free;
            best = &link;
            best_free = free;
        } else {
            next_free = std::max(next_free, free);
        }
    }
    if (!best) return std::nullopt;
    return Offer{best->worker, best->types,
                 static_cast<std::size_t>(std::max(1, best_free - next_free))};
}

std::map<std::string, std::size_t> WorkerLinks::free_by_type() const {
    std::map<std::string, std::size_t> out;
    for (const auto& [peer, link] : links_) {
        const int free = free_slots(link);
        if (free <= 0) continue;
        for (const auto& type : link.types)
            out[type] += static_cast<std::size_t>(free);
    }
    return out;
}

void WorkerLinks::reserve(const PeerId& peer, const std::string& job) {
    auto it = links_.find(peer);
    if (it == links_.end()) return;
    it->second.jobs.insert(job);
    slot_of_[job] = peer;
}

void WorkerLinks::release(const std::string& job) {
    auto slot = slot_of_.find(job);
    if (slot == slot_of_.end()) return;
    auto link = links_.find(slot->second);
    if (link != links_.end()) link->second.jobs.erase(job);
    slot_of_.erase(slot);
}

std::uint64_t WorkerLinks::next_assign(const PeerId& peer) {
    auto it = links_.find(peer);
    return it == links_.end() ? 0 : ++it->second.assigns_sent;
}

std::vector<PeerId> WorkerLinks::peers() const {
    std::vector<PeerId> out;
    out.reserve(links_.size());
    for (const auto& [peer, link] : links_)
        out.push_back(peer);
    return out;
}

std::string WorkerLinks::name(const PeerId& peer) const {
    auto it = links_.find(peer);
    return it == links_.end() ? std::string() : it->second.worker.name;
}

}  // namespace jobcast::broker
