// One connection to one Redis node, pipelined: commands queued in the same
// turn of the loop go out in one gathered write, and replies are matched to
// completions in order (Redis answers in order on a connection). A connection
// is used once: after an error every pending completion gets that error and
// the owner makes a new one. Loop thread only, except where noted.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "redis/resp.hpp"

namespace jobcast::redis {

class Loop;

struct Endpoint {
    std::string host;
    std::uint16_t port = 0;

    std::string str() const { return host + ':' + std::to_string(port); }
    friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

// "host:port" (the last ':' splits, so "::1:7000" works); nothing if malformed.
std::optional<Endpoint> parse_endpoint(std::string_view text);

// Runs on the loop thread with either an error (no reply) or the reply, which
// may be a server error reply.
using Completion = std::function<void(std::error_code, Reply)>;

struct ConnectionOptions {
    std::chrono::milliseconds connect_timeout{1000};
    // A connection whose commands got no reply for this long fails with
    // Errc::reply_timeout (a stopped or cut-off node). Longer than any
    // blocking command sent on it (WAIT, BLPOP); zero: no limit. Pub/sub
    // connections, idle by nature, have none.
    std::chrono::milliseconds reply_timeout{10000};
};

class Connection : public std::enable_shared_from_this<Connection> {
  public:
    // Replies that no command waits for: pub/sub messages. A connection with a
    // push handler hands every reply to it (RESP2 pub/sub has no FIFO
    // matching), and commands sent on it take no completion.
    using PushHandler = std::function<void(Reply)>;
    using CloseHandler = std::function<void(std::error_code)>;

    // Connects at once (asynchronously); commands sent meanwhile wait.
    static std::shared_ptr<Connection> create(Loop& loop, Endpoint endpoint,
                                              ConnectionOptions options,
                                              PushHandler on_push = nullptr);
    virtual ~Connection() = default;

    virtual const Endpoint& endpoint() const = 0;
    // Queue a command. On a closed connection the completion gets the close
    // error (posted, never inline).
    virtual void send(Command command, Completion done) = 0;
    // Called once, after the pending completions got the error.
    virtual void on_close(CloseHandler handler) = 0;
    virtual bool is_open() const = 0;
    // Every pending completion gets Errc::closed.
    virtual void close() = 0;
};

}  // namespace jobcast::redis
