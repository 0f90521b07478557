#include "broker/worker_protocol.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "common/log_quote.hpp"
#include "common/logging.hpp"
#include "protocol/assign_check.hpp"
#include "protocol/limits.hpp"

namespace jobcast::broker {

namespace {

// Routing ids are binary; logs show them in hex.
std::string hex(std::string_view bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

std::vector<std::pair<std::string, int>> attempts_of(const std::vector<proto::InflightJob>& held) {
    std::vector<std::pair<std::string, int>> out;
    out.reserve(held.size());
    for (const auto& f : held)
        out.emplace_back(f.job, f.attempt);
    return out;
}

}  // namespace

WorkerProtocol::WorkerProtocol(const GatewayConfig& config, std::string session_secret,
                               const Clock& clock, GatewayStats& stats)
    : config_(config),
      clock_(clock),
      stats_(stats),
      log_(module_logger("gateway")),
      audit_(module_logger("audit")),
      sessions_(std::move(session_secret)),
      dispatcher_(clock, config_.heartbeat * config_.liveness),
      cancels_(clock, config_.cancel_grace) {}

WorkerProtocol::~WorkerProtocol() = default;

void WorkerProtocol::reload(const std::vector<Job>& unfinished) {
    std::size_t queued = 0, running = 0;
    for (const Job& job : unfinished) {
        if (job.state == JobState::queued) {
            dispatcher_.enqueue({job.id, job.type, job.priority});
            ++queued;
        } else if (job.state == JobState::running) {
            dispatcher_.adopt_orphan(job.id, job.attempt, job.worker);
            if (job.cancel_requested) cancels_.start(job.id);
            ++running;
        }
    }
    stats_.queue_depth = static_cast<std::int64_t>(dispatcher_.queue_depth());
    log_->info("reloaded queued={} running={}", queued, running);
}

// ---- worker -> broker ------------------------------------------------------

void WorkerProtocol::malformed(const PeerId& peer, std::string_view what, bool oversize) {
    (oversize ? stats_.rejected_oversize : stats_.rejected_malformed)
        .fetch_add(1, std::memory_order_relaxed);
    // Logged once per peer per interval: a broken peer must not flood the log.
    const auto now = clock_.steady();
    auto& last = last_complaint_[peer];
    if (now - last >= std::chrono::seconds(10)) {
        last = now;
        log_->warn("event=rejected peer={} reason={}", hex(peer), log_quote(what));
    }
}

void WorkerProtocol::on_frame(const PeerId& peer, std::string_view frame, const std::string& key,
                              Outbox& out) {
    auto decoded = proto::decode_worker_message(frame, config_.limits);
    if (auto* err = std::get_if<proto::DecodeError>(&decoded)) {
        malformed(peer, std::string(proto::to_string(err->code)) + ": " + err->detail,
                  err->code == proto::DecodeErrorCode::oversize);
        // A hello we cannot take (a name with control characters, too many
        // types, ...) is answered, so its worker can say why it is not
        // getting jobs.
        if (err->message_type == "hello") {
            send(peer, proto::Reject{"", "invalid_hello", 0, err->detail}, out);
        }
        return;
    }
    auto& message = std::get<proto::WorkerMessage>(decoded);
    if (auto* hello = std::get_if<proto::Hello>(&message)) {
        on_hello(peer, *hello, key, out);
        return;
    }
    if (!dispatcher_.known(peer)) {
        // A worker we do not know: typically the broker restarted under it.
        // It says hello again and re-sends what is unacknowledged.
        stats_.rejected_unknown_peer.fetch_add(1, std::memory_order_relaxed);
        send(peer, proto::Reject{"", "hello"}, out);
        return;
    }
    dispatcher_.seen(peer);
    std::visit(
        [&](auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, proto::Heartbeat>) {
                if (m.inflight) on_inflight_report(peer, *m.inflight, m.assigned, out);
            } else if constexpr (std::is_same_v<T, proto::Hello>) {
                return;
            } else {
                if (dispatcher_.holder(m.job, m.attempt) != peer) {
                    stats_.rejected_lease.fetch_add(1, std::memory_order_relaxed);
                    send(peer, proto::Reject{m.job, "lease", m.attempt}, out);
                    return;
                }
                if constexpr (std::is_same_v<T, proto::Chunk>) {
                    out.ops.push_back(store::AppendChunk{std::move(m.job), m.attempt, m.wseq,
                                                         m.kind, m.ts, std::move(m.data)});
                } else if constexpr (std::is_same_v<T, proto::Checkpoint>) {
                    out.ops.push_back(store::SaveCheckpoint{std::move(m.job), m.attempt, m.wseq,
                                                            std::move(m.bytes)});
                } else if constexpr (std::is_same_v<T, proto::Done>) {
                    out.ops.push_back(store::FinishJob{std::move(m.job), m.attempt, m.wseq, true,
                                                       std::move(m.result), "", false,
                                                       clock_.unix_ms()});
                } else if constexpr (std::is_same_v<T, proto::Fail>) {
                    out.ops.push_back(store::FinishJob{std::move(m.job), m.attempt, m.wseq, false,
                                                       "{}", std::move(m.error), m.retryable,
                                                       clock_.unix_ms()});
                }
            }
        },
        message);
}

// A worker listed what it holds: a lease it was given but has forgotten
// (dropped on a reject it misread, a handler that vanished) would keep the job
// running forever while the worker heart-beats; it is requeued now.
void WorkerProtocol::on_inflight_report(const PeerId& peer,
                                        const std::vector<proto::InflightJob>& held,
                                        std::uint64_t assigned, Outbox& out) {
    for (const auto& lost : dispatcher_.reconcile(peer, attempts_of(held), assigned)) {
        stats_.leases_lost.fetch_add(1, std::memory_order_relaxed);
        log_->warn("event=lease_lost job={} attempt={} worker={} reason={}", lost.job, lost.attempt,
                   log_quote(lost.worker),
                   lost.never_received ? "assign_never_received" : "not_running");
        out.ops.push_back(store::RequeueJob{
            lost.job, lost.attempt,
            "worker " + lost.worker +
                (lost.never_received ? " never acknowledged the assign" : " is not running it"),
            clock_.unix_ms()});
    }
}

void WorkerProtocol::on_hello(const PeerId& peer, const proto::Hello& hello, const std::string& key,
                              Outbox& out) {
    const bool session_ok = sessions_.valid(hello.session, key, hello.worker);
    const WorkerIdentity identity{key, session_ok};
    auto result = dispatcher_.hello(peer, hello.worker, hello.types, hello.capacity,
                                    attempts_of(hello.inflight), identity);
    if (result.refused_identity) {
        refuse_identity(peer, hello, key, result.refusal, out);
        return;
    }
    const std::string session =
        sessions_.welcome(hello.session, session_ok, key, hello.worker,
                          [this](const std::string& name) { return dispatcher_.name_held(name); });
    if (result.replaced) out.replaced.push_back(*result.replaced);
    send(peer, proto::Welcome{static_cast<int>(config_.heartbeat.count()), session}, out);
    for (const auto& [job, attempt] : result.refused)
        send(peer, proto::Reject{job, "lease", attempt}, out);
    for (const auto& lost : result.lost) {
        stats_.leases_lost.fetch_add(1, std::memory_order_relaxed);
        out.ops.push_back(store::RequeueJob{lost.job, lost.attempt,
                                            "worker " + lost.worker + " dropped the job",
                                            clock_.unix_ms()});
    }
    // A cancel asked for while the worker was away must still reach it.
    for (const auto& job : result.resumed) {
        if (cancels_.started(job)) send(peer, proto::Cancel{job}, out);
    }
    stats_.workers = static_cast<std::int64_t>(dispatcher_.worker_count());
    log_->info("event=hello worker={} types={} capacity={} resumed={} refused={}",
               log_quote(hello.worker), hello.types.size(), hello.capacity, result.resumed.size(),
               result.refused.size());
}

// A hello for a worker name held by someone else (another CURVE key, or
// without the name's session): refused, counted, and audit-logged once per
// name per interval (the refused worker retries; an attacker may flood).
void WorkerProtocol::refuse_identity(const PeerId& peer, const proto::Hello& hello,
                                     const std::string& key, const std::string& why, Outbox& out) {
    stats_.rejected_identity.fetch_add(1, std::memory_order_relaxed);
    send(peer, proto::Reject{"", "identity", 0, why}, out);
    const auto now = clock_.steady();
    auto& last = last_identity_refusal_[hello.worker];
    if (last != Steady{} && now - last < std::chrono::seconds(10)) return;
    last = now;
    audit_->warn(
        "event=worker_refused reason=identity worker={} key={} peer={} claimed_leases={} "
        "detail={}",
        log_quote(hello.worker), key.empty() ? "none" : key, hex(peer), hello.inflight.size(),
        log_quote(why));
}

// ---- writer -> broker ------------------------------------------------------

void WorkerProtocol::on_commit(const std::vector<store::WriteAck>& acks,
                               const std::vector<store::LeaseOutcome>& leases,
                               const std::vector<Job>& changes, Outbox& out) {
    send_acks(acks, out);  // before the changes: a finished job's holder is still known
    for (const auto& lease : leases)
        on_lease(lease, out);
    for (const Job& job : changes)
        on_job_change(job, out);
    stats_.queue_depth = static_cast<std::int64_t>(dispatcher_.queue_depth());
}

void WorkerProtocol::send_acks(const std::vector<store::WriteAck>& acks, Outbox& out) {
    // Acks are cumulative: one per (job, attempt) per commit is enough.
    struct Owed {
        PeerId peer;
        std::uint64_t wseq = 0;
        bool ack = false;
        const char* reject = nullptr;
    };
    std::map<std::pair<std::string, int>, Owed> owed;
    for (const auto& a : acks) {
        auto peer = dispatcher_.holder(a.job, a.attempt);
        if (!peer) continue;  // its worker is gone; a re-send will be acked as duplicate
        auto& o = owed[{a.job, a.attempt}];
        o.peer = *peer;
        switch (a.status) {
            case store::WriteStatus::ok:
            case store::WriteStatus::duplicate:
                if (a.status == store::WriteStatus::duplicate) {
                    stats_.duplicates.fetch_add(1, std::memory_order_relaxed);
                }
                o.ack = true;
                o.wseq = std::max(o.wseq, a.acked_wseq);
                break;
            case store::WriteStatus::gap:
                o.reject = "gap";
                break;
            case store::WriteStatus::not_found:
                o.reject = "unknown_job";
                break;
            case store::WriteStatus::conflict:
                o.reject = "lease";
                break;
        }
    }
    for (auto& [key, o] : owed) {
        if (o.ack) send(o.peer, proto::Ack{key.first, key.second, o.wseq}, out);
        if (o.reject) send(o.peer, proto::Reject{key.first, o.reject, key.second}, out);
    }
}

void WorkerProtocol::on_lease(const store::LeaseOutcome& lease, Outbox& out) {
    if (lease.status != store::WriteStatus::ok || !lease.leased) {
        dispatcher_.lease_refused(lease.job);
        return;
    }
    const Job& job = *lease.leased;
    dispatcher_.lease_granted(job.id, job.attempt);
    auto peer = dispatcher_.holder(job.id, job.attempt);
    if (!peer) {
        // The worker left between the pick and the commit.
        out.ops.push_back(store::RequeueJob{
            job.id, job.attempt, "worker left before the job reached it", clock_.unix_ms()});
        return;
    }
    // Only what the worker can decode: an assign it would drop holds its slot
    // for nothing. Submit refuses such params, but a checkpoint can push an
    // assign over the frame limit, and older databases may hold params from
    // before that check.
    const proto::Assign assign{job.id, job.attempt, job.type, job.params, job.checkpoint};
    if (auto problem = proto::check_assign(assign, assign_frame_)) {
        std::string error =
            "the job cannot be sent to a worker: its assign message is " + problem->detail;
        if (problem->kind != proto::AssignProblem::Kind::too_large) {
            error = "the job cannot be sent to a worker: " + problem->detail;
        }
        log_->warn("event=assign_refused job={} attempt={} error={}", job.id, job.attempt,
                   log_quote(error));
        dispatcher_.end_lease(job.id);  // frees the worker's slot now
        out.ops.push_back(store::FinishJob{job.id, job.attempt, 1, false, "{}", std::move(error),
                                           false, clock_.unix_ms()});
        return;
    }
    dispatcher_.assign_sent(job.id);
    out.frames.emplace_back(*peer, assign_frame_);
}

void WorkerProtocol::on_job_change(const Job& job, Outbox& out) {
    switch (job.state) {
        case JobState::queued:
            // New, retried or requeued after a lost lease.
            dispatcher_.end_lease(job.id);
            dispatcher_.enqueue({job.id, job.type, job.priority});
            break;
        case JobState::running:
            if (job.cancel_requested && cancels_.start(job.id)) {
                if (auto peer = dispatcher_.holder(job.id, job.attempt)) {
                    send(*peer, proto::Cancel{job.id}, out);
                }
            }
            break;
        case JobState::succeeded:
        case JobState::failed:
        case JobState::cancelled:
            if (auto peer = dispatcher_.holder(job.id); peer && job.state == JobState::cancelled) {
                send(*peer, proto::Cancel{job.id}, out);  // ended by force: stop the worker too
            }
            dispatcher_.forget(job.id);
            cancels_.forget(job.id);
            break;
    }
}

// ---- timers ----------------------------------------------------------------

void WorkerProtocol::dispatch(Outbox& out) {
    auto picks = dispatcher_.assign();
    if (picks.empty()) return;
    // Their outcomes come back in the commit batch (on_commit).
    const auto now = clock_.unix_ms();
    for (auto& pick : picks)
        out.ops.push_back(store::LeaseJob{pick.job, pick.worker, now});
    stats_.queue_depth = static_cast<std::int64_t>(dispatcher_.queue_depth());
}

void WorkerProtocol::tick(Outbox& out) {
    const auto now = clock_.steady();
    for (const auto& peer : dispatcher_.peers())
        send(peer, proto::Heartbeat{}, out);
    for (const auto& lost : dispatcher_.expire()) {
        stats_.leases_lost.fetch_add(1, std::memory_order_relaxed);
        log_->warn("event=lease_lost job={} attempt={} worker={}", lost.job, lost.attempt,
                   log_quote(lost.worker));
        out.ops.push_back(store::RequeueJob{lost.job, lost.attempt,
                                            "worker " + lost.worker + " stopped heart-beating",
                                            clock_.unix_ms()});
    }
    for (auto& job : cancels_.due()) {
        log_->warn("event=cancel_forced job={}", job);
        out.ops.push_back(store::CancelJob{std::move(job), true, clock_.unix_ms()});
    }
    std::erase_if(last_complaint_,
                  [&](const auto& entry) { return now - entry.second > std::chrono::minutes(1); });
    std::erase_if(last_identity_refusal_,
                  [&](const auto& entry) { return now - entry.second > std::chrono::minutes(1); });
    stats_.workers = static_cast<std::int64_t>(dispatcher_.worker_count());
}

void WorkerProtocol::stalled(Steady::duration away) {
    dispatcher_.pause(away);
    stats_.stalls.fetch_add(1, std::memory_order_relaxed);
    log_->warn("event=gateway_stalled away_ms={} workers={}",
               std::chrono::duration_cast<std::chrono::milliseconds>(away).count(),
               dispatcher_.worker_count());
}

// ---- connections -----------------------------------------------------------

void WorkerProtocol::disconnected(const PeerId& peer, std::string_view why) {
    if (!dispatcher_.known(peer)) return;
    auto name = dispatcher_.worker_name(peer);
    const auto orphaned = dispatcher_.disconnect(peer);
    log_->warn("event=worker_dropped worker={} reason={} leases_held_for_reconnect={}",
               log_quote(name), log_quote(why), orphaned);
    stats_.workers = static_cast<std::int64_t>(dispatcher_.worker_count());
}

void WorkerProtocol::goodbye(Outbox& out) {
    for (const PeerId& peer : dispatcher_.peers())
        send(peer, proto::Reject{"", "shutdown"}, out);
}

void WorkerProtocol::send(const PeerId& peer, const proto::BrokerMessage& message, Outbox& out) {
    out.frames.emplace_back(peer, proto::encode(message));
}

}  // namespace jobcast::broker
