#include "broker/gateway.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include <zmq.hpp>

#include "broker/memory_job_queue.hpp"
#include "broker/worker_protocol.hpp"
#include "broker/zap_handler.hpp"
#include "common/log_quote.hpp"
#include "common/logging.hpp"
#include "common/thread_name.hpp"
#include "common/time_bounds.hpp"

namespace jobcast::broker {

namespace {

// Cluster mode: how often, and for how many jobs at most, the queue here is
// looked up in the cluster's.
constexpr auto kQueueCheckInterval = std::chrono::seconds(1);
constexpr std::size_t kQueueCheckBatch = 5000;
// A round of the worker loop reads up to 8,192 messages, and a `chunks` is up
// to 64 ops: the ops are handed to the store every this many (between
// messages), so one round's backlog is not one vector of hundreds of MB
// committed as one transaction past the writer's queue bound.
constexpr std::size_t kSubmitOps = 8192;

}  // namespace

class Gateway::Impl {
  public:
    Impl(GatewayConfig config, store::Store& store, const Clock& clock, ClusterLink* cluster)
        : config_(std::move(config)),
          store_(store),
          clock_(clock),
          cluster_(cluster),
          log_(module_logger("gateway")),
          queue_(clock, config_.lease_timeout()),
          protocol_(config_, store.worker_session_key(), clock, stats_, queue_) {}

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
        if (config_.reload_unfinished) protocol_.reload(store_.jobs().unfinished());
        running_ = true;
        thread_ = std::thread([this] {
            name_this_thread("jc-gateway");
            loop();
        });
    }

    std::string endpoint() const { return endpoint_; }

    // Acks alone (chunks committed; no lease outcome, no job changed) do not
    // wake the gateway: they go out within kAckDelay with whatever round
    // comes first, usually the one the next message in wakes (after a
    // submit the loop sleeps at most kAckDelay for a while). A gateway that
    // sleeps longer than that is woken. Leases and job changes (a job
    // finished, the next one to dispatch) wake it at once. Acks only free
    // the worker's buffer: nothing is shown later for this.
    void on_commit(const store::CommittedBatch& batch) {
        if (batch.acks.empty() && batch.leases.empty() && batch.job_changes.empty()) return;
        const bool acks_only = batch.leases.empty() && batch.job_changes.empty();
        {
            std::lock_guard lock(inbox_mutex_);
            append_acks(inbox_acks_, batch.acks);  // one per run of an attempt's oks
            inbox_leases_.insert(inbox_leases_.end(), batch.leases.begin(), batch.leases.end());
            inbox_changes_.insert(inbox_changes_.end(), batch.job_changes.begin(),
                                  batch.job_changes.end());
            if (acks_only) acks_waiting_.store(true);
        }
        if (acks_only && asleep_until_.load() <= steady_ns() + ns(kAckDelay)) return;
        wake();
    }

    void offer(std::vector<QueuedJob> jobs) {
        {
            std::lock_guard lock(inbox_mutex_);
            for (auto& job : jobs)
                inbox_offers_.push_back(std::move(job));
        }
        wake();
    }

