#include "broker/worker_protocol.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <unordered_set>

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

Inflight attempts_of(const std::vector<proto::InflightJob>& held) {
    Inflight out;
    out.reserve(held.size());
    for (const auto& f : held)
        out.emplace_back(f.job, f.attempt);
    return out;
}

}  // namespace

WorkerProtocol::WorkerProtocol(const GatewayConfig& config, std::string session_secret,
                               const Clock& clock, GatewayStats& stats, JobQueue& queue)
    : config_(config),
      clock_(clock),
      stats_(stats),
      log_(module_logger("gateway")),
      audit_(module_logger("audit")),
      sessions_(std::move(session_secret)),
      links_(clock, config_.lease_timeout()),
      queue_(queue),
      cancels_(clock, config_.cancel_grace) {}

WorkerProtocol::~WorkerProtocol() = default;

void WorkerProtocol::reload(const std::vector<Job>& unfinished) {
    std::size_t queued = 0, running = 0;
    for (const Job& job : unfinished) {
        if (job.state == JobState::queued) {
            queue_.enqueue({job.id, job.type, job.priority});
            ++queued;
        } else if (job.state == JobState::running) {
            queue_.adopt(job.id, job.attempt, job.worker);
            if (job.cancel_requested) cancels_.start(job.id);
            ++running;
        }
    }
    stats_.queue_depth = static_cast<std::int64_t>(queue_.queue_depth());
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
                              Outbox& out, bool may_claim) {
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
        // A worker whose broker went away: its leases move here first. Only
        // with the session the cluster's brokers issue for that name.
        if (config_.cluster && may_claim && !hello->inflight.empty() &&
            sessions_.valid(hello->session, key, hello->worker)) {
            Inflight unknown;
            for (const auto& f : hello->inflight)
                if (!queue_.holds(f.job, f.attempt)) unknown.emplace_back(f.job, f.attempt);
            if (!unknown.empty()) {
                out.claims.push_back(
                    {peer, std::string(frame), key, hello->worker, std::move(unknown)});
                return;
            }
        }
        on_hello(peer, *hello, key, out);
        return;
    }
    if (!links_.known(peer)) {
        // A worker we do not know: typically the broker restarted under it.
        // It says hello again and re-sends what is unacknowledged.
        stats_.rejected_unknown_peer.fetch_add(1, std::memory_order_relaxed);
        send(peer, proto::Reject{"", "hello"}, out);
        return;
    }
    links_.seen(peer);
    std::visit(
        [&](auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, proto::Heartbeat>) {
                if (m.inflight) on_inflight_report(peer, *m.inflight, m.assigned, out);
            } else if constexpr (std::is_same_v<T, proto::Hello>) {
                return;
            } else {
                if (queue_.holder(m.job, m.attempt) != peer) {
                    stats_.rejected_lease.fetch_add(1, std::memory_order_relaxed);
                    send(peer, proto::Reject{m.job, "lease", m.attempt}, out);
                    return;
                }
                if constexpr (std::is_same_v<T, proto::Chunk>) {
                    out.ops.push_back(store::AppendChunk{std::move(m.job), m.attempt, m.wseq,
                                                         m.kind, m.ts, std::move(m.data)});
                } else if constexpr (std::is_same_v<T, proto::Chunks>) {
                    // The same ops as one chunk per event (the decoder checked
                    // that the wseqs do not overflow).
                    std::uint64_t wseq = m.wseq;
                    for (auto& e : m.events) {
                        out.ops.push_back(store::AppendChunk{m.job, m.attempt, wseq++, e.kind, e.ts,
                                                             std::move(e.data)});
                    }
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

void WorkerProtocol::on_claimed(const ClaimRequest& request, const Inflight& claimed, Outbox& out) {
    for (const auto& [job, attempt] : claimed) {
        if (!queue_.holds(job, attempt)) queue_.adopt(job, attempt, request.worker);
    }
    log_->info("event=leases_claimed worker={} claimed={} listed={}", log_quote(request.worker),
               claimed.size(), request.inflight.size());
    on_frame(request.peer, request.frame, request.key, out, false);
}

void WorkerProtocol::on_renewed(const Renewal& renewal, Outbox& out) {
    for (const auto& [job, attempt] : renewal.lost) {
        if (!queue_.holds(job, attempt)) continue;  // ended here meanwhile
        const auto peer = queue_.holder(job, attempt);
        stats_.leases_lost.fetch_add(1, std::memory_order_relaxed);
        log_->warn("event=lease_lost job={} attempt={} reason=taken_in_cluster", job, attempt);
        links_.release(job);
        queue_.release(job);
        cancels_.forget(job);
        if (peer) send(*peer, proto::Reject{job, "lease", attempt}, out);
    }
    // A cancel asked for on another broker: as for one asked for here.
    for (const auto& job : renewal.cancel) {
        if (!cancels_.start(job)) continue;
        if (auto peer = queue_.holder(job)) send(*peer, proto::Cancel{job}, out);
    }
}

void WorkerProtocol::on_offered(std::vector<QueuedJob> jobs) {
    for (auto& job : jobs) {
        if (queue_.holder(job.job)) continue;
        if (checking_) queued_since_check_.insert(job.job);
        queue_.enqueue(std::move(job));
    }
    stats_.queue_depth = static_cast<std::int64_t>(queue_.queue_depth());
}

std::vector<QueuedJob> WorkerProtocol::start_queue_check(std::size_t max) {
    if (checking_ || max == 0) return {};
    auto jobs = queue_.queued();
    if (jobs.size() > max) {
        check_from_ %= jobs.size();
        std::rotate(jobs.begin(), jobs.begin() + static_cast<std::ptrdiff_t>(check_from_),
                    jobs.end());
        jobs.resize(max);
        check_from_ += max;
    }
    checking_ = !jobs.empty();
    return jobs;
}

void WorkerProtocol::on_not_queued(const std::vector<std::string>& jobs) {
    for (const auto& job : jobs)
        if (!queued_since_check_.count(job)) queue_.unqueue(job);
    queued_since_check_.clear();
    checking_ = false;
    stats_.queue_depth = static_cast<std::int64_t>(queue_.queue_depth());
}

// A worker listed what it holds: a lease it was given but has forgotten
// (dropped on a reject it misread, a handler that vanished) would keep the job
// running forever while the worker heart-beats; it is requeued now.
void WorkerProtocol::on_inflight_report(const PeerId& peer,
                                        const std::vector<proto::InflightJob>& held,
                                        std::uint64_t assigned, Outbox& out) {
    for (const auto& lost : queue_.renew(peer, attempts_of(held), assigned)) {
        links_.release(lost.job);
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
    NameHold hold = links_.name_hold(hello.worker, peer, key);
    hold |= queue_.name_hold(hello.worker, peer, key);
    if (auto refusal = identity_refusal(hold, {key, session_ok})) {
        refuse_identity(peer, hello, key, *refusal, out);
        return;
    }
    // The same worker reconnecting (new socket, new routing id) replaces its
    // previous connection; leases it still runs move over, the others end.
    const WorkerRef worker{peer, hello.worker, key};
    const auto previous = links_.previous(peer, hello.worker);
    auto result = queue_.claim(worker, attempts_of(hello.inflight), previous);
    if (previous) remove_link(*previous);
    links_.connect(worker, hello.types, hello.capacity, result.resumed);
    announce_schemas(peer, hello);
    const std::string session =
        sessions_.welcome(hello.session, session_ok, key, hello.worker,
                          [this](const std::string& name) { return name_held(name); });
    if (previous && *previous != peer) out.replaced.push_back(*previous);
    send(peer,
         proto::Welcome{static_cast<int>(config_.heartbeat.count()),
                        session,
                        {std::string(proto::kFeatureChunks)}},
         out);
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
    stats_.workers = static_cast<std::int64_t>(links_.count());
    log_->info("event=hello worker={} types={} capacity={} resumed={} refused={}",
               log_quote(hello.worker), hello.types.size(), hello.capacity, result.resumed.size(),
               result.refused.size());
}

// The params schemas of the hello's types, compiled, into the registry. A
// schema that does not compile (or is not for one of the hello's types) is
// refused alone: logged, and its type served without a schema.
void WorkerProtocol::announce_schemas(const PeerId& peer, const proto::Hello& hello) {
    if (!config_.schemas) return;
    std::unordered_map<std::string, proto::ParamsSchema::Ptr> compiled;
    for (const auto& [type, text] : hello.schemas) {
        if (std::find(hello.types.begin(), hello.types.end(), type) == hello.types.end()) {
            log_->warn(
                "event=schema_refused worker={} type={} error=\"not one of the hello's types\"",
                log_quote(hello.worker), log_quote(type));
            continue;
        }
        auto result = proto::ParamsSchema::compile(text);
        if (auto* error = std::get_if<std::string>(&result)) {
            log_->warn("event=schema_refused worker={} type={} bytes={} error={}",
                       log_quote(hello.worker), log_quote(type), text.size(), log_quote(*error));
            continue;
        }
        compiled.emplace(type, std::get<proto::ParamsSchema::Ptr>(std::move(result)));
    }
    if (!compiled.empty()) {
        log_->info("event=schemas worker={} types_with_schema={}", log_quote(hello.worker),
                   compiled.size());
    }
    config_.schemas->announce(peer, hello.types, std::move(compiled));
}

void WorkerProtocol::remove_link(const PeerId& peer) {
    links_.remove(peer);
    if (config_.schemas) config_.schemas->forget(peer);
}

// Whether a live connection or a lease (an orphaned one too) holds the name.
bool WorkerProtocol::name_held(const std::string& name) const {
    return links_.name_hold(name, {}, {}).held || queue_.name_hold(name, {}, {}).held;
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
    stats_.queue_depth = static_cast<std::int64_t>(queue_.queue_depth());
}

void append_acks(std::vector<store::WriteAck>& into, const std::vector<store::WriteAck>& acks) {
    for (const store::WriteAck& ack : acks) {
        if (!into.empty() && ack.status == store::WriteStatus::ok) {
            store::WriteAck& last = into.back();
            if (last.status == store::WriteStatus::ok && last.attempt == ack.attempt &&
                last.job == ack.job) {
                last.acked_wseq = std::max(last.acked_wseq, ack.acked_wseq);
                continue;
            }
        }
        into.push_back(ack);
    }
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
        auto peer = queue_.holder(a.job, a.attempt);
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
        end_lease(lease.job);
        return;
    }
    const Job& job = *lease.leased;
    queue_.leased(job.id, job.attempt);
    auto peer = queue_.holder(job.id, job.attempt);
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
        end_lease(job.id);  // frees the worker's slot now
        out.ops.push_back(store::FinishJob{job.id, job.attempt, 1, false, "{}", std::move(error),
                                           false, clock_.unix_ms()});
        return;
    }
    queue_.assign_sent(job.id, links_.next_assign(*peer));
    out.frames.emplace_back(*peer, assign_frame_);
}

void WorkerProtocol::on_job_change(const Job& job, Outbox& out) {
    switch (job.state) {
        case JobState::queued:
            // New, retried or requeued after a lost lease.
            links_.release(job.id);
            if (checking_) queued_since_check_.insert(job.id);
            queue_.enqueue({job.id, job.type, job.priority});
            break;
        case JobState::running:
            if (job.cancel_requested && cancels_.start(job.id)) {
                if (auto peer = queue_.holder(job.id, job.attempt)) {
                    send(*peer, proto::Cancel{job.id}, out);
                }
            }
            break;
        case JobState::succeeded:
        case JobState::failed:
        case JobState::cancelled:
            if (auto peer = queue_.holder(job.id); peer && job.state == JobState::cancelled) {
                send(*peer, proto::Cancel{job.id}, out);  // ended by force: stop the worker too
            }
            links_.release(job.id);
            queue_.finished(job.id);
            cancels_.forget(job.id);
            break;
    }
}

void WorkerProtocol::end_lease(const std::string& job) {
    links_.release(job);
    queue_.release(job);
}

// ---- timers ----------------------------------------------------------------

void WorkerProtocol::dispatch(Outbox& out) {
    // One job at a time to the worker with the most free slots (several while
    // it has more than the next one), as long as jobs of its types wait.
    // Their outcomes come back in the commit batch (on_commit).
    std::unordered_set<PeerId> drained;
    const auto now = clock_.unix_ms();
    while (queue_.queue_depth() > 0) {
        auto offer = links_.freest(drained);
        if (!offer) break;
        auto jobs = queue_.take(offer->types, offer->jobs, offer->worker);
        if (jobs.size() < offer->jobs) drained.insert(offer->worker.peer);
        for (auto& job : jobs) {
            links_.reserve(offer->worker.peer, job);
            out.ops.push_back(store::LeaseJob{std::move(job), offer->worker.name, now});
        }
    }
    // Also when nothing was taken: jobs of other brokers join the queue outside commits.
    stats_.queue_depth = static_cast<std::int64_t>(queue_.queue_depth());
}

void WorkerProtocol::tick(Outbox& out) {
    const auto now = clock_.steady();
    for (const auto& peer : links_.peers())
        send(peer, proto::Heartbeat{}, out);
    // Workers silent for longer than the lease timeout are removed, their
    // leases lost; then orphaned leases whose worker never came back.
    std::vector<LostLease> expired;
    for (const auto& peer : links_.silent()) {
        auto lost = queue_.lose(peer);
        remove_link(peer);
        expired.insert(expired.end(), lost.begin(), lost.end());
    }
    const std::size_t silent = expired.size();
    auto orphans = queue_.expire();
    expired.insert(expired.end(), orphans.begin(), orphans.end());
    for (std::size_t i = 0; i < expired.size(); ++i) {
        const LostLease& lost = expired[i];
        stats_.leases_lost.fetch_add(1, std::memory_order_relaxed);
        log_->warn("event=lease_lost job={} attempt={} worker={}", lost.job, lost.attempt,
                   log_quote(lost.worker));
        store::RequeueJob requeue{lost.job, lost.attempt,
                                  "worker " + lost.worker + " stopped heart-beating",
                                  clock_.unix_ms()};
        // Cluster mode: the worker may have taken an orphaned lease to
        // another broker, which renews it there.
        if (config_.cluster && i >= silent) requeue.unrenewed_for = config_.lease_timeout();
        out.ops.push_back(std::move(requeue));
    }
    for (auto& job : cancels_.due()) {
        log_->warn("event=cancel_forced job={}", job);
        out.ops.push_back(store::CancelJob{std::move(job), true, clock_.unix_ms()});
    }
    std::erase_if(last_complaint_,
                  [&](const auto& entry) { return now - entry.second > std::chrono::minutes(1); });
    std::erase_if(last_identity_refusal_,
                  [&](const auto& entry) { return now - entry.second > std::chrono::minutes(1); });
    stats_.workers = static_cast<std::int64_t>(links_.count());
}

void WorkerProtocol::stalled(Steady::duration away) {
    links_.pause(away);
    queue_.pause(away);
    stats_.stalls.fetch_add(1, std::memory_order_relaxed);
    log_->warn("event=gateway_stalled away_ms={} workers={}",
               std::chrono::duration_cast<std::chrono::milliseconds>(away).count(), links_.count());
}

// ---- connections -----------------------------------------------------------

void WorkerProtocol::disconnected(const PeerId& peer, std::string_view why) {
    if (!links_.known(peer)) return;
    auto name = links_.name(peer);
    const auto orphaned = queue_.orphan(peer);
    remove_link(peer);
    log_->warn("event=worker_dropped worker={} reason={} leases_held_for_reconnect={}",
               log_quote(name), log_quote(why), orphaned);
    stats_.workers = static_cast<std::int64_t>(links_.count());
}

void WorkerProtocol::goodbye(Outbox& out) {
    for (const PeerId& peer : links_.peers())
        send(peer, proto::Reject{"", "shutdown"}, out);
}

void WorkerProtocol::send(const PeerId& peer, const proto::BrokerMessage& message, Outbox& out) {
    out.frames.emplace_back(peer, proto::encode(message));
}

}  // namespace jobcast::broker
