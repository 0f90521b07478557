// Who runs what: the queue of jobs waiting for a worker (by priority, then
// age), the connected workers with their types and free capacity, and the
// leases that bind a running attempt to one worker (their rules: lease.hpp).
// Pure logic: no sockets, no threads; time comes from the injected clock. The
// worker protocol owns one and calls it from its thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/lease.hpp"
#include "common/clock.hpp"

namespace jobcast::broker {

struct QueuedJob {
    std::string job;  // ULID: sorts by age
    std::string type;
    int priority = 0;
};

struct Assignment {
    std::string job;
    PeerId peer;
    std::string worker;  // the worker's name, recorded in the lease
};

// Who says hello, beyond the name it declares: the CURVE public key of its
// connection (Z85; empty without CURVE), and whether the hello carried the
// session the broker issues for that key and name (welcome.session).
struct WorkerIdentity {
    std::string key;
    bool session_ok = false;
};

struct HelloOutcome {
    // The hello was refused: the name is held (a live connection, or leases)
    // by another key, or without CURVE it did not carry the name's session.
    // Nothing changed; `refusal` says why.
    bool refused_identity = false;
    std::string refusal;
    std::vector<std::string> resumed;  // in-flight jobs whose lease this worker keeps
    // In-flight (job, attempt) it no longer holds: reject them.
    std::vector<std::pair<std::string, int>> refused;
    std::optional<PeerId> replaced;  // the same worker's previous connection
    std::vector<LostLease> lost;     // leases of that connection not in-flight any more
};

class Dispatcher {
  public:
    // `max_unacked_reports`: heartbeats that do not count an assign (nor list
    // its job) before that lease is taken back; see reconcile.
    Dispatcher(const Clock& clock, std::chrono::milliseconds lease_timeout,
               std::uint32_t max_unacked_reports = 20)
        : terms_(clock, lease_timeout, max_unacked_reports) {}

    // ---- workers ----
    // A worker's identity is its name and, with CURVE, its key. A hello for a
    // name that nobody holds is accepted. A hello for a held name (another
    // live connection, or leases, orphaned ones included) is accepted only
    // from the same key (CURVE), or with the name's session; otherwise it is
    // refused and changes nothing, so no peer takes over another's leases or
    // drops its connection by saying its name.
    HelloOutcome hello(const PeerId& peer, const std::string& name,
                       const std::vector<std::string>& types, int capacity,
                       const std::vector<std::pair<std::string, int>>& inflight,
                       const WorkerIdentity& identity = {});
    bool known(const PeerId& peer) const { return workers_.count(peer) != 0; }
    // Whether a live connection or a lease (an orphaned one too) holds the name.
    bool name_held(const std::string& name) const;
    void seen(const PeerId& peer);
    // Removes a worker; its leases are returned so the jobs can be requeued.
    std::vector<LostLease> remove_worker(const PeerId& peer);
    // A worker's connection went away (it may be reconnecting: it gave up on a
    // paused broker, or its network blinked). Its leases are orphaned for the
    // lease timeout, for its hello on a new connection to claim, as after a
    // broker restart; unclaimed, they expire. Returns how many were orphaned.
    std::size_t disconnect(const PeerId& peer);
    // Workers silent for longer than the lease timeout, and orphaned leases
    // (loaded at start) whose worker never came back. Both are removed.
    std::vector<LostLease> expire();
    // The broker itself was away (stopped, starved, blocked) for `away`: it
    // could not hear anyone then, so that time does not count as silence.
    void pause(Steady::duration away);
    std::vector<PeerId> peers() const;
    std::size_t worker_count() const { return workers_.size(); }
    std::string worker_name(const PeerId& peer) const;

    // ---- jobs ----
    void enqueue(QueuedJob job);
    // Forget a job entirely: it finished, was cancelled, or failed.
    void forget(const std::string& job);
    // Picks queued jobs for workers with free capacity, best first. Each pick
    // reserves a slot on the worker until lease_granted/lease_refused.
    std::vector<Assignment> assign();
    void lease_granted(const std::string& job, int attempt);
    // The job's assign is being sent to its holder: numbers it among the
    // assigns of that connection (see reconcile).
    void assign_sent(const std::string& job);
    // A worker's heartbeat listed what it holds and how many assigns it has
    // received since its hello. A lease of this connection that it does not
    // list is lost (returned, for the job to be requeued) when
    // - its assign had arrived (its number is at most `assigned`) or its hello
    //   claimed it: the worker forgot it;
    // - or its assign never counted: `max_unacked_reports` heartbeats in a row
    //   and at least one lease timeout since it was sent, a worker that
    //   dropped it without a word (a frame it could not decode). A report
    //   that merely predates the assign's arrival does not cost the lease.
    std::vector<LostLease> reconcile(const PeerId& peer,
                                     const std::vector<std::pair<std::string, int>>& inflight,
                                     std::uint64_t assigned);
    void lease_refused(const std::string& job);
    // A running attempt found in the store at start: held for its worker to
    // reconnect (hello with in-flight) until the lease timeout.
    void adopt_orphan(const std::string& job, int attempt, const std::string& worker);
    // The lease ended (requeued, finished): frees the worker's slot.
    void end_lease(const std::string& job);

    // The connection holding `job`'s lease for `attempt`, if any.
    std::optional<PeerId> holder(const std::string& job, int attempt) const;
    std::optional<PeerId> holder(const std::string& job) const;
    bool queued(const std::string& job) const { return queued_index_.count(job) != 0; }
    std::size_t queue_depth() const { return queued_index_.size(); }
    std::size_t lease_count() const { return leases_.size(); }

  private:
    struct Order {  // priority desc, then id asc (older first)
        bool operator()(const QueuedJob& a, const QueuedJob& b) const {
            if (a.priority != b.priority) return a.priority > b.priority;
            return a.job < b.job;
        }
    };
    struct Worker {
        std::string name;
        std::string key;  // CURVE public key (Z85); empty without CURVE
        std::vector<std::string> types;
        int capacity = 1;
        std::unordered_set<std::string> jobs;  // reserved or leased
        Steady last_seen;
        std::uint64_t assigns_sent = 0;  // on this connection, since its hello
    };
    using WorkerMap = std::unordered_map<PeerId, Worker>;
    // The worker declaring `type` with the most free slots (end() if none).
    WorkerMap::iterator free_worker_for(const std::string& type);
    void release_slot(const std::string& job, const Lease& lease);

    // Why `name` may not be taken by this hello, or nullopt when it may.
    std::optional<std::string> identity_refusal(const PeerId& peer, const std::string& name,
                                                const WorkerIdentity& identity) const;

    LeaseTerms terms_;
    WorkerMap workers_;
    std::map<std::string, std::set<QueuedJob, Order>> queues_;  // by type
    std::unordered_map<std::string, QueuedJob> queued_index_;
    std::unordered_map<std::string, Lease> leases_;
};

}  // namespace jobcast::broker
