#include "cli/watch.hpp"

#include <optional>
#include <thread>
#include <variant>

#include "cli/frames.hpp"

namespace jobcast::cli {
namespace {

using std::chrono::milliseconds;

constexpr std::uint16_t kClosePolicy = 4008;
constexpr std::uint16_t kCloseReauthenticate = 4003;

class SteadyWatchClock final : public WatchClock {
  public:
    milliseconds now() override {
        return std::chrono::duration_cast<milliseconds>(
            std::chrono::steady_clock::now().time_since_epoch());
    }
    void sleep(milliseconds delay) override { std::this_thread::sleep_for(delay); }
};

// A connection ended without the job ending: try again.
struct Retry {
    std::string reason;
    bool keep_backoff = false;  // the server refused us on purpose (4008): do not hurry back
};

// How one connection ended: the watch is over (exit code), or try again.
using SessionEnd = std::variant<ExitCode, Retry>;

class Watch {
  public:
    Watch(const WatchOptions& options, Connector& connector, Renderer& renderer, WatchClock& clock)
        : options_(options),
          connector_(connector),
          renderer_(renderer),
          clock_(clock),
          policy_(options.reconnect, options.seed),
          last_seq_(options.after) {}

    ExitCode run() {
        auto outage_started = clock_.now();
        for (;;) {
            subscribed_ = false;
            auto end = session();
            if (const auto* code = std::get_if<ExitCode>(&end)) {
                renderer_.finish();
                return *code;
            }
            const auto& retry = std::get<Retry>(end);
            if (subscribed_) {
                // This connection worked: a new outage starts now, from the
                // shortest delay (unless the server sent us away on purpose).
                outage_started = clock_.now();
                if (!retry.keep_backoff) policy_.succeeded();
            }
            const auto delay = policy_.next_delay(clock_.now() - outage_started);
            if (!delay) {
                renderer_.error("jobcast: giving up after " +
                                seconds_text(options_.reconnect.give_up) +
                                " without a working connection: " + retry.reason);
                renderer_.finish();
                return ExitCode::connection;
            }
            if (!reconnecting_) {
                reconnecting_ = true;
                renderer_.notice(
                    std::string(ever_subscribed_ ? "[connection lost: " : "[cannot connect: ") +
                    retry.reason + "; retrying]");
            }
            clock_.sleep(*delay);
        }
    }

  private:
    SessionEnd session() {
        std::unique_ptr<MessageStream> stream;
        try {
            stream = connector_.connect();
        } catch (const HandshakeRejected& e) {
            // Overload or a proxy whose broker is restarting passes; a refused
            // token or a wrong URL does not.
            if (e.status >= 500 || e.status == 429) return Retry{e.what()};
            renderer_.error(std::string("jobcast: ") + e.what());
            return ExitCode::connection;
        } catch (const ConnectionError& e) {
            return Retry{e.what()};
        }

        try {
            // One event of overlap: if the job ended exactly at last_seq_, its
            // terminal event comes again (and is recognized, not shown twice)
            // instead of the watch waiting forever for an event that was sent.
            stream->send(subscribe_op(options_.job, last_seq_ > 0 ? last_seq_ - 1 : 0));
            for (;;) {
                auto incoming = stream->receive();
                if (const auto* closed = std::get_if<ServerClosed>(&incoming)) {
                    return on_close(*closed);
                }
                const auto frame = parse_server_frame(std::get<std::string>(incoming));
                if (auto end = std::visit([&](const auto& f) { return on_frame(f); }, frame)) {
                    if (std::holds_alternative<ExitCode>(*end)) stream->close();
                    return *end;
                }
            }
        } catch (const ConnectionError& e) {
            return Retry{e.what()};
        }
    }

    SessionEnd on_close(const ServerClosed& closed) {
        const auto why = "closed by the server (" + std::to_string(closed.code) +
                         (closed.reason.empty() ? "" : ": " + closed.reason) + ")";
        if (closed.code == kCloseReauthenticate) {
            renderer_.error("jobcast: " + why + "; the token was refused or expired");
            return ExitCode::connection;
        }
        return Retry{why, closed.code == kClosePolicy};
    }

    std::optional<SessionEnd> on_frame(const SubscribedFrame& frame) {
        if (frame.job != options_.job) return std::nullopt;
        subscribed_ = true;
        ever_subscribed_ = true;
        if (reconnecting_) {
            reconnecting_ = false;
            renderer_.notice("[reconnected; resuming after seq " + std::to_string(last_seq_) + "]");
        }
        return std::nullopt;
    }

    std::optional<SessionEnd> on_frame(const EventsFrame& frame) {
        if (frame.job != options_.job) return std::nullopt;
        for (const auto& event : frame.events) {
            const auto outcome = terminal_outcome(event);
            if (event.seq <= last_seq_) {
                // Already shown (or before --after). A terminal one still ends the watch.
                if (outcome) return exit_code(*outcome);
                continue;
            }
            if (event.seq != last_seq_ + 1) {
                // The broker promises no holes; should one appear, ask again
                // from what we have rather than show output with a piece missing.
                return Retry{"expected seq " + std::to_string(last_seq_ + 1) + ", got " +
                             std::to_string(event.seq)};
            }
            last_seq_ = event.seq;
            renderer_.render(event);
            if (outcome) return exit_code(*outcome);
        }
        return std::nullopt;
    }

    std::optional<SessionEnd> on_frame(const ErrorFrame& frame) {
        if (!frame.job.empty() && frame.job != options_.job) return std::nullopt;
        if (frame.code == "not_found") {
            renderer_.error("jobcast: no such job: " + options_.job);
            return ExitCode::not_found;
        }
        if (frame.code == "busy" || frame.code == "limit" || frame.code == "overloaded") {
            return Retry{"server busy: " + frame.message};
        }
        renderer_.error("jobcast: " + frame.message + " (" + frame.code + ")");
        return frame.code == "bad_request" ? ExitCode::usage : ExitCode::connection;
    }

    std::optional<SessionEnd> on_frame(const IgnoredFrame&) { return std::nullopt; }

    std::optional<SessionEnd> on_frame(const MalformedFrame& frame) {
        renderer_.error("jobcast: unexpected message from the server: " + frame.reason);
        return ExitCode::connection;
    }

    const WatchOptions& options_;
    Connector& connector_;
    Renderer& renderer_;
    WatchClock& clock_;
    ReconnectPolicy policy_;
    std::uint64_t last_seq_;
    bool subscribed_ = false;       // on the current connection
    bool ever_subscribed_ = false;  // on any connection
    bool reconnecting_ = false;     // a "connection lost" notice is out
};

}  // namespace

WatchClock& steady_watch_clock() {
    static SteadyWatchClock clock;
    return clock;
}

ExitCode watch_job(const WatchOptions& options, Connector& connector, Renderer& renderer,
                   WatchClock& clock) {
    return Watch(options, connector, renderer, clock).run();
}

}  // namespace jobcast::cli
