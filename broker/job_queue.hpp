// The port for dispatch and leases: the jobs waiting for a worker, and the
// leases that bind a running attempt to one worker connection. The worker
// protocol drives a job through it: enqueue → take (a reservation) → leased
// (its LeaseJob committed) → assign_sent → renew / orphan / claim / expire →
// release or finished. Which workers are connected to this broker and their
// free slots are WorkerLinks' (worker_links.hpp); the lease rules are in
// lease.hpp. The in-memory implementation: memory_job_queue.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "broker/lease.hpp"

namespace jobcast::broker {

struct QueuedJob {
    std::string job;  // ULID: sorts by age
    std::string type;
    int priority = 0;
};

// The connection a worker holds its leases on.
struct WorkerRef {
    PeerId peer;
    std::string name;
    std::string key;  // CURVE public key (Z85); empty without CURVE
};

// (job, attempt) pairs a worker says it runs.
using Inflight = std::vector<std::pair<std::string, int>>;

// What a hello keeps of the leases it lists as in flight.
struct Claim {
    std::vector<std::string> resumed;  // leases this connection holds from now on
    Inflight refused;                  // listed but not its: reject them
    // Leases of the worker's previous connection that it no longer runs.
    std::vector<LostLease> lost;
};

// Who holds a worker name, as seen by a hello presenting a key.
struct NameHold {
    bool held = false;
    bool other_key = false;    // held under a key other than the hello's
    bool unknown_key = false;  // held by leases reloaded from the store (names only)
    NameHold& operator|=(const NameHold& other) {
        held |= other.held;
        other_key |= other.other_key;
        unknown_key |= other.unknown_key;
        return *this;
    }
};

class JobQueue {
  public:
    virtual ~JobQueue() = default;

    // ---- the job's side: commits, and the store at start ----
    // The job waits for a worker: new, retried, or requeued (a lease or
    // reservation it had ends).
    virtual void enqueue(QueuedJob job) = 0;
    // A running attempt found in the store at start: held for its worker to
    // reconnect (hello with in-flight) until the lease timeout.
    virtual void adopt(const std::string& job, int attempt, const std::string& worker) = 0;
    // The job ended (succeeded, failed, cancelled): out of the queue, its lease gone.
    virtual void finished(const std::string& job) = 0;
    // Cluster mode: the job no longer waits (another broker leased it, or it
    // ended there): out of the queue; a reservation or lease of it here stays.
    virtual void unqueue(const std::string& job) = 0;

    // ---- dispatch ----
    // Up to `n` queued jobs of `types`, best first (priority, then age), each
    // reserved for `worker` until leased or released.
    virtual std::vector<std::string> take(const std::vector<std::string>& types, std::size_t n,
                                          const WorkerRef& worker) = 0;
    // The reservation's LeaseJob committed: the lease is on `attempt`.
    virtual void leased(const std::string& job, int attempt) = 0;
    // The reservation or lease ends with the job not run by it (the LeaseJob
    // was refused, or the assign cannot be sent).
    virtual void release(const std::string& job) = 0;
    // The lease's assign, number `number` on its holder's connection, is sent
    // now (see renew).
    virtual void assign_sent(const std::string& job, std::uint64_t number) = 0;

    // ---- the worker's side ----
    // Who holds `name` through leases, other than connection `except`, as
    // seen by a hello presenting `key`.
    virtual NameHold name_hold(const std::string& name, const PeerId& except,
                               const std::string& key) const = 0;
    // A hello of `worker` listing `inflight`: the leases it keeps (orphaned
    // ones, or those of `previous`, the same worker's connection before), and
    // those of `previous` it no longer runs, lost.
    virtual Claim claim(const WorkerRef& worker, const Inflight& inflight,
                        const std::optional<PeerId>& previous) = 0;
    // A heartbeat of `worker` listed what it runs, after `assigned` assigns of
    // its connection had arrived. A lease of the connection that it does not
    // list is lost when
    // - its assign had arrived (its number is at most `assigned`) or its hello
    //   claimed it: the worker forgot it;
    // - or its assign never counted: enough heartbeats in a row and at least
    //   one lease timeout since it was sent, a worker that dropped it without
    //   a word. A report that merely predates the assign's arrival does not
    //   cost the lease.
    virtual std::vector<LostLease> renew(const PeerId& worker, const Inflight& inflight,
                                         std::uint64_t assigned) = 0;
    // The worker was given up on (silent for longer than the lease timeout):
    // its leases are lost, held by no one until the requeue commits; its
    // reservations end.
    virtual std::vector<LostLease> lose(const PeerId& worker) = 0;
    // The worker's connection went away (it may be reconnecting): its leases
    // are orphaned for the lease timeout, for its hello on a new connection to
    // claim; its reservations end. Returns how many were orphaned.
    virtual std::size_t orphan(const PeerId& worker) = 0;
    // Orphaned leases past their deadline, each reported once.
    virtual std::vector<LostLease> expire() = 0;
    // The broker itself was away for `away`: deadlines move with it.
    virtual void pause(Steady::duration away) = 0;

    // ---- who holds what ----
    // The connection holding `job`'s lease for `attempt`, if any.
    virtual std::optional<PeerId> holder(const std::string& job, int attempt) const = 0;
    // The connection holding `job`'s lease or reservation, if any.
    virtual std::optional<PeerId> holder(const std::string& job) const = 0;
    // The leases a connection holds now (committed, not lost or orphaned).
    virtual Inflight held() const = 0;
    // Whether `job`'s lease on `attempt` is here (orphaned ones too).
    virtual bool holds(const std::string& job, int attempt) const = 0;
    virtual std::size_t queue_depth() const = 0;
    // The jobs waiting, by type, best first within a type.
    virtual std::vector<QueuedJob> queued() const = 0;
};

}  // namespace jobcast::broker
