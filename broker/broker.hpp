// The composition root of jobcast-broker: the store (writer + readers), the
// ZeroMQ gateway, the HTTP server and the metrics, wired in the order that
// keeps the guarantees: a commit is published (acks, fan-out) only after it
// is durable, and shutdown drains in the reverse order of start.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "broker/config.hpp"

namespace jobcast::broker {

class Broker {
  public:
    explicit Broker(BrokerConfig config);
    ~Broker();
    Broker(const Broker&) = delete;
    Broker& operator=(const Broker&) = delete;

    // Opens the store, binds ZeroMQ and HTTP; logs "listening http=... zmq=...".
    // In cluster mode it returns once HTTP serves (/healthz, /metrics, and a
    // /readyz answering 503 with the reason); the engine is opened by a
    // thread that keeps trying until it answers, then serves the rest.
    void start();
    // Why a start that went on in the background (cluster mode) gave up: an
    // error for a person to fix, such as a Function library of another
    // version on the engine. Any thread.
    std::optional<std::string> failure() const;
    // Stops accepting, answers what is in flight, flushes the writer. Idempotent.
    void stop();

    // SIGHUP: re-reads the TLS certificate and key for new connections. On
    // an error the old ones stay, and the error is logged. Any thread.
    void reload_tls();

    std::string http_endpoint() const;
    std::string zmq_endpoint() const;

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace jobcast::broker
