// Dispatch and leases across brokers (cluster mode): what a broker's
// in-memory JobQueue needs from the shared queue and the leases in Redis. It
// runs on the Redis loop thread; every call returns at once and answers
// through a callback on that thread, so the gateway never waits on the
// network.
// - Feeding: while this broker's workers have free slots for some types
//   (want), it reserves queued jobs of those types from the partitions in
//   rotating order (jc_reserve) and hands them to the broker's queue; the
//   broker's lease (jc_lease) then decides, as for its own jobs. A
//   reservation that is not leased simply ends after `reserve_for`.
// - Hints: the feeder listens to every partition's hint channel
//   (LivePublisher). A ready hint of a type with free slots here makes it
//   reserve from that partition at once; the poll every `poll_interval`
//   stays the safety net (pub/sub is at-most-once: a lost hint costs at most
//   one poll interval). A cancel hint names a running job whose cancel was
//   asked for on some broker: it goes to `on_cancel` at once; the renewal
//   stays the safety net.
// - Renewing: the leases this broker holds, every lease_timeout/3 (jc_renew):
//   those another broker or attempt took are lost to it, and those with a
//   cancel requested (on any broker) are named.
// - Claiming: a worker whose broker died says hello here with its in-flight
//   jobs; the leases still running on that attempt for that worker become
//   this broker's (jc_claim).
// - Queue checks: of the jobs waiting in the broker's queue, those no
//   longer queued in the cluster (another broker leased them, or they ended
//   there), so that the broker stops counting them as waiting.
// - Expiry: every `expire_interval`, the leases of every partition that no
//   broker renewed for two lease timeouts (one for a worker to notice its
//   broker died, one to claim its leases on another) are requeued through the store
//   (RequeueJob with unrenewed_for, so a lease renewed meanwhile is kept).
//   Every broker runs it; two at once are harmless (fenced by attempt). A
//   partition whose shard took no writes (degraded, failing over) or did not
//   answer the pass is left alone until two lease timeouts after that, so a
//   lease its holder could not renew meanwhile is not taken from a live
//   worker.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cluster/partitions.hpp"
#include "common/clock.hpp"
#include "persistence/store.hpp"

namespace jobcast::redis {
class Cluster;
}

namespace jobcast::cluster {

struct FeederConfig {
    std::string broker;  // this broker's id, unique among the running brokers
    std::chrono::milliseconds lease_timeout{3000};
    std::chrono::milliseconds expire_interval{1000};
    std::chrono::milliseconds reserve_for{2000};
    // How often free slots look for queued work in the partitions.
    std::chrono::milliseconds poll_interval{200};
    // Whether writes to a slot pause now (its shard degraded: no primary, or
    // too few replicas; the engine unreachable). No lease of such a slot is
    // expired, nor for two lease timeouts after: its holders' renewals were
    // refused too. Empty: never (the feeder still holds expiry after a pass
    // that failed or was answered late).
    std::function<bool(std::uint16_t slot)> writes_paused;
};

using LeaseRef = std::pair<std::string, int>;           // job, attempt
using QueuedRef = std::pair<std::string, std::string>;  // job, type

struct ReservedJob {
    std::string job;
    std::string type;
    int priority = 0;
};

// Hints received on the partitions' hint channels. Counters only grow.
struct FeederStats {
    std::uint64_t ready_hints = 0;
    std::uint64_t cancel_hints = 0;
};

struct Renewal {
    std::vector<LeaseRef> lost;       // held by another broker or attempt, or requeued
    std::vector<std::string> cancel;  // renewed, and a cancel was requested
};

class ClusterFeeder {
  public:
    // `cluster`, `partitions` and `store` outlive the feeder. `on_reserved`
    // gets the jobs reserved for this broker, `on_cancel` the jobs a cancel
    // hint named (whether this broker runs them or not), both on the loop
    // thread.
    ClusterFeeder(redis::Cluster& cluster, const Partitions& partitions, store::Store& store,
                  FeederConfig config, std::function<void(std::vector<ReservedJob>)> on_reserved,
                  std::function<void(std::vector<std::string>)> on_cancel,
                  const Clock& clock = Clock::system());
    // Stops first.
    ~ClusterFeeder();
    ClusterFeeder(const ClusterFeeder&) = delete;
    ClusterFeeder& operator=(const ClusterFeeder&) = delete;

    // Subscribes the hint channels, starts the expiry and feeding timers.
    void start();
    // Stops them; callbacks not yet run are dropped. Not from the loop thread.
    void stop();

    // Any thread.
    FeederStats stats() const;

    // Free worker slots here by type (replaces the previous call's).
    void want(std::map<std::string, std::size_t> free_slots);
    void renew(std::vector<LeaseRef> held, std::function<void(Renewal)> done);
    // `done` gets the leases that are this broker's now.
    void claim(std::string worker, std::vector<LeaseRef> inflight,
               std::function<void(std::vector<LeaseRef>)> done);
    // `done` gets those of `jobs` that are not in their type's queue in the
    // cluster (leased, ended, or expired); a lookup that fails counts its
    // jobs as queued.
    void not_queued(std::vector<QueuedRef> jobs,
                    std::function<void(std::vector<std::string>)> done);

    struct State;

  private:
    std::shared_ptr<State> state_;
};

}  // namespace jobcast::cluster
