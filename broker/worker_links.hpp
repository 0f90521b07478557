// The workers connected to this broker: one link per connection (its routing
// id), with the name and types its hello declared, its CURVE key, its slots
// (capacity, and the jobs reserved or leased to it), when it was last heard
// from, and how many assigns went out on it. Who may say a name (identity) is
// decided here with the leases' side from the JobQueue. Pure logic: no
// sockets, no threads; time comes from the injected clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/job_queue.hpp"
#include "broker/lease.hpp"
#include "common/clock.hpp"

namespace jobcast::broker {

// Who says hello, beyond the name it declares: the CURVE public key of its
// connection (Z85; empty without CURVE), and whether the hello carried the
// session the broker issues for that key and name (welcome.session).
struct WorkerIdentity {
    std::string key;
    bool session_ok = false;
};

// Why a hello may not take its name, or nullopt when it may. A name nobody
// holds (`hold`: live connections and leases, orphaned ones included) is
// free. A held name is taken only by the same key (CURVE), or with the name's
// session; otherwise the hello is refused and changes nothing, so no peer
// takes over another's leases or drops its connection by saying its name.
std::optional<std::string> identity_refusal(const NameHold& hold, const WorkerIdentity& identity);

// A free slot, and how many jobs to offer it before another worker is as free.
struct Offer {
    WorkerRef worker;
    std::vector<std::string> types;
    std::size_t jobs = 0;
};

class WorkerLinks {
  public:
    // `lease_timeout`: a worker silent for longer is given up on.
    WorkerLinks(const Clock& clock, std::chrono::milliseconds lease_timeout)
        : terms_(clock, lease_timeout) {}

    // ---- hello ----
    // Who holds `name` through live connections other than `except`, as seen
    // by a hello presenting `key`.
    NameHold name_hold(const std::string& name, const PeerId& except, const std::string& key) const;
    // The connection this hello replaces: the same worker's previous one, or
    // `peer` itself on a second hello.
    std::optional<PeerId> previous(const PeerId& peer, const std::string& name) const;
    // Registers `worker`, holding the leases of `jobs` (claimed in its hello);
    // the connection it replaces is removed first.
    void connect(const WorkerRef& worker, const std::vector<std::string>& types, int capacity,
                 const std::vector<std::string>& jobs);
    // Removes a connection; its slots are freed.
    void remove(const PeerId& peer);

    // ---- liveness ----
    bool known(const PeerId& peer) const { return links_.count(peer) != 0; }
    void seen(const PeerId& peer);
    // Connections silent for longer than the lease timeout.
    std::vector<PeerId> silent() const;
    // The broker itself was away for `away`: that time is not their silence.
    void pause(Steady::duration away);

    // ---- slots ----
    // The worker with the most free slots, except `drained` (no job for its
    // types), and how many jobs bring it down to the next one's free slots.
    std::optional<Offer> freest(const std::unordered_set<PeerId>& drained) const;
    // Free slots by type, over every connection (a slot serves each of its
    // worker's types).
    std::map<std::string, std::size_t> free_by_type() const;
    void reserve(const PeerId& peer, const std::string& job);
    // The job's reservation or lease ended: frees its slot.
    void release(const std::string& job);
    // The job's assign goes out on its holder's connection: its number there
    // (1, 2, … since the hello).
    std::uint64_t next_assign(const PeerId& peer);

    std::vector<PeerId> peers() const;
    std::size_t count() const { return links_.size(); }
    std::string name(const PeerId& peer) const;

  private:
    struct Link {
        WorkerRef worker;
        std::vector<std::string> types;
        int capacity = 1;
        std::unordered_set<std::string> jobs;  // reserved or leased
        Steady last_seen;
        std::uint64_t assigns_sent = 0;
    };
    int free_slots(const Link& link) const {
        return link.capacity - static_cast<int>(link.jobs.size());
    }

    LeaseTerms terms_;
    std::unordered_map<PeerId, Link> links_;
    std::unordered_map<std::string, PeerId> slot_of_;  // job -> the connection it occupies
};

}  // namespace jobcast::broker
