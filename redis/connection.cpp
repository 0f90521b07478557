#include "redis/connection.hpp"

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <deque>
#include <vector>

#include "redis/error.hpp"
#include "redis/loop_impl.hpp"

namespace jobcast::redis {

std::optional<Endpoint> parse_endpoint(std::string_view text) {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    std::string_view port_text = text.substr(colon + 1);
    std::uint16_t port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0)
        return std::nullopt;
    return Endpoint{std::string(text.substr(0, colon)), port};
}

namespace {

using asio::ip::tcp;

class AsioConnection final : public Connection {
  public:
    AsioConnection(Loop& loop, Endpoint endpoint, ConnectionOptions options, PushHandler on_push)
        : io_(io_of(loop)),
          endpoint_(std::move(endpoint)),
          options_(options),
          on_push_(std::move(on_push)),
          resolver_(io_),
          socket_(io_),
          connect_timer_(io_),
          reply_timer_(io_) {}

    void start() {
        auto self = shared_from_this();
        connect_timer_.expires_after(options_.connect_timeout);
        connect_timer_.async_wait([this, self](boost::system::error_code ec) {
            if (!ec && state_ == State::connecting) fail(Errc::connect_timeout);
        });
        resolver_.async_resolve(
            endpoint_.host, std::to_string(endpoint_.port),
            [this, self](boost::system::error_code ec, tcp::resolver::results_type results) {
                if (state_ != State::connecting) return;
                if (ec) return fail(Errc::connect_failed);
                asio::async_connect(
                    socket_, results,
                    [this, self](boost::system::error_code ec, const tcp::endpoint&) {
                        if (state_ != State::connecting) return;
                        if (ec) return fail(Errc::connect_failed);
                        connected();
                    });
            });
    }

    const Endpoint& endpoint() const override { return endpoint_; }

    void send(Command command, Completion done) override {
        if (state_ == State::closed) {
            if (done)
                asio::post(io_, [done = std::move(done), ec = close_error_] { done(ec, {}); });
            return;
        }
        outbox_.push_back(encode_command(command));
        if (!on_push_) {
            pending_.push_back(std::move(done));
            if (pending_.size() == 1) arm_reply_timer();
        }
        schedule_write();
    }

    void on_close(CloseHandler handler) override { on_close_ = std::move(handler); }

    bool is_open() const override { return state_ != State::closed; }

    void close() override { fail(Errc::closed); }

  private:
    enum class State { connecting, connected, closed };

    void connected() {
        state_ = State::connected;
        connect_timer_.cancel();
        boost::system::error_code ignored;
        socket_.set_option(tcp::no_delay(true), ignored);
        read();
        arm_reply_timer();
        schedule_write();
    }

    // Restarted whenever replies come; fires only if commands still wait.
    void arm_reply_timer() {
        if (state_ != State::connected || pending_.empty() ||
            options_.reply_timeout == std::chrono::milliseconds::zero())
            return;
        reply_timer_.expires_after(options_.reply_timeout);
        reply_timer_.async_wait([this, self = shared_from_this()](boost::system::error_code ec) {
            if (!ec && state_ == State::connected && !pending_.empty()) fail(Errc::reply_timeout);
        });
    }

    // Writes start from a posted handler, so every command queued in the
    // current turn of the loop goes out in the same gathered write.
    void schedule_write() {
        if (state_ != State::connected || writing_ || write_scheduled_ || outbox_.empty()) return;
        write_scheduled_ = true;
        asio::post(io_, [this, self = shared_from_this()] {
            write_scheduled_ = false;
            write();
        });
    }

    void write() {
        if (state_ != State::connected || writing_ || outbox_.empty()) return;
        writing_ = true;
        in_flight_.assign(std::make_move_iterator(outbox_.begin()),
                          std::make_move_iterator(outbox_.end()));
        outbox_.clear();
        std::vector<asio::const_buffer> buffers;
        buffers.reserve(in_flight_.size());
        for (const std::string& command : in_flight_)
            buffers.emplace_back(asio::buffer(command));
        asio::async_write(
            socket_, buffers,
            [this, self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                writing_ = false;
                in_flight_.clear();
                if (state_ != State::connected) return;
                if (ec) return fail(Errc::connection_lost);
                write();
            });
    }

    void read() {
        socket_.async_read_some(
            asio::buffer(buffer_),
            [this, self = shared_from_this()](boost::system::error_code ec, std::size_t size) {
                if (state_ != State::connected) return;
                if (ec) return fail(Errc::connection_lost);
                try {
                    reader_.feed(buffer_.data(), size);
                    while (state_ == State::connected) {
                        std::optional<Reply> reply = reader_.next();
                        if (!reply) break;
                        deliver(std::move(*reply));
                    }
                } catch (const std::system_error&) {
                    return fail(Errc::protocol_error);
                }
                if (state_ != State::connected) return;
                if (pending_.empty())
                    reply_timer_.cancel();
                else
                    arm_reply_timer();
                read();
            });
    }

    void deliver(Reply reply) {
        if (on_push_) return on_push_(std::move(reply));
        // A reply nobody asked for: the stream is out of step.
        if (pending_.empty()) return fail(Errc::protocol_error);
        Completion done = std::move(pending_.front());
        pending_.pop_front();
        if (done) done({}, std::move(reply));
    }

    void fail(std::error_code ec) {
        if (state_ == State::closed) return;
        state_ = State::closed;
        close_error_ = ec;
        boost::system::error_code ignored;
        connect_timer_.cancel();
        reply_timer_.cancel();
        resolver_.cancel();
        socket_.close(ignored);
        outbox_.clear();
        auto self = shared_from_this();  // completions may drop the last owner
        std::deque<Completion> pending = std::move(pending_);
        pending_.clear();
        for (Completion& done : pending)
            if (done) done(ec, {});
        if (on_close_) std::exchange(on_close_, nullptr)(ec);
    }

    asio::io_context& io_;
    Endpoint endpoint_;
    ConnectionOptions options_;
    PushHandler on_push_;
    CloseHandler on_close_;
    tcp::resolver resolver_;
    tcp::socket socket_;
    asio::steady_timer connect_timer_;
    asio::steady_timer reply_timer_;
    State state_ = State::connecting;
    std::error_code close_error_;
    RespReader reader_;
    std::array<char, 64 * 1024> buffer_{};
    std::vector<std::string> outbox_;     // encoded, not yet written
    std::vector<std::string> in_flight_;  // being written
    std::deque<Completion> pending_;      // written or queued, awaiting replies
    bool writing_ = false;
    bool write_scheduled_ = false;
};

}  // namespace

std::shared_ptr<Connection> Connection::create(Loop& loop, Endpoint endpoint,
                                               ConnectionOptions options, PushHandler on_push) {
    auto connection =
        std::make_shared<AsioConnection>(loop, std::move(endpoint), options, std::move(on_push));
    connection->start();
    return connection;
}

}  // namespace jobcast::redis
