// The Worker: one I/O thread (the caller of run()) owns the DEALER socket and
// every job's unacknowledged frames; `capacity` handler threads run jobs and
// hand their encoded frames to the I/O thread through a mutex-protected vector
// plus an eventfd (written only when the vector goes from empty to non-empty,
// so a busy handler costs one syscall per I/O batch, not per token).
//
// Message life: a handler's emit assigns the job's next wseq, encodes the frame
// once, waits while the worker's unacked bytes are over the bound, and queues
// it. The I/O thread moves it into the job's UnackedFrames and sends it when
// the socket takes it (EAGAIN keeps it queued, never drops it). An ack frees
// every frame up to its wseq and wakes blocked emitters. After a reconnect, a
// "hello" reject or a "gap" reject, frames are re-sent from the oldest
// unacknowledged one; the broker drops duplicates by wseq.
#include "workers/worker.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "common/log_quote.hpp"
#include "protocol/codec.hpp"
#include "protocol/json.hpp"
#include "protocol/limits.hpp"
#include "workers/backoff.hpp"
#include "workers/log.hpp"
#include "workers/text.hpp"
#include "workers/unacked_frames.hpp"

namespace jobcast::worker {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The broker drops frames over its decode limit, so a bigger one could never be
// acknowledged; refuse it at the source instead.
constexpr std::size_t kMaxFrameBytes = proto::kMaxFrameBytes;
constexpr int kSocketHighWaterMark = 100000;
constexpr int kMaxReceivesPerWake = 4096;

UnixUs now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string default_worker_name() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "worker");
    // Within the broker's 128 bytes for a name, with room for the pid.
    return std::string(host).substr(0, 100) + "-" + std::to_string(getpid());
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += ',';
        out += item;
    }
    return out;
}

}  // namespace

namespace detail {

// One assigned job attempt. The handler thread writes through the JobSink
// side; the I/O thread owns the send state below "I/O thread only".
class JobRun final : public JobSink, public std::enable_shared_from_this<JobRun> {
  public:
    JobRun(WorkerImpl& owner, JobSpec spec, const Handler* handler)
        : owner(owner),
          job_id(spec.job_id),
          attempt(spec.attempt),
          type(spec.type),
          resumed(!spec.checkpoint.empty()),
          handler(handler),
          context(std::move(spec), *this) {
        auto& chunk = std::get<proto::Chunk>(chunk_message);
        chunk.job = job_id;
        chunk.attempt = attempt;
    }

    void emit(EventKind kind, std::string& data_json) override;
    void save_checkpoint(std::string_view bytes) override;

    WorkerImpl& owner;
    const std::string job_id;
    const int attempt;
    const std::string type;
    const bool resumed;
    const Handler* handler;  // null when no handler is registered for the type
    JobContext context;

    // Shared between threads.
    std::atomic<std::uint64_t> next_wseq{1};    // the wseq of the next message created
    std::atomic<bool> closed{false};            // takes no more output (written under the
                                                // worker's mutex so blocked emitters wake)
    std::atomic<bool> cancel_requested{false};  // the broker sent cancel

    // Handler thread only: reused so a token costs one allocation (its frame).
    proto::WorkerMessage chunk_message{std::in_place_type<proto::Chunk>};
    std::string encoded;

    // I/O thread only.
    UnackedFrames unacked;
    std::uint64_t next_to_send = 1;   // first frame not yet sent on the current socket
    std::uint64_t terminal_wseq = 0;  // wseq of done/fail once queued
    bool dropped = false;             // lease lost: buffer discarded, output ignored
    bool send_pending = false;        // listed in Impl::send_queue_
    bool gap_resend_active = false;   // re-sent after a "gap" reject, waiting for an ack
    std::uint64_t gap_resend_upto = 0;
    Clock::time_point gap_resent_at{};
};

class WorkerImpl {
  public:
    explicit WorkerImpl(WorkerConfig config);
    ~WorkerImpl();

    void handle(std::string type, Handler handler);
    void run();
    void stop() noexcept;
    WorkerStats stats() const;
    const WorkerConfig& config() const { return config_; }

    // Handler threads: queues run.encoded as message `wseq` of the job,
    // blocking while the unacked bound is exceeded.
    void submit(JobRun& run, std::uint64_t wseq, bool terminal);

  private:
    struct Outbound {
        std::shared_ptr<JobRun> job;
        std::uint64_t wseq;
        std::string frame;
        bool terminal;
    };

    struct Counters {
        std::atomic<std::uint64_t> events_emitted{0}, messages_sent{0}, messages_resent{0},
            acks_received{0}, unacked_messages{0}, emit_waits{0}, reconnects{0}, hellos{0},
            rejects_received{0}, bad_messages{0}, jobs_assigned{0}, jobs_running{0},
            jobs_succeeded{0}, jobs_failed{0}, jobs_abandoned{0};
        std::atomic<bool> connected{false};
    };

