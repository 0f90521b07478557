// Leases: what binds a running attempt of a job to one worker, and the rules
// that end it. Deadlines (a silent worker, an orphaned lease waiting for its
// worker's hello), renewal by heartbeats, reconciling a worker's in-flight
// report against the leases the broker holds (keep, reject, lost), the
// reclaim of an assign its worker never counts, and the grace a running job
// has after a cancel before it is cancelled by force. Pure: time comes from
// the injected clock; no sockets, no store.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"

namespace jobcast::broker {

using Steady = jobcast::Clock::Steady;  // monotonic time: deadlines, silence
using PeerId = std::string;             // the ZeroMQ routing id of a worker's connection

struct Lease {
    PeerId peer;  // empty while orphaned
    std::string worker;
    int attempt = 0;  // 0 while the LeaseJob write is in flight (a reservation)
    Steady orphan_deadline{};
    // Reported lost: its requeue is being written, so no hello may take it
    // back (the job will be assigned again as a new attempt).
    bool lost = false;
    // The number of the assign that carried it to its holder (1, 2, … per
    // connection); 0 when the holder claimed it in its hello.
    std::uint64_t assign_no = 0;
    Steady assign_sent_at{};
    // Heartbeats of the holder since the assign that neither counted it nor
    // listed the job.
    std::uint32_t unacked_reports = 0;
    // The CURVE key of the worker it was leased to or claimed by; unknown for
    // a lease reloaded from the store (the store keeps names only).
    std::string key;
    bool key_known = true;
};

// A lease that must end: its worker is gone or its orphan timer ran out.
struct LostLease {
    std::string job;
    int attempt = 0;
    std::string worker;
    // reconcile: the worker never counted the assign (rather than forgot the job).
    bool never_received = false;
};

// What a worker's report (heartbeat) says about one lease of its connection.
enum class LeaseReport {
    kept,            // listed, or its assign may still be on its way
    forgotten,       // its assign arrived (or its hello claimed it), and the worker let it go
    never_received,  // its assign never counted, for long enough: dropped without a word
};

// How much longer than one lease timeout a lease reloaded at start waits for
// its worker's hello (LeaseTerms::reloaded).
inline constexpr std::chrono::milliseconds kReloadReconnectAllowance{5000};

class LeaseTerms {
  public:
    // `timeout`: how long a lease outlives its worker's last message (and an
    // orphan waits for its worker's hello). `max_unacked_reports`: heartbeats
    // that do not count an assign (nor list its job) before it is taken back.
    LeaseTerms(const Clock& clock, std::chrono::milliseconds timeout,
               std::uint32_t max_unacked_reports = 20)
        : clock_(clock), timeout_(timeout), max_unacked_reports_(max_unacked_reports) {}

    Steady now() const { return clock_.steady(); }
    std::chrono::milliseconds timeout() const { return timeout_; }

    // Renewal: every message of a worker renews all its leases; silent for
    // longer than the timeout since `last_seen`, it loses them.
    bool silent(Steady last_seen) const { return now() - last_seen > timeout_; }

    // The holder's connection went away: held for the worker's hello on a
    // new connection for one timeout. Its chunks are refused meanwhile.
    void orphan(Lease& lease) const;
    // A lease reloaded from the store at start: orphaned, and held for one
    // timeout plus kReloadReconnectAllowance. Its worker was waiting out
    // the broker's absence in its reconnect backoff (the SDKs' default
    // `reconnect_max` is 5 s), so its hello may come that much after the
    // broker is back; one timeout alone re-ran the jobs of live workers
    // whenever a restart outlasted their backoff.
    void reloaded(Lease& lease) const;
    bool orphan_expired(const Lease& lease) const;
    // The broker itself was away for `away`: an orphan's wait moves with it.
    void pause(Lease& lease, Steady::duration away) const;

    // Whether a hello of worker `name` that lists `attempt` as in flight may
    // take the lease: the same attempt, not lost, leased to that name, and
    // orphaned or held by `previous` (the same worker's connection before).
    static bool claimable(const Lease& lease, const std::string& name, int attempt,
                          const std::optional<PeerId>& previous);
    void claim(Lease& lease, const PeerId& peer, const std::string& key) const;

    // The lease's assign, number `number` on its holder's connection, is sent now.
    void assign_sent(Lease& lease, std::uint64_t number) const;

    // A heartbeat of the holder: `listed` says whether it lists the lease's
    // attempt, `assigned` how many assigns it has received since its hello.
    // A report that merely predates the assign's arrival does not cost the
    // lease; `max_unacked_reports` of them in a row, and at least one timeout
    // since the assign was sent, do.
    LeaseReport report(Lease& lease, bool listed, std::uint64_t assigned) const;

  private:
    const Clock& clock_;
    std::chrono::milliseconds timeout_;
    std::uint32_t max_unacked_reports_;
};

// A running job whose cancel was asked for has `grace` to stop on its own;
// then it is cancelled by force (once).
class CancelGrace {
  public:
    CancelGrace(const Clock& clock, std::chrono::milliseconds grace)
        : clock_(clock), grace_(grace) {}

    // Starts the grace; false when it had started already (its worker has been told).
    bool start(const std::string& job);
    bool started(const std::string& job) const { return deadlines_.count(job) != 0; }
    // The jobs whose grace ran out since the last call, each once.
    std::vector<std::string> due();
    // The job ended.
    void forget(const std::string& job) { deadlines_.erase(job); }

  private:
    const Clock& clock_;
    std::chrono::milliseconds grace_;
    std::unordered_map<std::string, Steady> deadlines_;
};

}  // namespace jobcast::broker
