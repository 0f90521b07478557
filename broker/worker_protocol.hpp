// The broker's side of the worker protocol, without sockets: per-worker link
// state (hello/welcome, identity, heartbeats), leases checked on every
// message, cumulative acks coalesced per commit, rejects, cancel deadlines and
// lost leases. It takes decoded messages, commit batches and the clock, and
// returns the frames to send and the store ops to submit (an Outbox); the
// gateway's socket loop does the I/O. Used from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "broker/cluster_link.hpp"
#include "broker/gateway_config.hpp"
#include "broker/job_queue.hpp"
#include "broker/lease.hpp"
#include "broker/worker_links.hpp"
#include "broker/worker_sessions.hpp"
#include "common/clock.hpp"
#include "persistence/store.hpp"
#include "protocol/codec.hpp"

namespace spdlog {
class logger;
}

namespace jobcast::broker {

// Cluster mode: a hello held back until the cluster answers which of its
// in-flight leases, held by another broker so far, are this broker's now
// (WorkerProtocol::on_claimed lets it through then).
struct ClaimRequest {
    PeerId peer;
    std::string frame;
    std::string key;
    std::string worker;
    Inflight inflight;  // the leases not known here
};

// What the socket loop is to do after a call, in order.
struct Outbox {
    std::vector<std::pair<PeerId, std::string>> frames;  // encoded broker messages
    std::vector<PeerId> replaced;  // connections whose queued sends are dropped
    std::vector<store::WriteOp> ops;
    std::vector<ClaimRequest> claims;
    void clear_sends() {
        frames.clear();
        replaced.clear();
    }
};

// Appends a commit's acks to `into` (acks owed and not yet sent), keeping one
// of each run of `ok` acks of one job attempt, with the run's highest wseq
// (the next ok of the attempt raises the last one owed). A commit has one
// ack per chunk op, mostly such runs, and acks are cumulative, so what the
// workers are sent is the same (WorkerProtocol::on_commit) without a copy of
// the job id and a lookup per chunk. Any other status is kept, in order.
void append_acks(std::vector<store::WriteAck>& into, const std::vector<store::WriteAck>& acks);

class WorkerProtocol {
  public:
    // `session_secret`: the store's worker session key. `stats`: counters it
    // keeps up to date (read by the metrics module). `queue`: the jobs
    // waiting for a worker and the leases (outlives the protocol).
    WorkerProtocol(const GatewayConfig& config, std::string session_secret, const Clock& clock,
                   GatewayStats& stats, JobQueue& queue);
    ~WorkerProtocol();
    WorkerProtocol(const WorkerProtocol&) = delete;
    WorkerProtocol& operator=(const WorkerProtocol&) = delete;

    // Jobs the previous broker left: queued ones wait for a worker again,
    // running ones keep their lease for one lease timeout so that their worker
    // can reconnect and carry on (hello with its in-flight list).
    void reload(const std::vector<Job>& unfinished);

    // ---- worker -> broker ----
    // One frame from `peer`, whose connection authenticated with CURVE `key`
    // (Z85; empty without CURVE). In cluster mode a hello with its session
    // and in-flight leases unknown here is held back as a ClaimRequest
    // (unless `may_claim` is false).
    void on_frame(const PeerId& peer, std::string_view frame, const std::string& key, Outbox& out,
                  bool may_claim = true);
    // The cluster's answer to a ClaimRequest: the leases claimed are held
    // here for the worker, then its hello goes through.
    void on_claimed(const ClaimRequest& request, const Inflight& claimed, Outbox& out);
    // A frame that is not one message (counted and logged, not answered).
    void malformed(const PeerId& peer, std::string_view what, bool oversize = false);

    // ---- writer -> broker ----
    // What one or more commits brought back: the acks owed to workers, the
    // outcome of each lease op, the jobs that changed (in this order).
    void on_commit(const std::vector<store::WriteAck>& acks,
                   const std::vector<store::LeaseOutcome>& leases, const std::vector<Job>& changes,
                   Outbox& out);

