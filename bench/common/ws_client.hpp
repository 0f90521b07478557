// What the WebSocket load generators share: opening a Boost.Beast client
// connection, and the io_context thread that opens many of them with a bound on
// connects in flight.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace jobcast::bench {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = net::ip::tcp;

// Connects `ws` to `ep`, turns TCP_NODELAY on and does the WebSocket handshake
// (`host` and `target` must outlive it); then done(ec, stage), where stage is
// "connect" or "handshake" when ec says it failed there.
template <class Done>
void async_open(websocket::stream<tcp::socket>& ws, const tcp::endpoint& ep,
                const std::string& host, const std::string& target, Done done) {
    ws.next_layer().async_connect(ep, [&ws, &host, &target,
                                       done = std::move(done)](beast::error_code ec) mutable {
        if (ec) return done(ec, "connect");
        ws.next_layer().set_option(tcp::no_delay(true));
        ws.async_handshake(host, target, [done = std::move(done)](beast::error_code ec) mutable {
            done(ec, "handshake");
        });
    });
}

// One io_context run by one thread, and the clients it connects: at most
// `parallel` connects in flight; each client calls connect_done() when its
// connect (and handshake) finished. Sub needs connect() and close().
// A derived class calls stop() in its own destructor, before its members go.
template <class Sub>
class ConnectLoop {
  public:
    explicit ConnectLoop(int parallel) : parallel_(parallel) {}
    ~ConnectLoop() { stop(); }
    ConnectLoop(const ConnectLoop&) = delete;
    ConnectLoop& operator=(const ConnectLoop&) = delete;

    void start() {
        thread_ = std::thread([this] {
            auto guard = net::make_work_guard(ioc);
            net::post(ioc, [this] { pump_connects(); });
            ioc.run();
        });
    }
    // Closes every socket and stops the thread.
    void stop() {
        if (!thread_.joinable()) return;
        net::post(ioc, [this] {
            for (auto& s : subs)
                s->close();
            ioc.stop();
        });
        thread_.join();
    }
    void connect_done() {
        --in_flight_;
        pump_connects();
    }

    net::io_context ioc{1};
    std::vector<std::unique_ptr<Sub>> subs;

  private:
    void pump_connects() {
        while (in_flight_ < parallel_ && next_ < subs.size()) {
            ++in_flight_;
            subs[next_++]->connect();
        }
    }
    int parallel_;
    int in_flight_ = 0;
    std::size_t next_ = 0;
    std::thread thread_;
};

}  // namespace jobcast::bench