    // I/O thread.
    void loop();
    void open_socket(Clock::time_point now, bool first);
    void close_socket();
    void schedule_reconnect(Clock::time_point now);
    void send_hello();
    void resend_all();
    void resend_job(JobRun& run);
    bool send_frame(const std::string& frame);
    void schedule_send(const std::shared_ptr<JobRun>& run);
    void flush_sends();
    void pump_outbound();
    void receive_all();
    void on_undecodable(std::string_view frame, const proto::DecodeError& error);
    void fail_unreadable_assign(const std::string& job, int attempt, std::string error);
    void on_message(proto::Welcome& message);
    void on_message(proto::Assign& message);
    std::vector<proto::InflightJob> inflight() const;
    void send_heartbeat();
    void on_message(proto::Ack& message);
    void on_message(proto::Cancel& message);
    void on_message(proto::Heartbeat& message);
    void on_message(proto::Reject& message);
    void drop_job(const std::shared_ptr<JobRun>& run, std::string_view reason);
    void release(std::size_t bytes);
    void begin_stop(Clock::time_point now);
    bool all_acked();
    milliseconds liveness_window() const { return heartbeat_ * config_.liveness; }

    // Handler threads.
    void pool_loop();
    void run_job(const std::shared_ptr<JobRun>& run);
    void wake_io() noexcept;

    WorkerConfig config_;
    std::shared_ptr<spdlog::logger> log_;
    std::unordered_map<std::string, Handler> handlers_;
    int wake_fd_ = -1;
    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> running_{false};
    mutable Counters counters_;

    // Guards outbound_ and unacked_bytes_; space_cv_ wakes emitters blocked on the bound.
    mutable std::mutex mutex_;
    std::condition_variable space_cv_;
    std::vector<Outbound> outbound_;
    std::size_t unacked_bytes_ = 0;  // queued + buffered, for every job

    std::mutex assign_mutex_;
    std::condition_variable assign_cv_;
    std::deque<std::shared_ptr<JobRun>> assign_queue_;
    bool pool_stopping_ = false;
    std::vector<std::thread> pool_;

