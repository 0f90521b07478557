#include "broker/lease.hpp"

namespace jobcast::broker {

void LeaseTerms::orphan(Lease& lease) const {
    lease.peer.clear();
    lease.orphan_deadline = now() + timeout_;
}

void LeaseTerms::reloaded(Lease& lease) const {
    orphan(lease);
    lease.orphan_deadline += kReloadReconnectAllowance;
}

bool LeaseTerms::orphan_expired(const Lease& lease) const {
    return lease.peer.empty() && !lease.lost && lease.orphan_deadline != Steady{} &&
           now() > lease.orphan_deadline;
}

void LeaseTerms::pause(Lease& lease, Steady::duration away) const {
    if (lease.peer.empty() && !lease.lost && lease.orphan_deadline != Steady{})
        lease.orphan_deadline += away;
}

bool LeaseTerms::claimable(const Lease& lease, const std::string& name, int attempt,
                           const std::optional<PeerId>& previous) {
    return lease.attempt == attempt && attempt > 0 && !lease.lost && lease.worker == name &&
           (lease.peer.empty() || (previous && lease.peer == *previous));
}

void LeaseTerms::claim(Lease& lease, const PeerId& peer, const std::string& key) const {
    lease.peer = peer;
    lease.assign_no = 0;  // claimed by a hello
    lease.unacked_reports = 0;
    lease.key = key;
    lease.key_known = true;
}

void LeaseTerms::assign_sent(Lease& lease, std::uint64_t number) const {
    lease.assign_no = number;
    lease.assign_sent_at = now();
    lease.unacked_reports = 0;
}

LeaseReport LeaseTerms::report(Lease& lease, bool listed, std::uint64_t assigned) const {
    if (listed) {
        lease.unacked_reports = 0;
        return LeaseReport::kept;
    }
    if (lease.assign_no <= assigned) return LeaseReport::forgotten;
    // Not counted yet: on its way, or dropped by a worker that could not read
    // it. Only a long run of such reports means the latter.
    ++lease.unacked_reports;
    if (lease.unacked_reports >= max_unacked_reports_ && now() - lease.assign_sent_at >= timeout_)
        return LeaseReport::never_received;
    return LeaseReport::kept;
}

bool CancelGrace::start(const std::string& job) {
    return deadlines_.try_emplace(job, clock_.steady() + grace_).second;
}

std::vector<std::string> CancelGrace::due() {
    std::vector<std::string> out;
    const auto now = clock_.steady();
    for (auto& [job, deadline] : deadlines_) {
        if (now < deadline) continue;
        out.push_back(job);
        deadline = Steady::max();  // once
    }
    return out;
}

}  // namespace jobcast::broker
