// The Durable Streams protocol (v1.0) under /v1/streams/: create (PUT),
// fork (PUT with Stream-Forked-From), append (POST, with idempotent producers
// and Stream-Seq), read (GET: catch-up with offsets and the -1/now sentinels,
// ETags, live=long-poll), HEAD, DELETE, TTL and Expires-At. A waiting
// long-poll holds a place under the connection limits, like the REST API's.
// Streams created here live in the store's StreamLog, per owner; every job's
// log is also the read-only JSON stream /v1/streams/jobs/{id}, one message per
// event, read through the REST API's job read (the same owner check).
// live=sse takes its connection in web/streams/stream_sse.hpp, with the plans
// this class makes.
//
// Like RestApi: handle() runs on an I/O thread and never blocks it; store
// work goes through RunBlocking, and replies may come from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/clock.hpp"
#include "persistence/stream_log.hpp"
#include "protocol/model.hpp"
#include "web/http/http_message.hpp"
#include "web/streams/durable_stream_stats.hpp"

namespace jobcast::live {
class Hub;
}

namespace jobcast::web {

class RestApi;
class SecurityContext;

namespace streams {

inline constexpr std::string_view kBasePath = "/v1/streams/";
inline constexpr std::string_view kJobsPrefix = "jobs/";

// True when `target` is under /v1/streams/.
bool is_stream_target(std::string_view target);

struct DurableStreamsConfig {
    // How long a caught-up long-poll waits, and how often a quiet SSE stream
    // sends a control event.
    std::chrono::milliseconds long_poll_timeout{20'000};
    // A read's answer ends after the message that takes it past this.
    std::size_t max_read_bytes = 1 << 20;
    std::size_t max_job_events = 1000;  // a job stream's read: events per answer
    std::size_t max_name_bytes = 1024;
};

class StreamWait;

// An SSE request that passed its checks: what the session streams.
struct SsePlan {
    std::string owner;
    std::uint64_t after = 0;  // the offset it starts after
    std::optional<std::string> cursor;
    // A job's log (the job's id) or a created stream.
    std::string job;
    store::StreamInfo stream;
    std::uint64_t last_seq = 0;   // the tail when admitted (a job's last_seq)
    bool closed_at_tail = false;  // nothing more will come: one final control event
    bool base64 = false;
    bool json = false;
};

class DurableStreams {
  public:
    using RunBlocking = std::function<bool(std::function<void()>)>;
    using Schedule = std::function<void(std::chrono::milliseconds, std::function<void()>)>;

    // `log` null: only job streams are served (the store keeps no others).
    // `security` null: no connection limits.
    DurableStreams(store::StreamLog* log, RestApi& jobs, live::Hub& hub,
                   DurableStreamsConfig config, RunBlocking run_blocking, Schedule schedule,
                   std::shared_ptr<SecurityContext> security,
                   const jobcast::Clock& clock = jobcast::Clock::system());
    ~DurableStreams();
    DurableStreams(const DurableStreams&) = delete;
    DurableStreams& operator=(const DurableStreams&) = delete;

    // Answers a request under /v1/streams/ exactly once. Never throws.
    void handle(HttpRequest request, Reply reply);

    // live=sse: the checks of the request (blocking: call through
    // RunBlocking), then either the answer that refuses it or the plan.
    std::variant<HttpResponse, SsePlan> plan_sse(const HttpRequest& request);
    // For an SSE session: the messages of a created stream after `after`
    // formatted as SSE data events, the new offset, and the stream as it now
    // is (nullopt: it is gone). Blocking.
    struct SseBatch {
        std::string frames;
        std::uint64_t reached = 0;
        std::optional<store::StreamInfo> stream;
    };
    SseBatch read_sse(const SsePlan& plan, std::uint64_t after);
    // Calls `wake` once: at the next change of the plan's stream (an append,
    // a close, a delete; for a job, a commit of its log), or after the
    // long-poll timeout (`timed_out`), unless cancel_watch() comes first.
    std::shared_ptr<StreamWait> watch(const SsePlan& plan, std::uint64_t after,
                                      std::function<void(bool timed_out)> wake);
    void cancel_watch(const std::shared_ptr<StreamWait>& wait);
    // The control event after `reached` (streamClosed when `closed`, else a
    // cursor following the client's, and upToDate at the tail).
    std::string control_event(std::uint64_t reached, bool up_to_date, bool closed,
                              std::optional<std::string_view> client_cursor);
    // Event objects of a job's log as SSE data events (one JSON array each).
    static std::string job_sse_frames(const std::vector<Event>& events, std::size_t skip = 0);

    std::chrono::milliseconds keepalive() const { return config_.long_poll_timeout; }
    const jobcast::Clock& clock() const { return clock_; }
    const DurableStreamStats& stats() const { return *stats_; }
    // Counts one open live reader in `mode` until the hold is dropped.
    std::shared_ptr<void> live_reader(LiveMode mode);

    // Answers every waiting long-poll now (shutdown). Any thread.
    void release_waits();

  private:
    friend class StreamWait;
    struct Target;
    struct ReadRequest;

    void route(HttpRequest& request, const Reply& reply);
    void create(const HttpRequest& request, const Target& target, const Reply& reply);
    void append(const HttpRequest& request, const Target& target, const Reply& reply);
    void remove(const HttpRequest& request, const Target& target, const Reply& reply);
    void head(const HttpRequest& request, const Target& target, const Reply& reply);
    void read(const HttpRequest& request, const Target& target, const Reply& reply);
    void read_stream(ReadRequest read, const Reply& reply);
    void read_job(ReadRequest read, const Reply& reply);
    void off_io_thread(const Reply& reply, std::function<void(const Reply&)> work);
    std::shared_ptr<StreamWait> wait_stream(std::int64_t id, std::uint64_t after,
                                            std::function<void(bool)> wake);
    std::shared_ptr<StreamWait> wait_job(const std::string& job, std::uint64_t after,
                                         std::function<void(bool)> wake);
    // Whether a job's log went past `after` or ended (or cannot be read): a
    // wait subscribed after its read is woken at once then. Blocking.
    bool job_moved(const std::string& job, const std::string& owner, std::uint64_t after);
    void start_wait(const std::shared_ptr<StreamWait>& wait);
    void forget(StreamWait* wait);
    void notify(std::int64_t id);
    std::string cursor(const std::optional<std::string>& client) const;

    store::StreamLog* log_;
    RestApi& jobs_;
    live::Hub& hub_;
    DurableStreamsConfig config_;
    RunBlocking run_blocking_;
    Schedule schedule_;
    std::shared_ptr<SecurityContext> security_;
    const jobcast::Clock& clock_;
    std::shared_ptr<DurableStreamStats> stats_ = std::make_shared<DurableStreamStats>();

    std::mutex waits_mutex_;
    // Every wait until it fires (owns them); created streams' waits by stream.
    std::unordered_map<const StreamWait*, std::shared_ptr<StreamWait>> waits_;
    std::unordered_multimap<std::int64_t, std::weak_ptr<StreamWait>> by_stream_;
};

}  // namespace streams
}  // namespace jobcast::web
