// The REST endpoints of Client API v1 as pure request handling: an HttpRequest
// in, one HttpResponse out through `reply`. No Beast, no sockets: the server
// adapts Beast messages to these values, and the tests drive RestApi directly.
//
// Threads: handle() is called on an I/O thread and never blocks it. Reads that
// hit SQLite and store submits (which block under backpressure) run through the
// injected RunBlocking; write results arrive on the store's writer thread after
// COMMIT. `reply` may therefore be called on any of these threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "protocol/model.hpp"
#include "web/http/http_message.hpp"
#include "web/http/routes.hpp"
#include "web/rest/rest_request.hpp"

namespace jobcast::store {
class EventLog;
class JobCommands;
class JobStore;
}  // namespace jobcast::store
namespace jobcast::live {
class Hub;
}
namespace jobcast::proto {
class SchemaRegistry;
}

namespace jobcast::web {

class LongPoll;
class SecurityContext;
struct StreamStats;

// The request limits parse_rest_request checks (rest_request.hpp), and what
// serving the requests needs besides.
struct RestConfig : RestLimits {
    // An events page (and a long-poll's answer) also ends once its events'
    // data reaches this many bytes; it always holds at least one event.
    std::size_t max_page_bytes = 4 << 20;
    std::function<bool()> ready;  // GET /readyz; empty means always ready
    // Long-poll (GET /v1/jobs/{id}/events?wait=S): the hub to wait on and a
    // timer. Without them `wait` is accepted and ignored.
    live::Hub* hub = nullptr;
    std::function<void(std::chrono::milliseconds, std::function<void()>)> schedule;
    // Job submissions per owner per second (429) and the audit log of cancels.
    std::shared_ptr<SecurityContext> security;
    // The params schemas workers announced: a submission whose params break
    // its type's schema is answered 422 and not queued; GET /v1/types lists
    // them. Null: every submission is queued as it is, and no type is listed.
    std::shared_ptr<proto::SchemaRegistry> schemas;
    // Counts waiting long-polls in jobcast_connections{transport="longpoll"}
    // and the events the events endpoint answers in
    // jobcast_events_delivered_total{transport="longpoll"}. Null: not counted.
    StreamStats* stream_stats = nullptr;
};

// Runs a task off the I/O threads; false when it cannot be queued (overload).
using RunBlocking = std::function<bool(std::function<void()>)>;

class RestApi {
  public:
    // Reads through `jobs` and `events`, writes through `commands`.
    RestApi(store::JobStore& jobs, store::EventLog& events, store::JobCommands& commands,
            RestConfig config, RunBlocking run_blocking,
            const jobcast::Clock& clock = jobcast::Clock::system());

    // Answers `request` by calling `reply` exactly once (possibly later, on
    // another thread). Never throws.
    void handle(HttpRequest request, Reply reply);

    // One page of a job's log as GET /v1/jobs/{id}/events serves it; the
    // long-poll and SSE variants of that route build on the same read.
    struct EventsPage {
        Job job;
        // The events' objects, comma-separated (client_api::PageFramer's
        // objects), written straight from what the store read.
        std::string events;
        std::size_t count = 0;       // how many events
        std::uint64_t reached = 0;   // the last one's seq; `after` when there is none
        std::uint64_t last_seq = 0;  // newest seq in the log when read
        bool done = false;           // the job is terminal and this page reaches last_seq
    };
    // Blocking (SQLite): call through RunBlocking. nullopt when the job does
    // not exist or belongs to another owner.
    std::optional<EventsPage> read_events(const std::string& job_id, const std::string& owner,
                                          std::uint64_t after, std::size_t limit);

    // Answers every waiting long-poll now (shutdown). Any thread.
    void release_long_polls();

  private:
    void route(HttpRequest& request, const Reply& reply);
    // One endpoint each, with the parameters parse_rest_request validated.
    void serve(const HttpRequest& request, HealthCall call, const Reply& reply);
    void serve(const HttpRequest& request, ReadyCall call, const Reply& reply);
    void serve(const HttpRequest& request, CreateJobCall call, const Reply& reply);
    void serve(const HttpRequest& request, GetJobCall call, const Reply& reply);
    void serve(const HttpRequest& request, ListJobsCall call, const Reply& reply);
    void serve(const HttpRequest& request, CancelJobCall call, const Reply& reply);
    void serve(const HttpRequest& request, JobEventsCall call, const Reply& reply);
    void serve(const HttpRequest& request, JobSnapshotCall call, const Reply& reply);
    void serve(const HttpRequest& request, TypesCall call, const Reply& reply);
    void serve(const HttpRequest& request, CreateTokenCall call, const Reply& reply);
    void serve(const HttpRequest& request, RevokeTokensCall call, const Reply& reply);
    // The 422 answer when `request`'s params break its type's schema.
    std::optional<HttpResponse> params_refusal(const json::JobRequest& request);
    void readiness(const Reply& reply);

    // Runs `work` through RunBlocking; a full pool answers 503, an exception 500.
    void off_io_thread(const Reply& reply, std::function<void(const Reply&)> work);
    // The job if it exists and `owner` may see it (blocking).
    std::optional<Job> visible_job(const std::string& job_id, const std::string& owner);

    friend class LongPoll;
    class SecurityContext;
    void wait_for_events(std::string job_id, std::string owner, std::uint64_t after,
                         std::size_t limit, std::chrono::milliseconds wait, const Reply& reply,
                         std::shared_ptr<void> slot, std::optional<auth::JobGrant> grant);

    store::JobStore& jobs_;
    store::EventLog& events_;
    store::JobCommands& commands_;
    RestConfig config_;
    std::mutex long_polls_mutex_;
    std::unordered_map<const LongPoll*, std::shared_ptr<LongPoll>> long_polls_;  // owns them
    RunBlocking run_blocking_;
    const jobcast::Clock& clock_;
};

}  // namespace jobcast::web
