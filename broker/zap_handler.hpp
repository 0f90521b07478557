// ZeroMQ authentication (ZAP, RFC 27) for workers: with CURVE on, libzmq asks
// this handler about every worker handshake, and only public keys in the
// allow-list get through; an accepted handshake gets the worker's public key
// (Z85) as its ZAP user id, which the gateway reads from each message
// ("User-Id") to bind worker names to keys. Runs its own thread with a REP socket on
// inproc://zeromq.zap.01 of the gateway's context; it must be started before
// the ROUTER binds, or early handshakes would pass unchecked.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <zmq.hpp>

namespace jobcast::broker {

class ZapHandler {
  public:
    // `allowed`: Z85 public keys of the workers that may connect.
    ZapHandler(zmq::context_t& context, std::unordered_set<std::string> allowed);
    ~ZapHandler();
    ZapHandler(const ZapHandler&) = delete;
    ZapHandler& operator=(const ZapHandler&) = delete;

    void start();
    void stop();

    std::uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

  private:
    void loop();
    bool answer(std::vector<zmq::message_t>& request);

    zmq::context_t& context_;
    zmq::socket_t socket_;
    std::unordered_set<std::string> allowed_;
    std::unordered_set<std::string> refused_keys_;  // logged once each at warn
    std::atomic<bool> running_{false};
    std::atomic<std::uint64_t> refused_{0};
    std::thread thread_;
};

}  // namespace jobcast::broker