    void cancel_requested(std::vector<std::string> jobs) {
        {
            std::lock_guard lock(inbox_mutex_);
            for (auto& job : jobs)
                inbox_cancels_.push_back(std::move(job));
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
            protocol_.goodbye(out_);
            deliver();
            const auto deadline = clock_.steady() + std::chrono::milliseconds(500);
            while (!pending_.empty() && clock_.steady() < deadline) {
                flush_pending();
                if (!pending_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            router_.set(zmq::sockopt::linger, 1000);
            log_->info("event=workers_told_to_reconnect workers={}", protocol_.worker_count());
        } catch (const std::exception& e) {
            log_->warn("event=goodbye_failed error={}", log_quote(e.what()));
        }
    }

    void wake() {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }

    void loop() {
        auto next_tick = clock_.steady();
        auto next_renew = next_tick;
        auto next_queue_check = next_tick;
        auto last_round = next_tick;
        while (running_) {
            zmq::pollitem_t items[] = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                                       {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
            auto wait = std::max(
                std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - clock_.steady()),
                std::chrono::milliseconds(0));
            if (!pending_.empty()) wait = std::chrono::milliseconds(1);
            // Just after a submit its acks are due: a short sleep lets them
            // go out without their commit waking the loop.
            const std::int64_t round_ns = steady_ns();
            if (wait > kAckDelay && round_ns < acks_expected_until_) wait = kAckDelay;
            // Publish how long this round sleeps, then look for acks that
            // did not wake it (on_commit stores the flag, then reads this:
            // one of the two sees the other's store).
            asleep_until_.store(round_ns + ns(wait));
            if (wait > kAckDelay && acks_waiting_.load()) {
                wait = kAckDelay;
                asleep_until_.store(round_ns + ns(wait));
            }
            try {
                zmq::poll(items, 2, wait);
                asleep_until_.store(0);  // awake: this round drains the inbox
                if (items[1].revents & ZMQ_POLLIN) {
                    std::uint64_t count;
                    [[maybe_unused]] auto n = ::read(wake_fd_, &count, sizeof count);
                }
                drain_router();
                drain_inbox();
                protocol_.dispatch(out_);
                submit();
                want_from_cluster();
                auto now = clock_.steady();
                forgive_own_stall(now - last_round - wait);
                last_round = now;
                if (now >= next_tick) {
                    protocol_.tick(out_);
                    deliver();
                    submit();
                    next_tick = now + config_.heartbeat;
                }
                if (cluster_ && now >= next_renew) {
                    renew_in_cluster();
                    next_renew = now + config_.lease_timeout() / 3;
                }
                if (cluster_ && now >= next_queue_check) {
                    check_queue_in_cluster();
                    next_queue_check = now + kQueueCheckInterval;
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
            out_.clear_sends();
            out_.ops.clear();
            decoding_.clear();
        }
    }

    // A round of this loop took `away` longer than the wait it asked for: the
    // process was stopped, starved of CPU or blocked on the store. Workers'
    // messages waited in the socket meanwhile, so their silence is not theirs;
    // without this, a broker back from a pause would requeue every running job.
    // Rounds slower than one heartbeat only count: busy rounds are not stalls,
    // and a dead worker still expires under a flood of other workers' chunks.
    void forgive_own_stall(Steady::duration away) {
        if (away > config_.heartbeat) protocol_.stalled(away);
    }

    // ---- worker -> broker ----

    void drain_router() {
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
                protocol_.malformed(peer, "multipart frame");
                continue;
            }
            const std::string_view frame(static_cast<const char*>(payload.data()), payload.size());
            if (auto held = claiming_.find(peer); held != claiming_.end()) {
                // Behind a hello that waits for the cluster: in order, after it.
                held->second.emplace_back(std::string(frame), curve_key(payload));
                continue;
            }
            const auto received = clock_.steady();
            const auto received_us = clock_.unix_us();
            const std::size_t ops_before = out_.ops.size();
            protocol_.on_frame(peer, frame, curve_key(payload), out_);
            time_frame(received, received_us, ops_before);
            deliver();
            forward_claims();  // a hello held back for the cluster holds what follows it
            if (out_.ops.size() >= kSubmitOps) submit();
        }
        submit();
    }

    // Stage timing of the frame just handled, whose ops start at `first_op`:
    // transport (the chunks' emit time -> received, their mean, once per
    // frame) now, decode when its ops are submitted.
    void time_frame(Steady received, std::int64_t received_us, std::size_t first_op) {
        if (out_.ops.size() <= first_op) return;
        // A worker's ts is its own: one ahead of our clock counts nothing,
        // and each is capped far above the top bucket, so no sum overflows.
        constexpr std::int64_t kCapUs = 1'000'000'000;
        std::int64_t since_emit_us = 0;
        std::uint64_t chunks = 0;
        for (std::size_t i = first_op; i < out_.ops.size(); ++i) {
            if (const auto* chunk = std::get_if<store::AppendChunk>(&out_.ops[i])) {
                if (auto us = time_bounds::elapsed_since(chunk->ts, received_us)) {
                    since_emit_us += std::min(*us, kCapUs);
                    ++chunks;
                }
            }
        }
        if (chunks) {
            stats_.transport.observe(
                std::chrono::microseconds(since_emit_us / static_cast<std::int64_t>(chunks)),
                chunks);
        }
        decoding_.emplace_back(received, out_.ops.size() - first_op);
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

    // ---- writer -> gateway ----

    void drain_inbox() {
        std::vector<store::WriteAck> acks;
        std::vector<store::LeaseOutcome> leases;
        std::vector<Job> changes;
        std::vector<QueuedJob> offers;
        std::vector<Renewal> renewals;
        std::vector<std::pair<ClaimRequest, Inflight>> claims;
        std::vector<std::string> cancels;
        std::optional<std::vector<std::string>> not_queued;
        {
            std::lock_guard lock(inbox_mutex_);
            acks_waiting_.store(false);
            acks.swap(inbox_acks_);
            leases.swap(inbox_leases_);
            changes.swap(inbox_changes_);
            offers.swap(inbox_offers_);
            renewals.swap(inbox_renewals_);
            claims.swap(inbox_claims_);
            cancels.swap(inbox_cancels_);
            not_queued.swap(inbox_not_queued_);
        }
        if (!acks.empty() || !leases.empty() || !changes.empty()) {
            protocol_.on_commit(acks, leases, changes, out_);
            deliver();
            submit();
        }
        if (!offers.empty()) protocol_.on_offered(std::move(offers));
        if (not_queued) protocol_.on_not_queued(*not_queued);
        for (const Renewal& renewal : renewals) {
            protocol_.on_renewed(renewal, out_);
            deliver();
        }
        if (!cancels.empty()) cancel_held(cancels);
        for (const auto& [request, claimed] : claims) {
            protocol_.on_claimed(request, claimed, out_);
            deliver();
            auto held = claiming_.extract(request.peer);
            if (!held.empty()) {
                for (const auto& [frame, key] : held.mapped()) {
                    protocol_.on_frame(request.peer, frame, key, out_);
                    deliver();
                }
            }
            submit();
        }
    }

    // ---- the cluster (cluster mode) ----

    // Free slots by type, when they changed: jobs queued on other brokers.
    void want_from_cluster() {
        if (!cluster_) return;
        auto free = protocol_.free_slots();
        if (free == last_wanted_) return;
        last_wanted_ = free;
        cluster_->want(std::move(free));
    }

    // A cancel hint: for the leases held here, what the next renewal would
    // say (the hint comes only after the cancel is durable).
    void cancel_held(const std::vector<std::string>& jobs) {
        Renewal renewal;
        for (const auto& [job, attempt] : protocol_.held())
            if (std::find(jobs.begin(), jobs.end(), job) != jobs.end())
                renewal.cancel.push_back(job);
        if (renewal.cancel.empty()) return;
        protocol_.on_renewed(renewal, out_);
        deliver();
    }

    void renew_in_cluster() {
        cluster_->renew(protocol_.held(), [this](Renewal renewal) {
            {
                std::lock_guard lock(inbox_mutex_);
                inbox_renewals_.push_back(std::move(renewal));
            }
            wake();
        });
    }

    // Jobs queued here that the cluster no longer has queued (another broker
    // leased them, or they ended there) leave the queue: no commit of this
    // broker tells it. At most kQueueCheckBatch a round, in turns; one
    // lookup at a time (a shard failing over holds it back).
    void check_queue_in_cluster() {
        auto jobs = protocol_.start_queue_check(kQueueCheckBatch);
        if (jobs.empty()) return;
        cluster_->not_queued(std::move(jobs), [this](std::vector<std::string> gone) {
            {
                std::lock_guard lock(inbox_mutex_);
                inbox_not_queued_ = std::move(gone);
            }
            wake();
        });
    }

    // Hellos held back for the cluster to move their leases here.
    void forward_claims() {
        if (out_.claims.empty()) return;
        std::vector<ClaimRequest> claims;
        claims.swap(out_.claims);
        for (auto& request : claims) {
            if (!cluster_) {
                protocol_.on_claimed(request, {}, out_);
                continue;
            }
            claiming_.try_emplace(request.peer);
            Inflight inflight = request.inflight;
            const std::string worker = request.worker;
            cluster_->claim(worker, std::move(inflight),
                            [this, request = std::move(request)](Inflight claimed) {
                                {
                                    std::lock_guard lock(inbox_mutex_);
                                    inbox_claims_.emplace_back(request, std::move(claimed));
                                }
                                wake();
                            });
        }
    }

    // ---- what the protocol asked for ----

    void submit() {
        forward_claims();
        if (out_.ops.empty()) return;
        if (!decoding_.empty()) {
            const auto now = clock_.steady();
            for (const auto& [received, ops] : decoding_)
                stats_.decode.observe(now - received, ops);
            decoding_.clear();
        }
        store_.submit_many(std::move(out_.ops));
        out_.ops.clear();
        acks_expected_until_ = steady_ns() + ns(kAcksExpectedFor);
    }

    void deliver() {
        for (const PeerId& peer : out_.replaced)
            pending_.erase(peer);
        for (auto& [peer, frame] : out_.frames)
            send_frame(peer, std::move(frame));
        out_.clear_sends();
    }

    void send_frame(const PeerId& peer, std::string frame) {
        auto it = pending_.find(peer);
        if (it != pending_.end()) {  // keep order behind what is already waiting
            it->second.push_back(std::move(frame));
            if (it->second.size() > config_.max_pending_sends) drop_peer(peer, "not reading");
            return;
        }
        switch (try_send(peer, frame)) {
            case Sent::yes:
                break;
            case Sent::full:
                pending_[peer].push_back(std::move(frame));
                break;
            case Sent::gone:
                drop_peer(peer, "disconnected");
                break;
        }
    }

    enum class Sent { yes, full, gone };  // full: retry later; gone: the peer vanished

    Sent try_send(const PeerId& peer, const std::string& frame) {
        try {
            auto sent = router_.send(zmq::buffer(peer),
                                     zmq::send_flags::sndmore | zmq::send_flags::dontwait);
            if (!sent) return Sent::full;
            router_.send(zmq::buffer(frame), zmq::send_flags::dontwait);
            return Sent::yes;
        } catch (const zmq::error_t& e) {
            if (e.num() == EHOSTUNREACH) return Sent::gone;
            throw;
        }
    }

    void flush_pending() {
        for (auto it = pending_.begin(); it != pending_.end();) {
            auto& queue = it->second;
            Sent sent = Sent::yes;
            while (!queue.empty() && (sent = try_send(it->first, queue.front())) == Sent::yes)
                queue.pop_front();
            if (sent == Sent::gone) {
                // Erased here, not in drop_peer: `it` and its key stay valid until then.
                const PeerId peer = it->first;
                it = pending_.erase(it);
                drop_peer(peer, "disconnected");
            } else {
                it = queue.empty() ? pending_.erase(it) : std::next(it);
            }
        }
    }

    // The worker is likely reconnecting (a new connection, a new peer id): its
    // jobs wait one lease timeout for its hello to claim them before they are
    // requeued, so a reconnect does not cost an attempt.
    void drop_peer(const PeerId& peer, std::string_view why) {
        pending_.erase(peer);
        protocol_.disconnected(peer, why);
    }

    GatewayConfig config_;
    store::Store& store_;
    const Clock& clock_;
    ClusterLink* const cluster_;
    std::map<std::string, std::size_t> last_wanted_;
    // Connections whose hello waits for the cluster, and the frames (and
    // their CURVE keys) that came after it.
    std::unordered_map<PeerId, std::vector<std::pair<std::string, std::string>>> claiming_;
    std::shared_ptr<spdlog::logger> log_;
    GatewayStats stats_;
    MemoryJobQueue queue_;
    WorkerProtocol protocol_;
    Outbox out_;  // what the protocol asked for, delivered after each call
    // Frames whose ops wait in out_.ops: when each was received, its ops.
    std::vector<std::pair<Steady, std::size_t>> decoding_;

    zmq::context_t context_{1};
    std::unique_ptr<ZapHandler> zap_;  // CURVE on: decides which workers may connect
    zmq::socket_t router_;
    std::string endpoint_;
    int wake_fd_ = -1;
    std::atomic<bool> running_{false};
    std::thread thread_;

    static constexpr std::chrono::milliseconds kAckDelay{2};
    // How long after a submit the loop keeps its sleeps within kAckDelay
    // (a commit slower than that wakes it as before).
    static constexpr std::chrono::milliseconds kAcksExpectedFor{10};
    std::int64_t acks_expected_until_ = 0;  // loop thread only
    static std::int64_t steady_ns() {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }
    static std::int64_t ns(std::chrono::milliseconds d) {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    }
    // Real time (poll sleeps in it) until which the loop sleeps; 0 while a
    // round runs. And whether acks wait in the inbox without having woken it.
    std::atomic<std::int64_t> asleep_until_{0};
    std::atomic<bool> acks_waiting_{false};

    std::mutex inbox_mutex_;
    std::vector<store::WriteAck> inbox_acks_;
    std::vector<store::LeaseOutcome> inbox_leases_;
    std::vector<Job> inbox_changes_;
    std::vector<QueuedJob> inbox_offers_;
    std::vector<Renewal> inbox_renewals_;
    std::vector<std::pair<ClaimRequest, Inflight>> inbox_claims_;
    std::vector<std::string> inbox_cancels_;
    std::optional<std::vector<std::string>> inbox_not_queued_;  // a queue check's answer

    std::unordered_map<PeerId, std::deque<std::string>> pending_;
};

Gateway::Gateway(GatewayConfig config, store::Store& store, const Clock& clock,
                 ClusterLink* cluster)
    : impl_(std::make_unique<Impl>(std::move(config), store, clock, cluster)) {}
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
void Gateway::offer(std::vector<QueuedJob> jobs) {
    impl_->offer(std::move(jobs));
}
void Gateway::cancel_requested(std::vector<std::string> jobs) {
    impl_->cancel_requested(std::move(jobs));
}
void Gateway::stop() {
    impl_->stop();
}
const GatewayStats& Gateway::stats() const {
    return impl_->stats();
}

}  // namespace jobcast::broker
