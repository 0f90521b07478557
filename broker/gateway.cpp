#include "broker/gateway.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "broker/dispatcher.hpp"
#include "broker/worker_sessions.hpp"
#include "broker/zap_handler.hpp"
#include "common/log_quote.hpp"
#include "common/logging.hpp"
#include "protocol/assign_check.hpp"
#include "protocol/limits.hpp"

namespace jobcast::broker {

namespace {

UnixMs unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

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

}  // namespace

class Gateway::Impl {
  public:
    Impl(GatewayConfig config, store::Store& store)
        : config_(std::move(config)),
          store_(store),
          log_(module_logger("gateway")),
          audit_(module_logger("audit")),
          sessions_(store.worker_session_key()),
          dispatcher_(config_.heartbeat * config_.liveness) {}

    ~Impl() { stop(); }

    void start() {
        router_ = zmq::socket_t(context_, zmq::socket_type::router);
        router_.set(zmq::sockopt::router_mandatory, 1);
        router_.set(zmq::sockopt::linger, 0);
        router_.set(zmq::sockopt::sndhwm, 200'000);
        router_.set(zmq::sockopt::rcvhwm, 200'000);
        router_.set(zmq::sockopt::maxmsgsize,
                    static_cast<int64_t>(config_.limits.max_frame_bytes) + 1024);
        if (config_.curve.enabled()) {
            // The handler first: a handshake that finds no ZAP handler is let through.
            zap_ = std::make_unique<ZapHandler>(
                context_, std::unordered_set<std::string>(config_.curve.allowed.begin(),
                                                          config_.curve.allowed.end()));
            zap_->start();
            router_.set(zmq::sockopt::curve_server, true);
            router_.set(zmq::sockopt::curve_secretkey, config_.curve.secret_key);
            router_.set(zmq::sockopt::zap_domain, "jobcast");
            log_->info("worker auth curve=on allowed_keys={}", config_.curve.allowed.size());
        }
        router_.bind(config_.endpoint);
        endpoint_ = router_.get(zmq::sockopt::last_endpoint);
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_fd_ < 0) throw std::runtime_error("eventfd failed");
        reload();
        running_ = true;
        thread_ = std::thread([this] { loop(); });
    }

    std::string endpoint() const { return endpoint_; }

    void on_commit(const store::CommittedBatch& batch) {
        if (batch.acks.empty() && batch.job_changes.empty()) return;
        {
            std::lock_guard lock(inbox_mutex_);
            inbox_acks_.insert(inbox_acks_.end(), batch.acks.begin(), batch.acks.end());
            inbox_changes_.insert(inbox_changes_.end(), batch.job_changes.begin(),
                                  batch.job_changes.end());
        }
        wake();
    }

    void stop() {
        if (!running_.exchange(false)) return;
        wake();
        if (thread_.joinable()) thread_.join();
        say_goodbye();
        router_.close();
        if (zap_) zap_->stop();
        if (wake_fd_ >= 0) ::close(wake_fd_);
        wake_fd_ = -1;
    }

    const GatewayStats& stats() const { return stats_; }

  private:
    // Graceful end (the gateway thread has exited; this thread now owns the
    // socket): everything already received is committed and acknowledged, so
    // workers keep nothing unacked, then every worker is told to reconnect
    // (`reject` without a job, reason "shutdown") instead of waiting for the
    // broker to go silent. Bounded: the socket lingers at most one second.
    void say_goodbye() {
        try {
            store_.flush();  // the commit listener fills the inbox
            drain_inbox();
            for (const PeerId& peer : dispatcher_.peers())
                send(peer, proto::Reject{"", "shutdown"});
            const auto deadline = Clock::now() + std::chrono::milliseconds(500);
            while (!pending_.empty() && Clock::now() < deadline) {
                flush_pending();
                if (!pending_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            router_.set(zmq::sockopt::linger, 1000);
            log_->info("event=workers_told_to_reconnect workers={}", dispatcher_.worker_count());
        } catch (const std::exception& e) {
            log_->warn("event=goodbye_failed error={}", log_quote(e.what()));
        }
    }

    struct LeaseResult {
        std::string job;
        store::WriteStatus status;
        std::optional<Job> snapshot;
    };

    void wake() {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }

    // Jobs the previous broker left: queued ones wait for a worker again,
    // running ones keep their lease for one lease timeout so that their worker
    // can reconnect and carry on (hello with its in-flight list).
    void reload() {
        auto now = Clock::now();
        std::size_t queued = 0, running = 0;
        for (const Job& job : store_.jobs().unfinished()) {
            if (job.state == JobState::queued) {
                dispatcher_.enqueue({job.id, job.type, job.priority});
                ++queued;
            } else if (job.state == JobState::running) {
                dispatcher_.adopt_orphan(job.id, job.attempt, job.worker, now);
                if (job.cancel_requested) cancel_deadlines_[job.id] = now + config_.cancel_grace;
                ++running;
            }
        }
        stats_.queue_depth = static_cast<std::int64_t>(dispatcher_.queue_depth());
        log_->info("reloaded queued={} running={}", queued, running);
    }

    void loop() {
        auto next_tick = Clock::now();
        auto last_round = next_tick;
        while (running_) {
            zmq::pollitem_t items[] = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                                       {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
            auto wait = std::max(
                std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - Clock::now()),
                std::chrono::milliseconds(0));
            if (!pending_.empty()) wait = std::chrono::milliseconds(1);
            try {
                zmq::poll(items, 2, wait);
                if (items[1].revents & ZMQ_POLLIN) {
                    std::uint64_t count;
                    [[maybe_unused]] auto n = ::read(wake_fd_, &count, sizeof count);
                }
                drain_router();
                drain_inbox();
                dispatch();
                auto now = Clock::now();
                forgive_own_stall(now - last_round - wait);
                last_round = now;
                if (now >= next_tick) {
                    tick(now);
                    next_tick = now + config_.heartbeat;
                }
                flush_pending();
            } catch (const zmq::error_t& e) {
                if (e.num() == ETERM) break;
                log_->error("event=loop_error error={}", log_quote(e.what()));
            } catch (const std::exception& e) {
                // "Cannot happen": nothing that a peer sends may throw out of
                // the handlers. Log loudly and keep serving the others.
                log_->error("event=loop_error error={}", log_quote(e.what()));
            }
        }
    }

    // A round of this loop took `away` longer than the wait it asked for: the
    // process was stopped, starved of CPU or blocked on the store. Workers'
    // messages waited in the socket meanwhile, so their silence is not theirs;
    // without this, a broker back from a pause would requeue every running job.
    // Rounds slower than one heartbeat only count: busy rounds are not stalls,
    // and a dead worker still expires under a flood of other workers' chunks.
    void forgive_own_stall(Clock::duration away) {
        if (away <= config_.heartbeat) return;
        dispatcher_.pause(away);
        stats_.stalls.fetch_add(1, std::memory_order_relaxed);
        log_->warn("event=gateway_stalled away_ms={} workers={}",
                   std::chrono::duration_cast<std::chrono::milliseconds>(away).count(),
                   dispatcher_.worker_count());
    }

    // ---- worker -> broker ----

    void drain_router() {
        std::vector<store::WriteOp> ops;
        zmq::message_t id, payload;
        for (int i = 0; i < 8192; ++i) {
            auto got = router_.recv(id, zmq::recv_flags::dontwait);
            if (!got) break;
            bool extra = false;
            if (!id.more()) continue;  // cannot happen with a DEALER peer
            (void)router_.recv(payload, zmq::recv_flags::none);
            while (payload.more()) {  // a multi-part frame is not protocol v1
                extra = true;
                zmq::message_t rest;
                (void)router_.recv(rest, zmq::recv_flags::none);
                if (!rest.more()) break;
            }
            PeerId peer(static_cast<const char*>(id.data()), id.size());
            stats_.messages_in.fetch_add(1, std::memory_order_relaxed);
            if (extra) {
                reject_malformed(peer, "multipart frame");
                continue;
            }
            handle(peer, std::string_view(static_cast<const char*>(payload.data()), payload.size()),
                   curve_key(payload), ops);
        }
        if (!ops.empty()) store_.submit_many(std::move(ops));
    }

    // The CURVE public key (Z85) the ZAP handler authenticated this message's
    // connection with; empty without CURVE.
    std::string curve_key(zmq::message_t& message) const {
        if (!config_.curve.enabled()) return {};
        try {
            const char* user_id = message.gets("User-Id");
            return user_id ? std::string(user_id) : std::string();
        } catch (const zmq::error_t&) {
            return {};  // no ZAP metadata: treated as a worker without a key
        }
    }

    void reject_malformed(const PeerId& peer, std::string_view what, bool oversize = false) {
        (oversize ? stats_.rejected_oversize : stats_.rejected_malformed)
            .fetch_add(1, std::memory_order_relaxed);
        // Logged once per peer per interval: a broken peer must not flood the log.
        auto now = Clock::now();
        auto& last = last_complaint_[peer];
        if (now - last >= std::chrono::seconds(10)) {
            last = now;
            log_->warn("event=rejected peer={} reason={}", hex(peer), log_quote(what));
        }
    }

    void handle(const PeerId& peer, std::string_view frame, const std::string& key,
                std::vector<store::WriteOp>& ops) {
        auto decoded = proto::decode_worker_message(frame, config_.limits);
        if (auto* err = std::get_if<proto::DecodeError>(&decoded)) {
            reject_malformed(peer, std::string(proto::to_string(err->code)) + ": " + err->detail,
                             err->code == proto::DecodeErrorCode::oversize);
            // A hello we cannot take (a name with control characters, too
            // many types, ...) is answered, so its worker can say why it is
            // not getting jobs.
            if (err->message_type == "hello") {
                send(peer, proto::Reject{"", "invalid_hello", 0, err->detail});
            }
            return;
        }
        auto& message = std::get<proto::WorkerMessage>(decoded);
        auto now = Clock::now();
        if (auto* hello = std::get_if<proto::Hello>(&message)) {
            on_hello(peer, *hello, key, now, ops);
            return;
        }
        if (!dispatcher_.known(peer)) {
            // A worker we do not know: typically the broker restarted under
            // it. It says hello again and re-sends what is unacknowledged.
            stats_.rejected_unknown_peer.fetch_add(1, std::memory_order_relaxed);
            send(peer, proto::Reject{"", "hello"});
            return;
        }
        dispatcher_.seen(peer, now);
        std::visit(
            [&](auto& m) {
                using T = std::decay_t<decltype(m)>;
                if constexpr (std::is_same_v<T, proto::Heartbeat>) {
                    if (m.inflight) on_inflight_report(peer, *m.inflight, m.assigned, ops);
                } else if constexpr (std::is_same_v<T, proto::Hello>) {
                    return;
                } else {
                    if (dispatcher_.holder(m.job, m.attempt) != peer) {
                        stats_.rejected_lease.fetch_add(1, std::memory_order_relaxed);
                        send(peer, proto::Reject{m.job, "lease", m.attempt});
                        return;
                    }
                    if constexpr (std::is_same_v<T, proto::Chunk>) {
                        ops.push_back(store::AppendChunk{std::move(m.job), m.attempt, m.wseq,
                                                         m.kind, m.ts, std::move(m.data)});
                    } else if constexpr (std::is_same_v<T, proto::Checkpoint>) {
                        ops.push_back(store::SaveCheckpoint{std::move(m.job), m.attempt, m.wseq,
                                                            std::move(m.bytes)});
                    } else if constexpr (std::is_same_v<T, proto::Done>) {
                        ops.push_back(store::FinishJob{std::move(m.job), m.attempt, m.wseq, true,
                                                       std::move(m.result), "", false, unix_ms()});
                    } else if constexpr (std::is_same_v<T, proto::Fail>) {
                        ops.push_back(store::FinishJob{std::move(m.job), m.attempt, m.wseq, false,
                                                       "{}", std::move(m.error), m.retryable,
                                                       unix_ms()});
                    }
                }
            },
            message);
    }

    static std::vector<std::pair<std::string, int>> attempts_of(
        const std::vector<proto::InflightJob>& held) {
        std::vector<std::pair<std::string, int>> out;
        out.reserve(held.size());
        for (const auto& f : held)
            out.emplace_back(f.job, f.attempt);
        return out;
    }

    // A worker listed what it holds: a lease it was given but has forgotten
    // (dropped on a reject it misread, a handler that vanished) would keep the
    // job running forever while the worker heart-beats; it is requeued now.
    void on_inflight_report(const PeerId& peer, const std::vector<proto::InflightJob>& held,
                            std::uint64_t assigned, std::vector<store::WriteOp>& ops) {
        for (const auto& lost :
             dispatcher_.reconcile(peer, attempts_of(held), assigned, Clock::now())) {
            stats_.leases_lost.fetch_add(1, std::memory_order_relaxed);
            log_->warn("event=lease_lost job={} attempt={} worker={} reason={}", lost.job,
                       lost.attempt, log_quote(lost.worker),
                       lost.never_received ? "assign_never_received" : "not_running");
            ops.push_back(store::RequeueJob{
                lost.job, lost.attempt,
                "worker " + lost.worker +
                    (lost.never_received ? " never acknowledged the assign" : " is not running it"),
                unix_ms()});
        }
    }

    void on_hello(const PeerId& peer, const proto::Hello& hello, const std::string& key,
                  Clock::time_point now, std::vector<store::WriteOp>& ops) {
        const bool session_ok = sessions_.valid(hello.session, key, hello.worker);
        const WorkerIdentity identity{key, session_ok};
        auto out = dispatcher_.hello(peer, hello.worker, hello.types, hello.capacity,
                                     attempts_of(hello.inflight), now, identity);
        if (out.refused_identity) {
            refuse_identity(peer, hello, key, out.refusal, now);
            return;
        }
        const std::string session = sessions_.welcome(
            hello.session, session_ok, key, hello.worker,
            [this](const std::string& name) { return dispatcher_.name_held(name); });
        send(peer, proto::Welcome{static_cast<int>(config_.heartbeat.count()), session});
        for (const auto& [job, attempt] : out.refused)
            send(peer, proto::Reject{job, "lease", attempt});
        for (const auto& lost : out.lost) {
            stats_.leases_lost.fetch_add(1, std::memory_order_relaxed);
            ops.push_back(store::RequeueJob{
                lost.job, lost.attempt, "worker " + lost.worker + " dropped the job", unix_ms()});
        }
        if (out.replaced) pending_.erase(*out.replaced);
        // A cancel asked for while the worker was away must still reach it.
        for (const auto& job : out.resumed) {
            if (cancel_deadlines_.count(job)) send(peer, proto::Cancel{job});
        }
        stats_.workers = static_cast<std::int64_t>(dispatcher_.worker_count());
        log_->info("event=hello worker={} types={} capacity={} resumed={} refused={}",
                   log_quote(hello.worker), hello.types.size(), hello.capacity, out.resumed.size(),
                   out.refused.size());
    }

    // A hello for a worker name held by someone else (another CURVE key, or
    // without the name's session): refused, counted, and audit-logged once
    // per name per interval (the refused worker retries; an attacker may flood).
    void refuse_identity(const PeerId& peer, const proto::Hello& hello, const std::string& key,
                         const std::string& why, Clock::time_point now) {
        stats_.rejected_identity.fetch_add(1, std::memory_order_relaxed);
        send(peer, proto::Reject{"", "identity", 0, why});
        auto& last = last_identity_refusal_[hello.worker];
        if (last != Clock::time_point{} && now - last < std::chrono::seconds(10)) return;
        last = now;
        audit_->warn(
            "event=worker_refused reason=identity worker={} key={} peer={} claimed_leases={} "
            "detail={}",
            log_quote(hello.worker), key.empty() ? "none" : key, hex(peer), hello.inflight.size(),
            log_quote(why));
    }

    // ---- writer -> gateway ----

    void drain_inbox() {
        std::vector<store::WriteAck> acks;
        std::vector<Job> changes;
        std::vector<LeaseResult> leases;
        {
            std::lock_guard lock(inbox_mutex_);
            acks.swap(inbox_acks_);
            changes.swap(inbox_changes_);
            leases.swap(inbox_leases_);
        }
        if (acks.empty() && changes.empty() && leases.empty()) return;
        send_acks(acks);  // before the changes: a finished job's holder is still known
        std::vector<store::WriteOp> ops;
        for (auto& result : leases)
            on_lease_result(result, ops);
        for (const Job& job : changes)
            on_job_change(job);
        if (!ops.empty()) store_.submit_many(std::move(ops));
        stats_.queue_depth = static_cast<std::int64_t>(dispatcher_.queue_depth());
    }

    void send_acks(const std::vector<store::WriteAck>& acks) {
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
            if (o.ack) send(o.peer, proto::Ack{key.first, key.second, o.wseq});
            if (o.reject) send(o.peer, proto::Reject{key.first, o.reject, key.second});
        }
    }

    void on_lease_result(const LeaseResult& result, std::vector<store::WriteOp>& ops) {
        if (result.status != store::WriteStatus::ok || !result.snapshot) {
            dispatcher_.lease_refused(result.job);
            return;
        }
        const Job& job = *result.snapshot;
        dispatcher_.lease_granted(job.id, job.attempt);
        auto peer = dispatcher_.holder(job.id, job.attempt);
        if (!peer) {
            // The worker left between the pick and the commit.
            ops.push_back(store::RequeueJob{job.id, job.attempt,
                                            "worker left before the job reached it", unix_ms()});
            return;
        }
        // Only what the worker can decode: an assign it would drop holds its
        // slot for nothing. Submit refuses such params, but a checkpoint can
        // push an assign over the frame limit, and older databases may hold
        // params from before that check.
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
            ops.push_back(store::FinishJob{job.id, job.attempt, 1, false, "{}", std::move(error),
                                           false, unix_ms()});
            return;
        }
        dispatcher_.assign_sent(job.id, Clock::now());
        send_frame(*peer, assign_frame_);
    }

    void on_job_change(const Job& job) {
        switch (job.state) {
            case JobState::queued:
                // New, retried or requeued after a lost lease.
                dispatcher_.end_lease(job.id);
                dispatcher_.enqueue({job.id, job.type, job.priority});
                break;
            case JobState::running:
                if (job.cancel_requested && !cancel_deadlines_.count(job.id)) {
                    cancel_deadlines_[job.id] = Clock::now() + config_.cancel_grace;
                    if (auto peer = dispatcher_.holder(job.id, job.attempt)) {
                        send(*peer, proto::Cancel{job.id});
                    }
                }
                break;
            case JobState::succeeded:
            case JobState::failed:
            case JobState::cancelled:
                if (auto peer = dispatcher_.holder(job.id);
                    peer && job.state == JobState::cancelled) {
                    send(*peer, proto::Cancel{job.id});  // ended by force: stop the worker too
                }
                dispatcher_.forget(job.id);
                cancel_deadlines_.erase(job.id);
                break;
        }
    }

    // ---- dispatch and timers ----

    void dispatch() {
        auto picks = dispatcher_.assign();
        if (picks.empty()) return;
        auto now = unix_ms();
        for (auto& pick : picks) {
            std::string job = pick.job;
            store_.submit(store::LeaseJob{pick.job, pick.worker, now},
                          [this, job](const store::WriteResult& r) {
                              {
                                  std::lock_guard lock(inbox_mutex_);
                                  inbox_leases_.push_back({job, r.status, r.job});
                              }
                              wake();
                          });
        }
        stats_.queue_depth = static_cast<std::int64_t>(dispatcher_.queue_depth());
    }

    void tick(Clock::time_point now) {
        for (const auto& peer : dispatcher_.peers())
            send(peer, proto::Heartbeat{});
        std::vector<store::WriteOp> ops;
        for (const auto& lost : dispatcher_.expire(now)) {
            stats_.leases_lost.fetch_add(1, std::memory_order_relaxed);
            log_->warn("event=lease_lost job={} attempt={} worker={}", lost.job, lost.attempt,
                       log_quote(lost.worker));
            ops.push_back(store::RequeueJob{lost.job, lost.attempt,
                                            "worker " + lost.worker + " stopped heart-beating",
                                            unix_ms()});
        }
        for (auto it = cancel_deadlines_.begin(); it != cancel_deadlines_.end();) {
            if (now < it->second) {
                ++it;
                continue;
            }
            log_->warn("event=cancel_forced job={}", it->first);
            ops.push_back(store::CancelJob{it->first, true, unix_ms()});
            it->second = Clock::time_point::max();  // once
            ++it;
        }
        for (auto it = last_complaint_.begin(); it != last_complaint_.end();) {
            it = now - it->second > std::chrono::minutes(1) ? last_complaint_.erase(it)
                                                            : std::next(it);
        }
        for (auto it = last_identity_refusal_.begin(); it != last_identity_refusal_.end();) {
            it = now - it->second > std::chrono::minutes(1) ? last_identity_refusal_.erase(it)
                                                            : std::next(it);
        }
        if (!ops.empty()) store_.submit_many(std::move(ops));
        stats_.workers = static_cast<std::int64_t>(dispatcher_.worker_count());
    }

    // ---- broker -> worker ----

    void send(const PeerId& peer, const proto::BrokerMessage& message) {
        proto::encode(message, scratch_);
        send_frame(peer, scratch_);
    }

    void send_frame(const PeerId& peer, const std::string& frame) {
        auto it = pending_.find(peer);
        if (it != pending_.end()) {  // keep order behind what is already waiting
            it->second.push_back(frame);
            if (it->second.size() > config_.max_pending_sends) drop_peer(peer, "not reading");
            return;
        }
        if (!try_send(peer, frame)) pending_[peer].push_back(frame);
    }

    // False when the peer's pipe is full (retry later); a vanished peer is dropped.
    bool try_send(const PeerId& peer, const std::string& frame) {
        try {
            auto sent = router_.send(zmq::buffer(peer),
                                     zmq::send_flags::sndmore | zmq::send_flags::dontwait);
            if (!sent) return false;
            router_.send(zmq::buffer(frame), zmq::send_flags::dontwait);
            return true;
        } catch (const zmq::error_t& e) {
            if (e.num() == EHOSTUNREACH) {
                drop_peer(peer, "disconnected");
                return true;
            }
            throw;
        }
    }

    void flush_pending() {
        for (auto it = pending_.begin(); it != pending_.end();) {
            auto& queue = it->second;
            while (!queue.empty() && try_send(it->first, queue.front()))
                queue.pop_front();
            it = queue.empty() ? pending_.erase(it) : std::next(it);
        }
    }

    // The worker is likely reconnecting (a new connection, a new peer id): its
    // jobs wait one lease timeout for its hello to claim them before they are
    // requeued, so a reconnect does not cost an attempt.
    void drop_peer(const PeerId& peer, std::string_view why) {
        pending_.erase(peer);
        if (!dispatcher_.known(peer)) return;
        auto name = dispatcher_.worker_name(peer);
        const auto orphaned = dispatcher_.disconnect(peer, Clock::now());
        log_->warn("event=worker_dropped worker={} reason={} leases_held_for_reconnect={}",
                   log_quote(name), log_quote(why), orphaned);
        stats_.workers = static_cast<std::int64_t>(dispatcher_.worker_count());
    }

    GatewayConfig config_;
    store::Store& store_;
    std::shared_ptr<spdlog::logger> log_;
    std::shared_ptr<spdlog::logger> audit_;
    WorkerSessions sessions_;  // keyed with the store's worker session key
    Dispatcher dispatcher_;
    GatewayStats stats_;

    zmq::context_t context_{1};
    std::unique_ptr<ZapHandler> zap_;  // CURVE on: decides which workers may connect
    zmq::socket_t router_;
    std::string endpoint_;
    int wake_fd_ = -1;
    std::atomic<bool> running_{false};
    std::thread thread_;

    std::mutex inbox_mutex_;
    std::vector<store::WriteAck> inbox_acks_;
    std::vector<Job> inbox_changes_;
    std::vector<LeaseResult> inbox_leases_;

    std::unordered_map<std::string, Clock::time_point> cancel_deadlines_;
    std::unordered_map<PeerId, std::deque<std::string>> pending_;
    std::unordered_map<PeerId, Clock::time_point> last_complaint_;
    std::unordered_map<std::string, Clock::time_point> last_identity_refusal_;  // by worker name
    std::string scratch_;
    std::string assign_frame_;
};

Gateway::Gateway(GatewayConfig config, store::Store& store)
    : impl_(std::make_unique<Impl>(std::move(config), store)) {}
Gateway::~Gateway() = default;
void Gateway::start() {
    impl_->start();
}
std::string Gateway::endpoint() const {
    return impl_->endpoint();
}
void Gateway::on_commit(const store::CommittedBatch& batch) {
    impl_->on_commit(batch);
}
void Gateway::stop() {
    impl_->stop();
}
const GatewayStats& Gateway::stats() const {
    return impl_->stats();
}

}  // namespace jobcast::broker
