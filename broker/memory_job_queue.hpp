// The JobQueue of a single broker, in memory: the queue of jobs waiting for a
// worker (by priority, then age, one ordered set per type) and the lease
// table, under lease.hpp's rules. Rebuilt from the store at start (enqueue,
// adopt). Pure logic: no sockets, no threads; time comes from the injected
// clock. Used from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>

#include "broker/job_queue.hpp"
#include "broker/lease.hpp"
#include "common/clock.hpp"

namespace jobcast::broker {

class MemoryJobQueue final : public JobQueue {
  public:
    // `max_unacked_reports`: heartbeats that do not count an assign (nor list
    // its job) before that lease is taken back; see renew.
    MemoryJobQueue(const Clock& clock, std::chrono::milliseconds lease_timeout,
                   std::uint32_t max_unacked_reports = 20)
        : terms_(clock, lease_timeout, max_unacked_reports) {}

    void enqueue(QueuedJob job) override;
    void adopt(const std::string& job, int attempt, const std::string& worker) override;
    void finished(const std::string& job) override;
    void unqueue(const std::string& job) override;

    std::vector<std::string> take(const std::vector<std::string>& types, std::size_t n,
                                  const WorkerRef& worker) override;
    void leased(const std::string& job, int attempt) override;
    void release(const std::string& job) override { leases_.erase(job); }
    void assign_sent(const std::string& job, std::uint64_t number) override;

    NameHold name_hold(const std::string& name, const PeerId& except,
                       const std::string& key) const override;
    Claim claim(const WorkerRef& worker, const Inflight& inflight,
                const std::optional<PeerId>& previous) override;
    std::vector<LostLease> renew(const PeerId& worker, const Inflight& inflight,
                                 std::uint64_t assigned) override;
    std::vector<LostLease> lose(const PeerId& worker) override;
    std::size_t orphan(const PeerId& worker) override;
    std::vector<LostLease> expire() override;
    void pause(Steady::duration away) override;

    std::optional<PeerId> holder(const std::string& job, int attempt) const override;
    std::optional<PeerId> holder(const std::string& job) const override;
    Inflight held() const override;
    bool holds(const std::string& job, int attempt) const override;
    std::size_t queue_depth() const override { return queued_index_.size(); }
    std::vector<QueuedJob> queued() const override;

  private:
    struct Order {  // priority desc, then id asc (older first)
        bool operator()(const QueuedJob& a, const QueuedJob& b) const {
            if (a.priority != b.priority) return a.priority > b.priority;
            return a.job < b.job;
        }
    };
    // Loses the leases of `worker`'s connection but `kept`; its reservations end.
    std::vector<LostLease> lose_except(const PeerId& worker, const std::set<std::string>& kept);

    LeaseTerms terms_;
    std::map<std::string, std::set<QueuedJob, Order>> queues_;  // by type
    std::unordered_map<std::string, QueuedJob> queued_index_;
    std::unordered_map<std::string, Lease> leases_;
};

}  // namespace jobcast::broker
