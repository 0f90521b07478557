// The worker side of the broker: a socket loop. One thread owns the ZeroMQ
// ROUTER socket: it polls it, hands each frame to the worker protocol
// (broker/worker_protocol.hpp, which decides everything), sends what that
// returns (queueing per worker when a pipe is full) and submits its store
// ops. After each commit the writer hands the acks, lease outcomes and job
// changes back here (through an inbox and an eventfd) for the protocol.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "broker/cluster_link.hpp"
#include "broker/gateway_config.hpp"
#include "broker/job_queue.hpp"
#include "common/clock.hpp"
#include "persistence/store.hpp"
#include "protocol/codec.hpp"

namespace jobcast::broker {

class Gateway {
  public:
    // `cluster` (cluster mode, else null): the shared queue and leases; it
    // must stop calling back before the gateway goes.
    Gateway(GatewayConfig config, store::Store& store, const Clock& clock = Clock::system(),
            ClusterLink* cluster = nullptr);
    ~Gateway();
    Gateway(const Gateway&) = delete;
    Gateway& operator=(const Gateway&) = delete;

    // Binds the ROUTER (throws zmq::error_t on failure), reloads queued and
    // running jobs from the store, and starts the gateway thread.
    void start();
    // The endpoint actually bound (port 0 / '*' resolved).
    std::string endpoint() const;
    // Called on the writer thread after every commit; never blocks on the gateway.
    void on_commit(const store::CommittedBatch& batch);
    // Jobs queued in the cluster, reserved for this broker's workers (any thread).
    void offer(std::vector<QueuedJob> jobs);
    // Jobs whose cancel was asked for on some broker (a hint, any thread):
    // the workers of those this broker runs are told at once.
    void cancel_requested(std::vector<std::string> jobs);
    // Stops the thread; leases stay in the store for the next start.
    void stop();

    const GatewayStats& stats() const;

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace jobcast::broker
