// The jobcast worker SDK. A Worker connects a ZeroMQ DEALER to the broker,
// says hello with its job types and capacity, runs a handler per assigned job
// on its own threads, heart-beats, reconnects with backoff, and keeps every
// message the broker has not acknowledged so that it can re-send it after a
// reconnect or a broker restart (worker protocol v1, DESIGN.md guarantees 2
// and 5). Output is bounded: when `max_unacked_bytes` are waiting for acks,
// the handler's next emit blocks until acks free room (backpressure, not loss).
// Given several brokers (`brokers`), each reconnect goes to the next one in the
// list (failover when a broker dies: at once when its connection closes, else
// after `liveness` silent heartbeats), with the jobs in flight listed in its
// hello and everything unacknowledged re-sent to it.
//
//     jobcast::worker::Worker worker({.broker = "tcp://127.0.0.1:5555",
//                                     .types = {"hello"}});
//     worker.handle("hello", [](jobcast::worker::JobContext& job) {
//         job.token("hi " + job.param_string("name", "there"));
//         return std::string(R"({"ok":true})");
//     });
//     worker.run();  // until worker.stop()
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "workers/job_context.hpp"

namespace jobcast::worker {

namespace detail {
class WorkerImpl;
}

struct WorkerConfig {
    std::string broker = "tcp://127.0.0.1:5555";  // the one broker, when `brokers` is empty
    // Several brokers (cluster mode): the first is tried first; every reconnect
    // (silence, a failed connection, a broker shutting down, its connection
    // closed) moves to the next, round the list. When not empty, `broker` is not used.
    std::vector<std::string> brokers;
    std::string name;                                      // empty: "<hostname>-<pid>"
    std::vector<std::string> types;                        // empty: every type with a handler
    int capacity = 1;                                      // jobs run at once (one thread each)
    std::size_t max_unacked_bytes = std::size_t{8} << 20;  // whole worker; emit blocks beyond
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{5000};
    int liveness = 3;  // heartbeat intervals of broker silence before reconnecting
    // On stop(): how long to keep waiting for acks of what was already emitted
    // (checkpoints, tokens) before closing. Running jobs are not failed; the
    // broker re-queues them when the lease expires.
    std::chrono::milliseconds shutdown_grace{2000};
    // While handlers stream, the broker's acks may wait this long to be read
    // (each handler's next emit reads them first), so that an ack costs no
    // wake-up of its own; 0 reads everything at once; at most 60 s (past 1 s
    // it reads at least once a second anyway). Other broker messages read
    // meanwhile wait as long, except the assign of a slot a job has just
    // freed: after a job ends the socket is read at once until an assign
    // comes (for at most a second).
    std::chrono::milliseconds lazy_ack_window{5};
    // ZeroMQ CURVE (all three Z85, or all empty for plain TCP): the broker's
    // public key and this worker's keypair.
    std::string curve_server_key;
    std::string curve_public_key;
    std::string curve_secret_key;
};

// Counters for logs and metrics; a consistent-enough snapshot (each field is
// read atomically, not all at once).
struct WorkerStats {
    std::uint64_t events_emitted = 0;   // chunk + checkpoint + done + fail messages created
    std::uint64_t messages_sent = 0;    // frames handed to the socket (re-sends included)
    std::uint64_t messages_resent = 0;  // re-sends after reconnect, "hello" or "gap" rejects
    std::uint64_t acks_received = 0;
    std::uint64_t unacked_messages = 0;  // buffered, waiting for an ack
    std::uint64_t unacked_bytes = 0;     // what emit's bound applies to
    std::uint64_t emit_waits = 0;        // times an emit blocked on the bound
    std::uint64_t reconnects = 0;        // new sockets after the broker went silent or closed
    std::uint64_t failovers = 0;         // reconnects that moved to another broker of the list
    std::uint64_t hellos = 0;            // hello messages sent
    std::uint64_t rejects_received = 0;
    std::uint64_t bad_messages = 0;  // undecodable frames from the broker
    std::uint64_t jobs_assigned = 0;
    std::uint64_t jobs_running = 0;
    std::uint64_t jobs_succeeded = 0;
    std::uint64_t jobs_failed = 0;     // cancelled jobs included
    std::uint64_t jobs_abandoned = 0;  // lease lost or worker stopping
    bool connected = false;            // the current broker has welcomed us
    std::string broker;                // the endpoint connected (or being connected) to
};

class Worker {
  public:
    // Throws std::invalid_argument for an invalid config.
    explicit Worker(WorkerConfig config);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Registers the handler for a job type; call before run(). `params_schema`
    // (optional): the params as a JSON Schema (draft 7) document, announced in
    // hello so that the broker refuses (422) a submission that breaks it.
    void handle(std::string type, Handler handler, std::string params_schema = {});

    // Connects and serves until stop(); then waits (up to shutdown_grace) for
    // outstanding acks, cancels running handlers and joins their threads.
    // Throws std::invalid_argument when a configured type has no handler.
    void run();

    // Thread-safe and async-signal-safe (an atomic store and an eventfd write),
    // so a SIGTERM handler may call it.
    void stop() noexcept;

    WorkerStats stats() const;
    const WorkerConfig& config() const;

  private:
    std::unique_ptr<detail::WorkerImpl> impl_;
};

}  // namespace jobcast::worker
