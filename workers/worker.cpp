// The Worker's poll loop. One I/O thread (the caller of run()) owns the DEALER
// socket and the ReliableStream (every attempt's unacknowledged frames, what
// to send next); the HandlerPool's `capacity` threads run handlers and hand
// their encoded frames over through the Outbox.
//
// Message life: a handler's emit numbers the message (the attempt's next
// wseq), encodes it once and submits it to the Outbox, which waits while the
// worker's unacked bytes are over the bound. The I/O thread moves it into the
// ReliableStream and sends it when the socket takes it (EAGAIN keeps it
// queued, never drops it); while the I/O thread waits in poll, the emitting
// thread does that itself under the I/O thread's lock instead of waking it.
// An ack frees every frame up to its wseq and wakes blocked emitters; while
// handlers emit, acks are read lazily (see lazy_acks_). After a reconnect, a
// "hello" reject or a "gap" reject, the stream re-sends from the oldest
// unacknowledged frame.
//
// Failover: every reconnect (the broker went silent or never answered, it is
// shutting down, it refused our hello, its connection closed) opens a fresh
// socket to the next endpoint of the broker list, after a backoff; the hello
// there lists the attempts in flight and the stream re-sends all that is
// unacknowledged, as after a restart of the one broker. The new broker keeps
// the leases it knows (cluster mode) and rejects the others, which ends just
// those attempts.
//
// A closed connection: the socket's monitor reports when the TCP connection
// to the broker closes after its handshake (the broker process died or
// restarted: its kernel closes the connection at once). With other brokers in
// the list the worker fails over then, without waiting for `liveness` silent
// heartbeats; with one broker it keeps the socket, which ZeroMQ reconnects,
// and says hello again as soon as the new connection's handshake is done.
// Silence (a vanished host, a stopped process) still ends in a reconnect.
//
// This file: connect and reconnect with backoff, hello and heartbeats, CURVE,
// the socket monitor, the poll, and dispatching the broker's messages to the
// stream and the pool.
#include "workers/worker.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "common/clock.hpp"
#include "common/log_quote.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"
#include "workers/backoff.hpp"
#include "workers/handler_pool.hpp"
#include "workers/log.hpp"
#include "workers/outbox.hpp"
#include "workers/reliable_stream.hpp"
#include "workers/text.hpp"

namespace jobcast::worker {
namespace {

using std::chrono::milliseconds;
using Steady = Clock::Steady;

constexpr int kSocketHighWaterMark = 100000;
constexpr int kMaxReceivesPerWake = 4096;
// After a job ends the socket is read at once for this long, or until an
// assign comes (the broker's dispatch of the freed slot takes a commit or
// two); lazy acks (lazy_acks_) then resume. See assign_watch_until_.
constexpr milliseconds kAssignWatch{1000};

std::string default_worker_name() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "worker");
    // Within the broker's 128 bytes for a name, with room for the pid.
    return std::string(host).substr(0, 100) + "-" + std::to_string(getpid());
}