    // I/O thread only.
    zmq::context_t zmq_context_{1};
    std::unique_ptr<zmq::socket_t> socket_;
    std::unordered_map<std::string, std::shared_ptr<JobRun>> jobs_;
    std::deque<std::shared_ptr<JobRun>> send_queue_;  // jobs with frames not yet sent
    std::vector<Outbound> batch_;
    std::string heartbeat_frame_;
    std::string scratch_;
    milliseconds heartbeat_{1000};
    Clock::time_point now_{};
    Clock::time_point last_send_{}, last_receive_{}, last_report_{}, hello_sent_at_{},
        reconnect_at_{};
    std::uint64_t assigns_received_ = 0;  // since our last hello
    // The broker's session for our name (welcome.session), sent in every
    // hello after the first so that the broker knows it is us reconnecting.
    std::string session_;
    Clock::time_point stop_deadline_{}, bad_logged_at_{};
    bool awaiting_welcome_ = false;
    bool welcomed_once_ = false;
    bool stopping_ = false;
    Backoff backoff_;
};

// ---------------------------------------------------------------- JobRun

void JobRun::emit(EventKind kind, std::string& data_json) {
    if (closed.load(std::memory_order_acquire)) return;
    auto& chunk = std::get<proto::Chunk>(chunk_message);
    const auto wseq = next_wseq.load(std::memory_order_relaxed);
    chunk.wseq = wseq;
    chunk.kind = kind;
    chunk.ts = now_us();
    chunk.data.swap(data_json);  // borrow the caller's buffer: no copy, and both keep capacity
    try {
        proto::encode(chunk_message, encoded);
    } catch (...) {
        chunk.data.swap(data_json);
        throw;
    }
    chunk.data.swap(data_json);
    owner.submit(*this, wseq, false);
}

void JobRun::save_checkpoint(std::string_view bytes) {
    if (closed.load(std::memory_order_acquire)) return;
    const auto wseq = next_wseq.load(std::memory_order_relaxed);
    proto::Checkpoint checkpoint;
    checkpoint.job = job_id;
    checkpoint.attempt = attempt;
    checkpoint.wseq = wseq;
    checkpoint.bytes.assign(bytes);
    proto::encode(proto::WorkerMessage{std::move(checkpoint)}, encoded);
    owner.submit(*this, wseq, false);
}

// ---------------------------------------------------------------- Impl

WorkerImpl::WorkerImpl(WorkerConfig config)
    : config_(std::move(config)),
      log_(worker_logger()),
      backoff_(config_.reconnect_min, config_.reconnect_max, std::random_device{}()) {
    if (config_.broker.empty()) throw std::invalid_argument("worker: broker endpoint is empty");
    if (config_.capacity < 1 || config_.capacity > proto::kMaxCapacity) {
        throw std::invalid_argument("worker: capacity must be between 1 and 1024");
    }
    if (config_.liveness < 1) throw std::invalid_argument("worker: liveness must be at least 1");
    if (config_.max_unacked_bytes == 0) {
        throw std::invalid_argument("worker: max_unacked_bytes must be positive");
    }
    if (config_.reconnect_min.count() <= 0 || config_.reconnect_max < config_.reconnect_min) {
        throw std::invalid_argument("worker: need 0 < reconnect_min <= reconnect_max");
    }
    if (config_.name.empty()) config_.name = default_worker_name();
    if (!proto::is_printable_name(config_.name, proto::kMaxWorkerNameBytes)) {
        throw std::invalid_argument(
            "worker: name must be 1 to 128 bytes of UTF-8 without control characters");
    }
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    proto::encode(proto::WorkerMessage{proto::Heartbeat{}}, heartbeat_frame_);
}

WorkerImpl::~WorkerImpl() {
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

void WorkerImpl::handle(std::string type, Handler handler) {
    if (running_.load()) throw std::logic_error("worker: handle() after run()");
    handlers_[std::move(type)] = std::move(handler);
}

void WorkerImpl::stop() noexcept {
    stop_requested_.store(true);
    wake_io();
}

void WorkerImpl::wake_io() noexcept {
    const std::uint64_t one = 1;
    // A full counter (EAGAIN) already means "wake up"; nothing else can fail here.
    [[maybe_unused]] auto written = ::write(wake_fd_, &one, sizeof one);
}

WorkerStats WorkerImpl::stats() const {
    WorkerStats s;
    s.events_emitted = counters_.events_emitted.load();
    s.messages_sent = counters_.messages_sent.load();
    s.messages_resent = counters_.messages_resent.load();
    s.acks_received = counters_.acks_received.load();
    s.unacked_messages = counters_.unacked_messages.load();
    {
        std::lock_guard lock(mutex_);
        s.unacked_bytes = unacked_bytes_;
    }
    s.emit_waits = counters_.emit_waits.load();
    s.reconnects = counters_.reconnects.load();
    s.hellos = counters_.hellos.load();
    s.rejects_received = counters_.rejects_received.load();
    s.bad_messages = counters_.bad_messages.load();
    s.jobs_assigned = counters_.jobs_assigned.load();
    s.jobs_running = counters_.jobs_running.load();
    s.jobs_succeeded = counters_.jobs_succeeded.load();
    s.jobs_failed = counters_.jobs_failed.load();
    s.jobs_abandoned = counters_.jobs_abandoned.load();
    s.connected = counters_.connected.load();
    return s;
}

void WorkerImpl::run() {
    if (running_.exchange(true)) throw std::logic_error("worker: run() called twice");
    if (config_.types.empty()) {
        for (const auto& [type, handler] : handlers_)
            config_.types.push_back(type);
        std::sort(config_.types.begin(), config_.types.end());
    }
    if (config_.types.empty()) throw std::invalid_argument("worker: no job types to serve");
    if (config_.types.size() > proto::kMaxHelloTypes) {
        throw std::invalid_argument("worker: at most 64 job types per worker");
    }
    for (const auto& type : config_.types) {
        if (!proto::is_printable_name(type, proto::kMaxTypeBytes)) {
            throw std::invalid_argument("worker: job type '" + type +
                                        "' is not 1 to 128 bytes without control characters");
        }
        if (!handlers_.contains(type)) {
            throw std::invalid_argument("worker: no handler for job type '" + type + "'");
        }
    }
    log_->info("connecting broker={} worker={} types={} capacity={}", config_.broker,
               log_quote(config_.name), log_quote(join(config_.types)), config_.capacity);

    now_ = Clock::now();
    open_socket(now_, true);  // throws for a malformed endpoint
    pool_.reserve(static_cast<std::size_t>(config_.capacity));
    for (int i = 0; i < config_.capacity; ++i)
        pool_.emplace_back([this] { pool_loop(); });

    std::exception_ptr failure;
    try {
        loop();
    } catch (const std::exception& e) {
        failure = std::current_exception();
        log_->error("worker I/O loop failed; stopping error={}", e.what());
        begin_stop(Clock::now());
    } catch (...) {
        failure = std::current_exception();
        log_->error("worker I/O loop failed; stopping");
        begin_stop(Clock::now());
    }
    close_socket();
    for (auto& thread : pool_)
        thread.join();
    pool_.clear();
    log_->info("stopped worker={}", log_quote(config_.name));
    if (failure) std::rethrow_exception(failure);
}

void WorkerImpl::loop() {
    std::vector<zmq::pollitem_t> items;
    while (true) {
        now_ = Clock::now();
        if (stop_requested_.load() && !stopping_) begin_stop(now_);
        if (stopping_) {
            if (all_acked()) break;
            if (now_ >= stop_deadline_) {
                log_->warn("stopping with unacknowledged messages={} (broker did not ack in time)",
                           counters_.unacked_messages.load());
                break;
            }
        }
        if (!socket_ && now_ >= reconnect_at_) open_socket(now_, false);
        if (socket_ && now_ - last_receive_ >= liveness_window()) {
            log_->warn("broker silent for {} ms; reconnecting broker={}",
                       std::chrono::duration_cast<milliseconds>(now_ - last_receive_).count(),
                       config_.broker);
            close_socket();
            counters_.reconnects++;
            schedule_reconnect(now_);
        }
        // A heartbeat when idle, and one listing what we hold at least once per
        // heartbeat interval while busy (the broker reconciles leases with it).
        if (socket_ && (now_ - last_send_ >= heartbeat_ || now_ - last_report_ >= heartbeat_))
            send_heartbeat();

        // Sleep until the next timer or I/O.
        auto wake_at = now_ + milliseconds{1000};
        if (socket_) {
            wake_at = std::min({wake_at, last_send_ + heartbeat_, last_report_ + heartbeat_,
                                last_receive_ + liveness_window()});
        } else {
            wake_at = std::min(wake_at, reconnect_at_);
        }
        if (stopping_) wake_at = std::min(wake_at, stop_deadline_);
        auto timeout = std::chrono::duration_cast<milliseconds>(wake_at - now_) + milliseconds{1};
        if (timeout.count() < 0) timeout = milliseconds{0};

        items.clear();
        items.push_back({nullptr, wake_fd_, ZMQ_POLLIN, 0});
        if (socket_) {
            short events = ZMQ_POLLIN;
            if (!send_queue_.empty()) events |= ZMQ_POLLOUT;
            items.push_back({socket_->handle(), 0, events, 0});
        }
        try {
            zmq::poll(items, timeout);
        } catch (const zmq::error_t& e) {
            if (e.num() != EINTR) throw;  // a signal (e.g. the SIGTERM that calls stop())
        }
        now_ = Clock::now();

        if (items[0].revents & ZMQ_POLLIN) {
            std::uint64_t value = 0;
            [[maybe_unused]] auto got = ::read(wake_fd_, &value, sizeof value);
        }
        if (socket_) receive_all();
        pump_outbound();
        flush_sends();
    }
}

void WorkerImpl::open_socket(Clock::time_point now, bool first) {
    try {
        auto socket = std::make_unique<zmq::socket_t>(zmq_context_, zmq::socket_type::dealer);
        socket->set(zmq::sockopt::linger, 0);
        socket->set(zmq::sockopt::sndhwm, kSocketHighWaterMark);
        socket->set(zmq::sockopt::rcvhwm, kSocketHighWaterMark);
        socket->set(zmq::sockopt::reconnect_ivl, static_cast<int>(config_.reconnect_min.count()));
        socket->set(zmq::sockopt::reconnect_ivl_max,
                    static_cast<int>(config_.reconnect_max.count()));
        if (!config_.curve_server_key.empty()) {
            socket->set(zmq::sockopt::curve_serverkey, config_.curve_server_key);
            socket->set(zmq::sockopt::curve_publickey, config_.curve_public_key);
            socket->set(zmq::sockopt::curve_secretkey, config_.curve_secret_key);
        }
        socket->connect(config_.broker);
        socket_ = std::move(socket);
    } catch (const zmq::error_t& e) {
        if (first) {
            throw std::invalid_argument("worker: cannot connect to '" + config_.broker +
                                        "': " + e.what());
        }
        log_->error("cannot open socket broker={} error={}", config_.broker, e.what());
        schedule_reconnect(now);
        return;
    }
    last_receive_ = now;
    last_send_ = now;
    heartbeat_ = milliseconds{1000};  // until the broker's welcome says otherwise
    send_hello();
    resend_all();
}

void WorkerImpl::close_socket() {
    if (socket_) {
        socket_->close();
        socket_.reset();
    }
    for (auto& run : send_queue_)
        run->send_pending = false;
    send_queue_.clear();
    awaiting_welcome_ = false;
    counters_.connected.store(false);
}

void WorkerImpl::schedule_reconnect(Clock::time_point now) {
    const auto delay = backoff_.next();
    reconnect_at_ = now + delay;
    log_->debug("reconnecting in {} ms broker={}", delay.count(), config_.broker);
}

std::vector<proto::InflightJob> WorkerImpl::inflight() const {
    std::vector<proto::InflightJob> out;
    out.reserve(jobs_.size());
    for (const auto& [id, run] : jobs_) {
        if (run->dropped) continue;
        out.push_back(proto::InflightJob{run->job_id, run->attempt, run->next_wseq.load()});
    }
    return out;
}

void WorkerImpl::send_hello() {
    proto::Hello hello;
    hello.worker = config_.name;
    hello.types = config_.types;
    hello.capacity = config_.capacity;
    hello.inflight = inflight();
    hello.session = session_;
    proto::encode(proto::WorkerMessage{std::move(hello)}, scratch_);
    send_frame(scratch_);
    hello_sent_at_ = now_;
    awaiting_welcome_ = true;
    assigns_received_ = 0;  // the broker numbers its assigns from each hello
    counters_.hellos++;
}

void WorkerImpl::send_heartbeat() {
    if (stopping_ || awaiting_welcome_) {
        // Nothing to reconcile: a stopping worker ignores new assigns and
        // leaves its jobs to lease expiry; before the welcome, the hello said it.
        send_frame(heartbeat_frame_);
    } else {
        proto::encode(proto::WorkerMessage{proto::Heartbeat{inflight(), assigns_received_}},
                      scratch_);
        send_frame(scratch_);
    }
    last_send_ = last_report_ = now_;  // also after EAGAIN: not worth retrying early
}

void WorkerImpl::resend_all() {
    for (auto& run : send_queue_)
        run->send_pending = false;
    send_queue_.clear();
    for (auto& [id, run] : jobs_) {
        if (run->dropped) continue;
        resend_job(*run);
        schedule_send(run);
    }
    flush_sends();
}

void WorkerImpl::resend_job(JobRun& run) {
    const auto first = run.unacked.first_unacked();
    if (run.next_to_send > first) counters_.messages_resent += run.next_to_send - first;
    run.next_to_send = first;
}

bool WorkerImpl::send_frame(const std::string& frame) {
    if (!socket_) return false;
    try {
        if (!socket_->send(zmq::const_buffer(frame.data(), frame.size()),
                           zmq::send_flags::dontwait)) {
            return false;  // EAGAIN: the caller keeps the frame
        }
    } catch (const zmq::error_t& e) {
        log_->warn("send failed error={}", e.what());
        return false;
    }
    last_send_ = now_;
    counters_.messages_sent.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void WorkerImpl::schedule_send(const std::shared_ptr<JobRun>& run) {
    if (!socket_ || run->send_pending) return;
    run->send_pending = true;
    send_queue_.push_back(run);
}

void WorkerImpl::flush_sends() {
    while (socket_ && !send_queue_.empty()) {
        JobRun& run = *send_queue_.front();
        if (!run.dropped) {
            run.next_to_send = std::max(run.next_to_send, run.unacked.first_unacked());
            while (run.next_to_send <= run.unacked.last()) {
                const auto* frame = run.unacked.find(run.next_to_send);
                if (frame == nullptr) break;
                if (!send_frame(frame->bytes)) return;  // socket full: POLLOUT resumes here
                ++run.next_to_send;
            }
        }
        run.send_pending = false;
        send_queue_.pop_front();
    }
}

void WorkerImpl::pump_outbound() {
    {
        std::lock_guard lock(mutex_);
        if (outbound_.empty()) return;
        batch_.swap(outbound_);
    }
    std::size_t released = 0;
    for (auto& out : batch_) {
        JobRun& run = *out.job;
        const auto size = out.frame.size();
        if (run.dropped || out.wseq <= run.unacked.acked()) {
            released += size;
            continue;
        }
        if (out.terminal) run.terminal_wseq = out.wseq;
        run.unacked.push(out.wseq, std::move(out.frame));
        counters_.unacked_messages.fetch_add(1, std::memory_order_relaxed);
        if (!socket_) continue;  // re-sent after the reconnect
        // Fast path: nothing is waiting for the socket, send right away.
        if (send_queue_.empty() && run.next_to_send == out.wseq) {
            const auto* frame = run.unacked.find(out.wseq);
            if (frame != nullptr && send_frame(frame->bytes)) {
                ++run.next_to_send;
                continue;
            }
        }
        schedule_send(out.job);
    }
    batch_.clear();
    if (released > 0) release(released);
}

void WorkerImpl::receive_all() {
    for (int i = 0; i < kMaxReceivesPerWake && socket_; ++i) {
        zmq::message_t message;
        if (!socket_->recv(message, zmq::recv_flags::dontwait)) return;
        // One frame per message; tolerate an envelope by using the last part.
        while (message.more()) {
            zmq::message_t next;
            if (!socket_->recv(next, zmq::recv_flags::dontwait)) break;
            message = std::move(next);
        }
        last_receive_ = now_;
        auto decoded = proto::decode_broker_message(message.to_string_view());
        if (auto* error = std::get_if<proto::DecodeError>(&decoded)) {
            on_undecodable(message.to_string_view(), *error);
            continue;
        }
        std::visit([this](auto& message) { on_message(message); },
                   std::get<proto::BrokerMessage>(decoded));
    }
}

// A frame the decoder refused. An assign among them still ends its attempt:
// answered with a fail (not retryable: every worker decodes alike) instead of
// dropped, which would leave the job leased to us while we run nothing; and
// counted among the assigns received, so the broker's reconcile sees it.
void WorkerImpl::on_undecodable(std::string_view frame, const proto::DecodeError& error) {
    counters_.bad_messages++;
    const proto::AssignHeader header = proto::peek_assign(frame);
    if (header.is_assign) ++assigns_received_;
    const bool answer = header.is_assign && header.job && header.attempt && !stopping_;
    if (answer || now_ - bad_logged_at_ >= std::chrono::seconds{10}) {
        if (!answer) bad_logged_at_ = now_;
        log_->warn(
            "undecodable broker message type={} job={} attempt={} error={} detail={} "
            "total={}",
            header.is_assign ? "assign" : "unknown",
            header.job ? log_quote(*header.job) : std::string("none"), header.attempt.value_or(0),
            proto::to_string(error.code), log_quote(error.detail), counters_.bad_messages.load());
    }
    if (!answer) return;
    if (auto it = jobs_.find(*header.job); it != jobs_.end()) {
        if (it->second->attempt == *header.attempt) return;  // answered (or held) already
        drop_job(it->second, "reassigned");
    }
    fail_unreadable_assign(*header.job, *header.attempt,
                           "worker " + config_.name + " cannot decode the assign: " +
                               std::string(proto::to_string(error.code)) + ": " + error.detail);
}

// Ends `attempt` of `job` with a fail sent (and re-sent until acked) like any
// job's output, without running a handler.
void WorkerImpl::fail_unreadable_assign(const std::string& job, int attempt, std::string error) {
    auto run = std::make_shared<JobRun>(*this, JobSpec{job, attempt, "", "{}", ""}, nullptr);
    {
        std::lock_guard lock(mutex_);
        run->closed.store(true, std::memory_order_release);  // no handler output
    }
    proto::encode(proto::WorkerMessage{proto::Fail{job, attempt, 1, sanitize_utf8(error), false}},
                  run->encoded);
    run->next_wseq.store(2);
    run->terminal_wseq = 1;
    const std::size_t size = run->encoded.size();
    run->unacked.push(1, std::move(run->encoded));
    {
        std::lock_guard lock(mutex_);
        unacked_bytes_ += size;
    }
    counters_.unacked_messages++;
    counters_.events_emitted++;
    counters_.jobs_assigned++;
    counters_.jobs_failed++;
    jobs_.emplace(job, run);
    schedule_send(run);
    flush_sends();
}

void WorkerImpl::on_message(proto::Welcome& message) {
    heartbeat_ = milliseconds{std::clamp(message.heartbeat_ms, 10, 60000)};
    if (!message.session.empty()) session_ = std::move(message.session);
    awaiting_welcome_ = false;
    backoff_.reset();
    counters_.connected.store(true);
    if (!welcomed_once_) {
        log_->info("connected broker={} heartbeat_ms={}", config_.broker, heartbeat_.count());
        welcomed_once_ = true;
    } else {
        log_->info("reconnected broker={} inflight={}", config_.broker, jobs_.size());
    }
}

void WorkerImpl::on_message(proto::Assign& message) {
    ++assigns_received_;
    if (stopping_) {
        // Not ours to start: the broker re-queues it when our lease lapses.
        log_->debug("ignoring assign while stopping job={}", message.job);
        return;
    }
    if (auto it = jobs_.find(message.job); it != jobs_.end()) {
        if (it->second->attempt == message.attempt) return;  // a repeated assign
        drop_job(it->second, "reassigned");
    }
    const auto handler_it = handlers_.find(message.type);
    const Handler* handler = handler_it == handlers_.end() ? nullptr : &handler_it->second;
    JobSpec spec{message.job, message.attempt, message.type, std::move(message.params),
                 std::move(message.checkpoint)};
    auto run = std::make_shared<JobRun>(*this, std::move(spec), handler);
    jobs_.emplace(run->job_id, run);
    counters_.jobs_assigned++;
    std::size_t waiting = 0;
    {
        std::lock_guard lock(assign_mutex_);
        assign_queue_.push_back(run);
        waiting = assign_queue_.size();
    }
    assign_cv_.notify_one();
    log_->debug("assigned job={} attempt={} type={}", run->job_id, run->attempt,
                log_quote(run->type));
    if (waiting > static_cast<std::size_t>(config_.capacity)) {
        log_->warn("more jobs assigned than capacity; queued={} capacity={}", waiting,
                   config_.capacity);
    }
}

void WorkerImpl::on_message(proto::Ack& message) {
    counters_.acks_received.fetch_add(1, std::memory_order_relaxed);
    const auto it = jobs_.find(message.job);
    if (it == jobs_.end() || it->second->attempt != message.attempt) {
        log_->debug("ack for unknown job={} attempt={}", message.job, message.attempt);
        return;
    }
    auto& run = *it->second;
    const auto before = run.unacked.size();
    const auto freed = run.unacked.ack(message.wseq);
    counters_.unacked_messages.fetch_sub(before - run.unacked.size(), std::memory_order_relaxed);
    if (freed > 0) release(freed);
    if (run.gap_resend_active && message.wseq >= run.gap_resend_upto) run.gap_resend_active = false;
    if (run.terminal_wseq != 0 && run.unacked.acked() >= run.terminal_wseq) {
        log_->debug("job settled job={} attempt={}", run.job_id, run.attempt);
        jobs_.erase(it);  // done/fail committed: the job is the broker's business now
    }
}

void WorkerImpl::on_message(proto::Cancel& message) {
    const auto it = jobs_.find(message.job);
    if (it == jobs_.end()) return;
    log_->info("cancel requested job={} attempt={}", message.job, it->second->attempt);
    it->second->cancel_requested.store(true);
    it->second->context.request_cancel();
}

void WorkerImpl::on_message(proto::Heartbeat&) {}

void WorkerImpl::on_message(proto::Reject& message) {
    counters_.rejects_received++;
    if (message.job.empty()) {
        if (message.reason == "shutdown") {
            // The broker is stopping gracefully and has acknowledged all it
            // committed: reconnect (with backoff) without waiting for silence.
            log_->info("broker is shutting down; reconnecting broker={} inflight={}",
                       config_.broker, jobs_.size());
            close_socket();
            counters_.reconnects++;
            schedule_reconnect(now_);
            return;
        }
        if (message.reason == "identity" || message.reason == "invalid_hello") {
            // Our hello was refused: the name is held by another worker (or,
            // after a restart of ours, by our previous connection until its
            // lease runs out), or the broker cannot take it. Try again later.
            log_->error("broker refused this worker's hello reason={} detail={} worker={}",
                        log_quote(message.reason), log_quote(message.detail),
                        log_quote(config_.name));
            close_socket();
            counters_.reconnects++;
            schedule_reconnect(now_);
            return;
        }
        if (message.reason != "hello") {
            log_->warn("broker rejected worker reason={} detail={}", log_quote(message.reason),
                       log_quote(message.detail));
            return;
        }
        // The broker does not know this peer (it restarted). Rejects of what we
        // sent before our last hello are expected until its welcome arrives.
        if (awaiting_welcome_ && now_ - hello_sent_at_ < liveness_window()) return;
        log_->info("broker does not know this worker; saying hello again broker={} inflight={}",
                   config_.broker, jobs_.size());
        counters_.connected.store(false);
        send_hello();
        resend_all();
        return;
    }
    const auto it = jobs_.find(message.job);
    if (it == jobs_.end()) return;
    auto run = it->second;
    if (message.attempt != 0 && message.attempt != run->attempt) {
        // About frames of an attempt we have given up for this one (the job was
        // assigned again): dropping the current attempt would leave its lease
        // held by a worker that does not run it.
        log_->debug("ignoring reject for another attempt job={} attempt={} ours={} reason={}",
                    message.job, message.attempt, run->attempt, log_quote(message.reason));
        return;
    }
    if (message.reason == "gap") {
        // Every frame after a lost one is rejected; one re-send answers them all.
        if (run->gap_resend_active && now_ - run->gap_resent_at < liveness_window()) return;
        log_->debug("re-sending after gap job={} attempt={} from_wseq={}", run->job_id,
                    run->attempt, run->unacked.first_unacked());
        run->gap_resend_active = true;
        run->gap_resend_upto = std::max(run->unacked.first_unacked(), run->next_to_send - 1);
        run->gap_resent_at = now_;
        resend_job(*run);
        schedule_send(run);
        flush_sends();
        return;
    }
    drop_job(run, message.reason);
}

void WorkerImpl::drop_job(const std::shared_ptr<JobRun>& run, std::string_view reason) {
    log_->warn("job is no longer ours job={} attempt={} reason={}", run->job_id, run->attempt,
               log_quote(reason));
    {
        std::lock_guard lock(mutex_);
        run->closed.store(true, std::memory_order_release);
    }
    run->dropped = true;
    run->context.request_cancel();
    counters_.unacked_messages.fetch_sub(run->unacked.size(), std::memory_order_relaxed);
    release(run->unacked.clear());  // also wakes the job's blocked emit
    counters_.jobs_abandoned++;
    jobs_.erase(run->job_id);
}

void WorkerImpl::release(std::size_t bytes) {
    {
        std::lock_guard lock(mutex_);
        unacked_bytes_ -= std::min(bytes, unacked_bytes_);
    }
    space_cv_.notify_all();
}

bool WorkerImpl::all_acked() {
    std::lock_guard lock(mutex_);
    return unacked_bytes_ == 0;
}

void WorkerImpl::begin_stop(Clock::time_point now) {
    stopping_ = true;
    stop_deadline_ = now + config_.shutdown_grace;
    log_->info("stopping worker={} running_jobs={}", log_quote(config_.name), jobs_.size());
    {
        // Running jobs are left to the broker (lease expiry re-queues them from
        // their last checkpoint); what they already emitted is still flushed.
        std::lock_guard lock(mutex_);
        for (auto& [id, run] : jobs_)
            run->closed.store(true, std::memory_order_release);
    }
    space_cv_.notify_all();
    for (auto& [id, run] : jobs_)
        run->context.request_cancel();
    {
        std::lock_guard lock(assign_mutex_);
        pool_stopping_ = true;
        assign_queue_.clear();
    }
    assign_cv_.notify_all();
}

// ---------------------------------------------------------------- handler threads

void WorkerImpl::submit(JobRun& run, std::uint64_t wseq, bool terminal) {
    if (run.encoded.size() > kMaxFrameBytes) {
        throw Failure("message of " + std::to_string(run.encoded.size()) +
                          " bytes exceeds the broker's frame limit",
                      false);
    }
    run.next_wseq.store(wseq + 1, std::memory_order_release);
    Outbound out{run.shared_from_this(), wseq, std::string(run.encoded), terminal};
    const std::size_t size = out.frame.size();
    bool wake = false;
    {
        std::unique_lock lock(mutex_);
        const auto fits = [&] {
            return unacked_bytes_ == 0 || unacked_bytes_ + size <= config_.max_unacked_bytes;
        };
        if (!fits()) {
            counters_.emit_waits.fetch_add(1, std::memory_order_relaxed);
            space_cv_.wait(lock, [&] { return fits() || run.closed.load(); });
        }
        if (run.closed.load()) return;
        unacked_bytes_ += size;
        wake = outbound_.empty();
        outbound_.push_back(std::move(out));
    }
    counters_.events_emitted.fetch_add(1, std::memory_order_relaxed);
    if (wake) wake_io();
}

void WorkerImpl::pool_loop() {
    while (true) {
        std::shared_ptr<JobRun> run;
        {
            std::unique_lock lock(assign_mutex_);
            assign_cv_.wait(lock, [&] { return pool_stopping_ || !assign_queue_.empty(); });
            if (pool_stopping_) return;
            run = std::move(assign_queue_.front());
            assign_queue_.pop_front();
        }
        run_job(run);
    }
}

void WorkerImpl::run_job(const std::shared_ptr<JobRun>& run) {
    if (run->closed.load()) return;
    log_->info("job started job={} attempt={} type={} resume={}", run->job_id, run->attempt,
               log_quote(run->type), run->resumed);
    const auto started = Clock::now();
    counters_.jobs_running++;
    JobOutcome outcome =
        run->handler != nullptr
            ? invoke_handler(*run->handler, run->context)
            : JobOutcome{Failure(
                  "no handler for job type '" + run->type + "' on worker " + config_.name, true)};
    counters_.jobs_running--;
    const auto elapsed_ms =
        std::chrono::duration_cast<milliseconds>(Clock::now() - started).count();
    if (run->closed.load()) {
        log_->info("job abandoned job={} attempt={} ms={}", run->job_id, run->attempt, elapsed_ms);
        return;
    }

    const auto wseq = run->next_wseq.load();
    const auto fail = [&](std::string error, bool retryable) {
        return proto::WorkerMessage{
            proto::Fail{run->job_id, run->attempt, wseq, sanitize_utf8(error), retryable}};
    };
    proto::WorkerMessage terminal;
    std::string_view result_name;
    if (run->cancel_requested.load()) {
        terminal = fail("cancelled", false);
        result_name = "cancelled";
    } else if (auto* result = std::get_if<std::string>(&outcome)) {
        if (json::is_object(*result)) {
            terminal = proto::WorkerMessage{
                proto::Done{run->job_id, run->attempt, wseq, std::move(*result)}};
            result_name = "succeeded";
        } else {
            terminal = fail("handler returned a result that is not a JSON object", false);
            result_name = "failed";
        }
    } else {
        const auto& failure = std::get<Failure>(outcome);
        terminal = fail(failure.what(), failure.retryable());
        result_name = "failed";
        log_->info("job failed job={} attempt={} retryable={} error={}", run->job_id, run->attempt,
                   failure.retryable(), log_quote(failure.what()));
    }
    try {
        proto::encode(terminal, run->encoded);
        if (run->encoded.size() > kMaxFrameBytes) {
            terminal = fail("result is larger than the broker's frame limit", false);
            result_name = "failed";
            proto::encode(terminal, run->encoded);
        }
        submit(*run, wseq, true);
    } catch (const std::exception& e) {
        log_->error("cannot send outcome job={} attempt={} error={}", run->job_id, run->attempt,
                    e.what());
    }
    (result_name == "succeeded" ? counters_.jobs_succeeded : counters_.jobs_failed)++;
    log_->info("job finished job={} attempt={} outcome={} ms={}", run->job_id, run->attempt,
               result_name, elapsed_ms);
}

}  // namespace detail

// ---------------------------------------------------------------- Worker

Worker::Worker(WorkerConfig config)
    : impl_(std::make_unique<detail::WorkerImpl>(std::move(config))) {}
Worker::~Worker() = default;
void Worker::handle(std::string type, Handler handler) {
    impl_->handle(std::move(type), std::move(handler));
}
void Worker::run() {
    impl_->run();
}
void Worker::stop() noexcept {
    impl_->stop();
}
WorkerStats Worker::stats() const {
    return impl_->stats();
}
const WorkerConfig& Worker::config() const {
    return impl_->config();
}

}  // namespace jobcast::worker