    // ---- the cluster (cluster mode) ----
    // The leases held here, to renew in the cluster.
    Inflight held() const { return queue_.held(); }
    // Free worker slots by type, for jobs queued on other brokers.
    std::map<std::string, std::size_t> free_slots() const { return links_.free_by_type(); }
    // A renew's answer: leases another broker or attempt took end here (their
    // worker is told), cancels asked for on other brokers reach the workers.
    void on_renewed(const Renewal& renewal, Outbox& out);
    // Jobs queued on other brokers, reserved in the cluster for free workers
    // here: queued, unless a lease or reservation here has them already.
    void on_offered(std::vector<QueuedJob> jobs);
    // Queue checks, one at a time: up to `max` of the jobs waiting here (in
    // turns when more wait), to look up in the cluster's queues; none while
    // a check awaits its answer.
    std::vector<QueuedJob> start_queue_check(std::size_t max);
    // The check's answer: of those jobs, the ones no longer waiting in the
    // cluster (another broker leased them, or they ended there). They leave
    // the queue here, so that it holds, and jobcast_queue_depth counts, only
    // jobs still waiting; one a worker here took meanwhile stays its, and one
    // queued here again since the check began stays queued.
    void on_not_queued(const std::vector<std::string>& jobs);

    // ---- timers ----
    // Queued jobs for workers with free capacity: their LeaseJob ops.
    void dispatch(Outbox& out);
    // Once per heartbeat interval: heartbeats out, silent workers' leases lost,
    // cancels past their grace forced.
    void tick(Outbox& out);
    // The broker itself was away (stopped, starved of CPU, blocked on the
    // store) for `away` longer than it meant to wait: that time does not count
    // as its workers' silence.
    void stalled(Steady::duration away);

    // ---- connections ----
    // A connection is gone (unreachable, or not reading); its worker may be
    // reconnecting, so its leases wait one lease timeout for its hello.
    void disconnected(const PeerId& peer, std::string_view why);
    // The broker is shutting down: every worker is told to reconnect.
    void goodbye(Outbox& out);

    std::size_t worker_count() const { return links_.count(); }

  private:
    void on_hello(const PeerId& peer, const proto::Hello& hello, const std::string& key,
                  Outbox& out);
    void announce_schemas(const PeerId& peer, const proto::Hello& hello);
    // A connection is no longer a worker's: its slots and schemas go.
    void remove_link(const PeerId& peer);
    void refuse_identity(const PeerId& peer, const proto::Hello& hello, const std::string& key,
                         const std::string& why, Outbox& out);
    void on_inflight_report(const PeerId& peer, const std::vector<proto::InflightJob>& held,
                            std::uint64_t assigned, Outbox& out);
    void send_acks(const std::vector<store::WriteAck>& acks, Outbox& out);
    void on_lease(const store::LeaseOutcome& lease, Outbox& out);
    void on_job_change(const Job& job, Outbox& out);
    // The job's reservation or lease ended: its worker's slot is free.
    void end_lease(const std::string& job);
    bool name_held(const std::string& name) const;
    void send(const PeerId& peer, const proto::BrokerMessage& message, Outbox& out);

    const GatewayConfig config_;
    const Clock& clock_;
    GatewayStats& stats_;
    std::shared_ptr<spdlog::logger> log_;
    std::shared_ptr<spdlog::logger> audit_;
    WorkerSessions sessions_;
    WorkerLinks links_;
    JobQueue& queue_;
    CancelGrace cancels_;
    std::unordered_map<PeerId, Steady> last_complaint_;
    std::unordered_map<std::string, Steady> last_identity_refusal_;  // by worker name
    std::string assign_frame_;
    // Queue checks: where the next starts, whether one awaits its answer, and
    // the jobs queued here since it began.
    std::size_t check_from_ = 0;
    bool checking_ = false;
    std::unordered_set<std::string> queued_since_check_;
};

}  // namespace jobcast::broker