// The name filled in, and `brokers` the list used (the one `broker` when empty).
WorkerConfig with_defaults(WorkerConfig config) {
    if (config.name.empty()) config.name = default_worker_name();
    if (config.brokers.empty()) config.brokers = {config.broker};
    return config;
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

class WorkerImpl {
  public:
    explicit WorkerImpl(WorkerConfig config);

    void handle(std::string type, Handler handler, std::string params_schema);
    void run();
    void stop() noexcept;
    WorkerStats stats() const;
    const WorkerConfig& config() const { return config_; }

  private:
    struct Counters {
        std::atomic<std::uint64_t> messages_sent{0}, messages_resent{0}, acks_received{0},
            unacked_messages{0}, reconnects{0}, failovers{0}, hellos{0}, rejects_received{0},
            bad_messages{0}, jobs_assigned{0}, jobs_abandoned{0};
        std::atomic<bool> connected{false};
    };

    // I/O thread (holding io_mutex_).
    void loop(std::unique_lock<std::mutex>& io);
    bool deliver_from_handler();
    std::unique_ptr<zmq::socket_t> new_socket();
    void open_socket();
    void monitor_socket();
    void receive_monitor_events();
    void on_connection_closed();
    void on_handshake_done();
    void close_socket();
    void reconnect();
    const std::string& endpoint() const { return config_.brokers[current_.load()]; }
    void send_hello();
    void resend_all();
    bool send_frame(const std::string& frame);
    void flush_sends();
    void pump_outbound();
    void receive_all();
    void on_undecodable(std::string_view frame, const proto::DecodeError& error);
    void fail_unreadable_assign(const std::string& job, int attempt, std::string error);
    void on_message(proto::Welcome& message);
    void on_message(proto::Assign& message);
    void send_heartbeat();
    void on_message(proto::Ack& message);
    void on_message(proto::Cancel& message);
    void on_message(proto::Heartbeat& message);
    void on_message(proto::Reject& message);
    void drop_job(const std::string& job, int attempt, std::string_view reason);
    void begin_stop();
    milliseconds liveness_window() const { return heartbeat_ * config_.liveness; }

    WorkerConfig config_;
    const Clock& clock_ = Clock::system();
    std::shared_ptr<spdlog::logger> log_;
    std::unordered_map<std::string, Handler> handlers_;
    std::unordered_map<std::string, std::string> schemas_;  // type -> JSON Schema text
    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> running_{false};
    mutable Counters counters_;
    std::atomic<std::size_t> current_{0};  // index of the broker in config_.brokers
    Outbox outbox_;
    HandlerPool pool_;

    // What follows is the I/O thread's, which holds io_mutex_ throughout run()
    // except while it waits in poll (polling_): then a handler's submit may
    // take it (never waiting for it) and send what it queued itself.
    std::mutex io_mutex_;
    bool polling_ = false;
    // deliver_from_handler() is running on a handler's thread while the I/O
    // thread waits in poll on this connection's sockets: what it reads must
    // not close them under that poll. A reconnect it calls for (a `reject`
    // "shutdown" or "identity" read among the acks) is left to the I/O thread.
    bool in_handler_ = false;
    bool reconnect_pending_ = false;
    // Lazy acks: while handlers emit (something was handed on within
    // lazy_ack_window), nothing waits for an ack and the unacked bytes are
    // under a quarter of the bound, the I/O thread does not poll the socket
    // but reads it every lazy_ack_window, and each handler's delivery reads
    // it first: an ack then costs no wake-up of its own.
    bool lazy_acks_ = false;
    // A job ended (its done or fail was handed on, or it was dropped) and no
    // assign has come since, for at most kAssignWatch: its slot is free and
    // the broker's next assign for it is read at once, not by the next lazy
    // read (which made every job of a busy queue wait up to lazy_ack_window
    // for its assign). Other jobs' chunks meanwhile do not end the watch.
    Steady assign_watch_until_{};  // past: no watch
    void free_slot() { assign_watch_until_ = now_ + kAssignWatch; }
    bool watching_for_assign() const { return now_ < assign_watch_until_; }
    Steady last_output_{};  // handlers' messages last handed on
    zmq::context_t zmq_context_{1};
    std::unique_ptr<zmq::socket_t> socket_;
    // The PAIR end of socket_'s monitor (connection closed, handshake done).
    std::unique_ptr<zmq::socket_t> monitor_;
    std::uint64_t monitors_opened_ = 0;  // names each monitor's inproc endpoint
    // socket_'s connection completed its handshake, and it closed since then
    // (one broker: ZeroMQ is reconnecting it).
    bool handshake_done_ = false;
    bool connection_lost_ = false;
    ReliableStream stream_;
    std::vector<Outbox::Message> batch_;
    std::string heartbeat_frame_;
    std::string scratch_;
    // The last welcome's interval (1 s before the first): heart-beats, and the
    // silence after which a broker (or a hello that got no welcome) is given up.
    milliseconds heartbeat_{1000};
    Steady now_{};
    Steady last_send_{}, last_receive_{}, last_report_{}, hello_sent_at_{}, reconnect_at_{};
    std::uint64_t assigns_received_ = 0;  // since our last hello
    // The broker's session for our name (welcome.session), sent in every
    // hello after the first so that the broker knows it is us reconnecting.
    std::string session_;
    Steady stop_deadline_{}, bad_logged_at_{};
    bool awaiting_welcome_ = false;
    bool welcomed_once_ = false;
    bool stopping_ = false;
    Backoff backoff_;
};

WorkerImpl::WorkerImpl(WorkerConfig config)
    : config_(with_defaults(std::move(config))),
      log_(worker_logger()),
      outbox_(config_.max_unacked_bytes),
      pool_(config_.name, clock_),
      backoff_(config_.reconnect_min, config_.reconnect_max, std::random_device{}()) {
    for (const auto& broker : config_.brokers) {
        if (broker.empty()) throw std::invalid_argument("worker: broker endpoint is empty");
    }
    if (config_.capacity < 1 || config_.capacity > proto::kMaxCapacity) {
        throw std::invalid_argument("worker: capacity must be between 1 and 1024");
    }
    if (config_.liveness < 1) throw std::invalid_argument("worker: liveness must be at least 1");
    if (config_.max_unacked_bytes == 0) {
        throw std::invalid_argument("worker: max_unacked_bytes must be positive");
    }
    if (config_.lazy_ack_window.count() < 0 || config_.lazy_ack_window > std::chrono::minutes{1}) {
        throw std::invalid_argument("worker: lazy_ack_window must be between 0 and 60 s");
    }
    if (config_.reconnect_min.count() <= 0 || config_.reconnect_max < config_.reconnect_min) {
        throw std::invalid_argument("worker: need 0 < reconnect_min <= reconnect_max");
    }
    if (!proto::is_printable_name(config_.name, proto::kMaxWorkerNameBytes)) {
        throw std::invalid_argument(
            "worker: name must be 1 to 128 bytes of UTF-8 without control characters");
    }
    proto::encode(proto::WorkerMessage{proto::Heartbeat{}}, heartbeat_frame_);
    outbox_.set_deliver([this] { return deliver_from_handler(); });
}

void WorkerImpl::handle(std::string type, Handler handler, std::string params_schema) {
    if (running_.load()) throw std::logic_error("worker: handle() after run()");
    if (params_schema.empty()) {
        schemas_.erase(type);
    } else {
        schemas_[type] = std::move(params_schema);
    }
    handlers_[std::move(type)] = std::move(handler);
}

void WorkerImpl::stop() noexcept {
    stop_requested_.store(true);
    outbox_.wake();
}

WorkerStats WorkerImpl::stats() const {
    WorkerStats s;
    s.events_emitted = outbox_.submitted();
    s.messages_sent = counters_.messages_sent.load();
    s.messages_resent = counters_.messages_resent.load();
    s.acks_received = counters_.acks_received.load();
    s.unacked_messages = counters_.unacked_messages.load();
    s.unacked_bytes = outbox_.unacked_bytes();
    s.emit_waits = outbox_.waits();
    s.reconnects = counters_.reconnects.load();
    s.failovers = counters_.failovers.load();
    s.hellos = counters_.hellos.load();
    s.rejects_received = counters_.rejects_received.load();
    s.bad_messages = counters_.bad_messages.load();
    s.jobs_assigned = counters_.jobs_assigned.load();
    const auto& jobs = pool_.counters();
    s.jobs_running = jobs.running.load();
    s.jobs_succeeded = jobs.succeeded.load();
    s.jobs_failed = jobs.failed.load();
    s.jobs_abandoned = counters_.jobs_abandoned.load();
    s.connected = counters_.connected.load();
    s.broker = endpoint();
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
    log_->info("connecting broker={} worker={} types={} capacity={}", join(config_.brokers),
               log_quote(config_.name), log_quote(join(config_.types)), config_.capacity);

    std::unique_lock io(io_mutex_);
    now_ = clock_.steady();
    // A malformed endpoint anywhere in the list is a config error, found now
    // rather than at the first failover.
    for (const auto& broker : config_.brokers) {
        try {
            new_socket()->connect(broker);
        } catch (const zmq::error_t& e) {
            throw std::invalid_argument("worker: cannot connect to '" + broker + "': " + e.what());
        }
    }
    open_socket();
    pool_.start(config_.capacity);

    std::exception_ptr failure;
    try {
        loop(io);
    } catch (const std::exception& e) {
        failure = std::current_exception();
        log_->error("worker I/O loop failed; stopping error={}", e.what());
        now_ = clock_.steady();
        begin_stop();
    } catch (...) {
        failure = std::current_exception();
        log_->error("worker I/O loop failed; stopping");
        now_ = clock_.steady();
        begin_stop();
    }
    close_socket();
    pool_.join();
    log_->info("stopped worker={}", log_quote(config_.name));
    if (failure) std::rethrow_exception(failure);
}

void WorkerImpl::loop(std::unique_lock<std::mutex>& io) {
    std::vector<zmq::pollitem_t> items;
    while (true) {
        now_ = clock_.steady();
        if (stop_requested_.load() && !stopping_) begin_stop();
        if (stopping_) {
            if (outbox_.unacked_bytes() == 0) break;
            if (now_ >= stop_deadline_) {
                log_->warn("stopping with unacknowledged messages={} (broker did not ack in time)",
                           counters_.unacked_messages.load());
                break;
            }
        }
        if (!socket_ && now_ >= reconnect_at_) open_socket();
        if (socket_ && now_ - last_receive_ >= liveness_window()) {
            log_->warn("broker silent for {} ms{}; reconnecting broker={}",
                       std::chrono::duration_cast<milliseconds>(now_ - last_receive_).count(),
                       awaiting_welcome_ ? " (no welcome)" : "", endpoint());
            reconnect();
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

        lazy_acks_ = socket_ && !stopping_ && !awaiting_welcome_ && !connection_lost_ &&
                     !watching_for_assign() && now_ - last_output_ < config_.lazy_ack_window &&
                     !stream_.sending() && !stream_.holding() &&
                     outbox_.unacked_bytes() <= config_.max_unacked_bytes / 4;
        stream_.watch_acks(!lazy_acks_);
        items.clear();
        items.push_back({nullptr, outbox_.fd(), ZMQ_POLLIN, 0});
        if (lazy_acks_) {
            // A chunk queued for an ack before watch_acks(false) goes now.
            timeout =
                outbox_.pending() ? milliseconds{0} : std::min(timeout, config_.lazy_ack_window);
            items.push_back({monitor_->handle(), 0, ZMQ_POLLIN, 0});
        } else if (socket_) {
            // The DEALER is polled through its ZMQ_FD (which signals that its
            // state may have changed, not what it is), so that no one touches
            // the socket itself while io_mutex_ is free: what it has now is in
            // ZMQ_EVENTS, read first.
            const int events = socket_->get(zmq::sockopt::events);
            if ((events & ZMQ_POLLIN) || (stream_.sending() && (events & ZMQ_POLLOUT)))
                timeout = milliseconds{0};
            items.push_back({nullptr, socket_->get(zmq::sockopt::fd), ZMQ_POLLIN, 0});
            items.push_back({monitor_->handle(), 0, ZMQ_POLLIN, 0});
        }
        polling_ = true;
        io.unlock();
        try {
            zmq::poll(items, timeout);
        } catch (const zmq::error_t& e) {
            io.lock();
            polling_ = false;
            if (e.num() != EINTR) throw;  // a signal (e.g. the SIGTERM that calls stop())
        }
        if (!io.owns_lock()) {
            io.lock();
            polling_ = false;
        }
        now_ = clock_.steady();

        if (items[0].revents & ZMQ_POLLIN) outbox_.clear_wake();
        if (reconnect_pending_) reconnect();
        if (socket_) receive_all();
        if (socket_) receive_monitor_events();
        pump_outbound();
        flush_sends();
    }
}

// A DEALER, CURVE as configured, not connected yet. Throws zmq::error_t.
std::unique_ptr<zmq::socket_t> WorkerImpl::new_socket() {
    auto socket = std::make_unique<zmq::socket_t>(zmq_context_, zmq::socket_type::dealer);
    socket->set(zmq::sockopt::linger, 0);
    socket->set(zmq::sockopt::sndhwm, kSocketHighWaterMark);
    socket->set(zmq::sockopt::rcvhwm, kSocketHighWaterMark);
    socket->set(zmq::sockopt::reconnect_ivl, static_cast<int>(config_.reconnect_min.count()));
    socket->set(zmq::sockopt::reconnect_ivl_max, static_cast<int>(config_.reconnect_max.count()));
    if (!config_.curve_server_key.empty()) {
        socket->set(zmq::sockopt::curve_serverkey, config_.curve_server_key);
        socket->set(zmq::sockopt::curve_publickey, config_.curve_public_key);
        socket->set(zmq::sockopt::curve_secretkey, config_.curve_secret_key);
    }
    return socket;
}

// Connects to the current broker, says hello and re-sends what is unacked.
void WorkerImpl::open_socket() {
    try {
        socket_ = new_socket();
        monitor_socket();  // before connecting: its first handshake is reported too
        socket_->connect(endpoint());
    } catch (const zmq::error_t& e) {
        log_->error("cannot open socket broker={} error={}", endpoint(), e.what());
        reconnect();
        return;
    }
    last_receive_ = now_;
    last_send_ = now_;
    send_hello();
    resend_all();
}

// Watches socket_'s connection through a monitor PAIR polled with the other
// sockets (cppzmq's monitor_t polls on its own). Throws zmq::error_t.
void WorkerImpl::monitor_socket() {
    const auto address = "inproc://jobcast-worker-monitor-" + std::to_string(++monitors_opened_);
    if (zmq_socket_monitor(socket_->handle(), address.c_str(),
                           ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0) {
        throw zmq::error_t();
    }
    monitor_ = std::make_unique<zmq::socket_t>(zmq_context_, zmq::socket_type::pair);
    monitor_->set(zmq::sockopt::linger, 0);
    monitor_->connect(address);
    handshake_done_ = false;
    connection_lost_ = false;
}

// Each event is two frames: 16 bits of event id and 32 of value, then the
// endpoint.
void WorkerImpl::receive_monitor_events() {
    while (socket_) {
        zmq::message_t event;
        if (!monitor_->recv(event, zmq::recv_flags::dontwait)) return;
        std::uint16_t id = 0;
        if (event.size() >= sizeof id) std::memcpy(&id, event.data(), sizeof id);
        while (event.more()) {
            if (!monitor_->recv(event, zmq::recv_flags::dontwait)) break;
        }
        if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            on_handshake_done();
        } else if (id == ZMQ_EVENT_DISCONNECTED && handshake_done_) {
            on_connection_closed();
        }
    }
}

// The broker's end closed an established connection: its process is gone (or
// restarting). Another broker of the list takes over at once; a closed
// connection to the one broker is ZeroMQ's to reconnect.
void WorkerImpl::on_connection_closed() {
    handshake_done_ = false;
    counters_.connected.store(false);
    if (config_.brokers.size() > 1) {
        log_->warn("broker closed the connection; failing over broker={} inflight={}", endpoint(),
                   stream_.attempts());
        reconnect();
        return;
    }
    log_->warn("broker closed the connection; waiting for it broker={} inflight={}", endpoint(),
               stream_.attempts());
    stream_.disconnected();  // nothing queued for a broker that will not know us
    connection_lost_ = true;
}

void WorkerImpl::on_handshake_done() {
    handshake_done_ = true;
    if (!connection_lost_) return;  // the socket's first connection: hello is on its way
    connection_lost_ = false;
    log_->info("broker is back; saying hello broker={} inflight={}", endpoint(),
               stream_.attempts());
    last_receive_ = now_;
    send_hello();
    resend_all();
}

void WorkerImpl::close_socket() {
    if (socket_) {
        // The monitor is stopped before its reader closes: libzmq sends its
        // events blocking, from the context's I/O thread, so an event for a
        // closed reader (the broker hanging up just now) would stall that
        // thread, and with it every later connection, for good.
        if (monitor_) zmq_socket_monitor(socket_->handle(), nullptr, 0);
        socket_->close();
        socket_.reset();
    }
    if (monitor_) {
        monitor_->close();
        monitor_.reset();
    }
    stream_.disconnected();
    awaiting_welcome_ = false;
    counters_.connected.store(false);
}

// Closes the connection (if any) and opens the next one after a backoff, to
// the next broker of the list.
void WorkerImpl::reconnect() {
    if (in_handler_) {
        reconnect_pending_ = true;
        return;
    }
    reconnect_pending_ = false;
    close_socket();
    counters_.reconnects++;
    const auto delay = backoff_.next();
    reconnect_at_ = now_ + delay;
    if (config_.brokers.size() == 1) {
        log_->debug("reconnecting in {} ms broker={}", delay.count(), endpoint());
        return;
    }
    const auto& from = endpoint();
    current_.store((current_.load() + 1) % config_.brokers.size());
    counters_.failovers++;
    log_->info("failing over in {} ms broker={} previous={}", delay.count(), endpoint(), from);
}

void WorkerImpl::send_hello() {
    proto::Hello hello;
    hello.worker = config_.name;
    hello.types = config_.types;
    hello.capacity = config_.capacity;
    hello.inflight = stream_.inflight();
    hello.session = session_;
    for (const auto& type : config_.types) {
        if (auto schema = schemas_.find(type); schema != schemas_.end())
            hello.schemas.emplace(type, schema->second);
    }
    proto::encode(proto::WorkerMessage{std::move(hello)}, scratch_);
    send_frame(scratch_);
    hello_sent_at_ = now_;
    awaiting_welcome_ = true;
    assigns_received_ = 0;  // the broker numbers its assigns from each hello
    counters_.hellos++;
}

void WorkerImpl::send_heartbeat() {
    stream_.release_holds();  // nothing waits longer than a heartbeat for an ack
    if (stopping_ || awaiting_welcome_) {
        // Nothing to reconcile: a stopping worker ignores new assigns and
        // leaves its jobs to lease expiry; before the welcome, the hello said it.
        send_frame(heartbeat_frame_);
    } else {
        proto::encode(proto::WorkerMessage{proto::Heartbeat{stream_.inflight(), assigns_received_}},
                      scratch_);
        send_frame(scratch_);
    }
    last_send_ = last_report_ = now_;  // also after EAGAIN: not worth retrying early
}

void WorkerImpl::resend_all() {
    counters_.messages_resent += stream_.reconnected();
    flush_sends();
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

void WorkerImpl::flush_sends() {
    while (socket_) {
        const auto* frame = stream_.next_frame();
        if (frame == nullptr) return;
        if (!send_frame(*frame)) return;  // socket full: POLLOUT resumes here
        stream_.sent();
    }
}

// A handler's submit that would wake the I/O thread: while that thread waits
// in poll, the handler's thread moves what is queued into the stream and hands
// it to the socket itself, so one event costs no wake-up of the I/O thread.
// The I/O thread is still woken when the socket is full, or when ZeroMQ took
// in a message for us during these sends (a send processes the socket's
// commands, which clears the fd the I/O thread polls).
// With lazy acks it first reads what the broker sent (acks free what this
// sends from being held), and wakes the I/O thread when something now waits
// for an ack, for that thread to watch for it.
bool WorkerImpl::deliver_from_handler() {
    std::unique_lock io(io_mutex_, std::try_to_lock);
    if (!io.owns_lock() || !polling_ || !socket_ || reconnect_pending_) return false;
    now_ = clock_.steady();
    if (lazy_acks_) {
        in_handler_ = true;
        struct Reset {
            bool& flag;
            ~Reset() { flag = false; }
        } reset{in_handler_};
        receive_all();
    }
    if (reconnect_pending_) return false;  // the woken I/O thread reconnects
    pump_outbound();
    // A job ended while the I/O thread reads lazily: woken, it watches for
    // the assign of the freed slot.
    if (stream_.sending() || (lazy_acks_ && watching_for_assign())) return false;
    if (lazy_acks_) {
        return !stream_.holding() && outbox_.unacked_bytes() <= config_.max_unacked_bytes / 4;
    }
    try {
        return !(socket_->get(zmq::sockopt::events) & ZMQ_POLLIN);
    } catch (const zmq::error_t&) {
        return false;  // the I/O thread finds out
    }
}

void WorkerImpl::pump_outbound() {
    outbox_.take(batch_);
    if (batch_.empty()) return;
    last_output_ = now_;
    std::size_t released = 0;
    for (auto& out : batch_) {
        if (out.kind == FrameKind::terminal) free_slot();
        const auto size = out.frame.size();
        if (!stream_.push(*out.attempt, out.wseq, std::move(out.frame), out.kind)) {
            released += size;
            continue;
        }
        counters_.unacked_messages.fetch_add(1, std::memory_order_relaxed);
    }
    batch_.clear();
    if (released > 0) outbox_.release(released);
    // Everything handlers emitted since the last turn goes out together
    // (consecutive chunks of an attempt as one `chunks`, when welcomed so).
    flush_sends();
}

void WorkerImpl::receive_all() {
    for (int i = 0; i < kMaxReceivesPerWake && socket_ && !reconnect_pending_; ++i) {
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
    if (const auto* held = stream_.find(*header.job)) {
        if (held->attempt() == *header.attempt) return;  // answered (or held) already
        drop_job(*header.job, held->attempt(), "reassigned");
    }
    fail_unreadable_assign(*header.job, *header.attempt,
                           "worker " + config_.name + " cannot decode the assign: " +
                               std::string(proto::to_string(error.code)) + ": " + error.detail);
}

// Ends `attempt` of `job` with a fail sent (and re-sent until acked) like any
// job's output, without running a handler.
void WorkerImpl::fail_unreadable_assign(const std::string& job, int attempt, std::string error) {
    auto stream = stream_.open(job, attempt);
    auto run = std::make_shared<JobRun>(outbox_, clock_, stream,
                                        JobSpec{job, attempt, "", "{}", ""}, nullptr);
    outbox_.close(run->closed);  // no handler output
    std::string frame;
    proto::encode(proto::WorkerMessage{proto::Fail{job, attempt, 1, sanitize_utf8(error), false}},
                  frame);
    stream->numbered(1);
    outbox_.reserve(frame.size());
    stream_.push(*stream, 1, std::move(frame), FrameKind::terminal);
    free_slot();
    counters_.unacked_messages++;
    counters_.jobs_assigned++;
    pool_.counters().failed++;
    pool_.hold(std::move(run));
    flush_sends();
}

void WorkerImpl::on_message(proto::Welcome& message) {
    heartbeat_ = milliseconds{std::clamp(message.heartbeat_ms, 10, 60000)};
    if (!message.session.empty()) session_ = std::move(message.session);
    stream_.batch_chunks(std::ranges::find(message.features, proto::kFeatureChunks) !=
                         message.features.end());
    awaiting_welcome_ = false;
    backoff_.reset();
    counters_.connected.store(true);
    if (!welcomed_once_) {
        log_->info("connected broker={} heartbeat_ms={}", endpoint(), heartbeat_.count());
        welcomed_once_ = true;
    } else {
        log_->info("reconnected broker={} inflight={}", endpoint(), stream_.attempts());
    }
}

void WorkerImpl::on_message(proto::Assign& message) {
    ++assigns_received_;
    assign_watch_until_ = {};
    if (stopping_) {
        // Not ours to start: the broker re-queues it when our lease lapses.
        log_->debug("ignoring assign while stopping job={}", message.job);
        return;
    }
    if (const auto* held = stream_.find(message.job)) {
        if (held->attempt() == message.attempt) return;  // a repeated assign
        drop_job(message.job, held->attempt(), "reassigned");
    }
    const auto handler_it = handlers_.find(message.type);
    const Handler* handler = handler_it == handlers_.end() ? nullptr : &handler_it->second;
    JobSpec spec{message.job, message.attempt, message.type, std::move(message.params),
                 std::move(message.checkpoint)};
    auto run = std::make_shared<JobRun>(outbox_, clock_, stream_.open(message.job, message.attempt),
                                        std::move(spec), handler);
    counters_.jobs_assigned++;
    log_->debug("assigned job={} attempt={} type={}", run->job_id, run->attempt,
                log_quote(run->type));
    const auto waiting = pool_.run(std::move(run));
    if (waiting > static_cast<std::size_t>(config_.capacity)) {
        log_->warn("more jobs assigned than capacity; queued={} capacity={}", waiting,
                   config_.capacity);
    }
}

void WorkerImpl::on_message(proto::Ack& message) {
    counters_.acks_received.fetch_add(1, std::memory_order_relaxed);
    const auto acked = stream_.ack(message.job, message.attempt, message.wseq);
    if (!acked.known) {
        log_->debug("ack for unknown job={} attempt={}", message.job, message.attempt);
        return;
    }
    counters_.unacked_messages.fetch_sub(acked.messages, std::memory_order_relaxed);
    if (acked.bytes > 0) outbox_.release(acked.bytes, &stream_.spares());
    if (acked.settled) {
        log_->debug("job settled job={} attempt={}", message.job, message.attempt);
        pool_.forget(message.job);
    }
}

void WorkerImpl::on_message(proto::Cancel& message) {
    pool_.cancel(message.job);
}

void WorkerImpl::on_message(proto::Heartbeat&) {}

void WorkerImpl::on_message(proto::Reject& message) {
    counters_.rejects_received++;
    if (message.job.empty()) {
        if (message.reason == "shutdown") {
            // The broker is stopping gracefully and has acknowledged all it
            // committed: reconnect (with backoff) without waiting for silence.
            log_->info("broker is shutting down; reconnecting broker={} inflight={}", endpoint(),
                       stream_.attempts());
            reconnect();
            return;
        }
        if (message.reason == "identity" || message.reason == "invalid_hello") {
            // Our hello was refused: the name is held by another worker (or,
            // after a restart of ours, by our previous connection until its
            // lease runs out), or the broker cannot take it. Try again later.
            log_->error("broker refused this worker's hello reason={} detail={} worker={}",
                        log_quote(message.reason), log_quote(message.detail),
                        log_quote(config_.name));
            reconnect();
            return;
        }
        if (message.reason != "hello") {
            log_->warn("broker rejected worker reason={} detail={}", log_quote(message.reason),
                       log_quote(message.detail));
            return;
        }
        // The broker does not know this peer (it restarted). Rejects of what we
        // sent before our last hello are expected until its welcome arrives,
        // within a round trip; later ones mean the hello was lost (sent to the
        // broker that died), and waiting longer would let the restarted broker
        // give our leases away.
        if (awaiting_welcome_ && now_ - hello_sent_at_ < heartbeat_) return;
        log_->info("broker does not know this worker; saying hello again broker={} inflight={}",
                   endpoint(), stream_.attempts());
        counters_.connected.store(false);
        send_hello();
        resend_all();
        return;
    }
    const auto* held = stream_.find(message.job);
    if (held == nullptr) return;
    const int attempt = held->attempt();
    const auto rejected =
        stream_.reject(message.job, message.attempt, message.reason, now_, liveness_window());
    switch (rejected.answer) {
        case ReliableStream::RejectAnswer::not_ours:
            log_->debug("ignoring reject for another attempt job={} attempt={} ours={} reason={}",
                        message.job, message.attempt, attempt, log_quote(message.reason));
            return;
        case ReliableStream::RejectAnswer::already_resending:
            return;
        case ReliableStream::RejectAnswer::resent:
            log_->debug("re-sending after gap job={} attempt={} from_wseq={}", message.job, attempt,
                        rejected.from_wseq);
            counters_.messages_resent += rejected.resent;
            flush_sends();
            return;
        case ReliableStream::RejectAnswer::drop:
            drop_job(message.job, attempt, message.reason);
            return;
    }
}

void WorkerImpl::drop_job(const std::string& job, int attempt, std::string_view reason) {
    log_->warn("job is no longer ours job={} attempt={} reason={}", job, attempt,
               log_quote(reason));
    pool_.abandon(job);
    const auto freed = stream_.drop(job);
    free_slot();
    counters_.unacked_messages.fetch_sub(freed.messages, std::memory_order_relaxed);
    outbox_.release(freed.bytes);
    counters_.jobs_abandoned++;
}

void WorkerImpl::begin_stop() {
    stopping_ = true;
    stop_deadline_ = now_ + config_.shutdown_grace;
    log_->info("stopping worker={} running_jobs={}", log_quote(config_.name), stream_.attempts());
    pool_.stop();
}

}  // namespace detail

// ---------------------------------------------------------------- Worker

Worker::Worker(WorkerConfig config)
    : impl_(std::make_unique<detail::WorkerImpl>(std::move(config))) {}
Worker::~Worker() = default;
void Worker::handle(std::string type, Handler handler, std::string params_schema) {
    impl_->handle(std::move(type), std::move(handler), std::move(params_schema));
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
