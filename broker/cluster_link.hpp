// The gateway's window on the other brokers in cluster mode: the shared
// queue and the leases in the cluster (cluster/cluster_feeder.hpp behind it,
// wired by the composition root). Every call returns at once; answers come
// on another thread, which the gateway hands to its own through its inbox.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "broker/job_queue.hpp"

namespace jobcast::broker {

struct Renewal {
    Inflight lost;                    // taken by another broker or attempt, or requeued
    std::vector<std::string> cancel;  // renewed, and a cancel was requested
};

class ClusterLink {
  public:
    virtual ~ClusterLink() = default;
    // This broker's workers have these free slots by type: queued jobs of
    // the cluster come to Gateway::offer.
    virtual void want(std::map<std::string, std::size_t> free_slots) = 0;
    // The leases held here are kept in the cluster (every lease_timeout/3).
    virtual void renew(Inflight held, std::function<void(Renewal)> done) = 0;
    // A hello's in-flight leases that another broker held: those that are
    // this broker's now.
    virtual void claim(const std::string& worker, Inflight inflight,
                       std::function<void(Inflight claimed)> done) = 0;
    // Of `jobs`, waiting here, those no longer queued in the cluster:
    // another broker leased them, or they ended there.
    virtual void not_queued(std::vector<QueuedJob> jobs,
                            std::function<void(std::vector<std::string> gone)> done) = 0;
};

}  // namespace jobcast::broker
