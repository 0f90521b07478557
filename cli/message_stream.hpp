// A WebSocket connection to the broker as `watch` needs it: blocking, text
// messages only. The interface lets the watch loop run against a scripted
// fake in the unit tests; transport.cpp has the real one (Beast).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>

namespace jobcast::cli {

// The server ended the connection with a close frame.
struct ServerClosed {
    std::uint16_t code = 0;  // 1001 going away, 1012 restart, 4001 too slow, 4003, 4008, ...
    std::string reason;
};

using Incoming = std::variant<std::string, ServerClosed>;

class MessageStream {
  public:
    virtual ~MessageStream() = default;
    // Both throw ConnectionError when the connection breaks or times out.
    virtual void send(const std::string& text) = 0;
    virtual Incoming receive() = 0;
    // A polite close (bounded wait); never throws.
    virtual void close() noexcept = 0;
};

class Connector {
  public:
    virtual ~Connector() = default;
    // Throws HandshakeRejected when the server answers with an HTTP error,
    // ConnectionError when it cannot be reached.
    virtual std::unique_ptr<MessageStream> connect() = 0;
};

}  // namespace jobcast::cli
