#include "web/rest/rest_api.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <exception>
#include <span>
#include <utility>
#include <variant>

#include "live/hub.hpp"
#include "persistence/job_commands.hpp"
#include "persistence/written_seqs.hpp"
#include "protocol/client_api.hpp"
#include "protocol/job_fold.hpp"
#include "protocol/json.hpp"
#include "protocol/schema_registry.hpp"
#include "web/http/log.hpp"
#include "web/http/query.hpp"
#include "web/rest/rest_request.hpp"
#include "web/security/audit.hpp"
#include "web/security/security.hpp"
#include "web/stream/stream_stats.hpp"

namespace jobcast::web {

namespace {

HttpResponse json_response(int status, std::string body) {
    HttpResponse response;
    response.status = status;
    response.body = std::move(body);
    return response;
}

HttpResponse not_found_job() {
    return error_response(404, "not_found", "no such job");
}

// The page of GET /v1/jobs/{id}/events, or 404 when the job is not the caller's.
// Counted in jobcast_events_delivered_total{transport="longpoll"} when
// `stats` is set: the events endpoint is that transport, waiting or not.
HttpResponse events_response(const std::optional<RestApi::EventsPage>& page, StreamStats* stats) {
    if (!page) return not_found_job();
    if (stats && page->count != 0)
        stats->delivered[static_cast<std::size_t>(Transport::longpoll)].fetch_add(page->count);
    return json_response(200, client_api::events_page(page->events, page->last_seq, page->done));
}

HttpResponse internal_error() {
    return error_response(500, "internal", "internal error; see the broker log");
}

// The engine cannot take the write for now (store::engine_full): nothing
// was written, the same request may succeed in a moment.
HttpResponse unavailable(const store::WriteResult& result) {
    HttpResponse response = error_response(503, "unavailable", result.message);
    response.headers.emplace_back("Retry-After", "1");
    return response;
}

// Runs a store completion's reply on the writer thread without letting an
// exception escape into it.
template <class F>
void guarded(const Reply& reply, F&& make_response) {
    try {
        reply(make_response());
    } catch (const std::exception& e) {
        log().error("rest completion failed error={}", audit_quote(e.what()));
        reply(internal_error());
    }
}

}  // namespace

RestApi::RestApi(store::JobStore& jobs, store::EventLog& events, store::JobCommands& commands,
                 RestConfig config, RunBlocking run_blocking, const jobcast::Clock& clock)
    : jobs_(jobs),
      events_(events),
      commands_(commands),
      config_(std::move(config)),
      run_blocking_(std::move(run_blocking)),
      clock_(clock) {}

void RestApi::handle(HttpRequest request, Reply reply) {
    try {
        route(request, reply);
    } catch (const std::exception& e) {
        log().error("rest handler failed method={} target={} error={}", audit_quote(request.method),
                    log_target(request.target), audit_quote(e.what()));
        reply(internal_error());
    }
}

void RestApi::route(HttpRequest& request, const Reply& reply) {
    auto parsed = parse_rest_request(request, config_);
    if (auto* refused = std::get_if<HttpResponse>(&parsed)) return reply(std::move(*refused));
    std::visit([&](auto& call) { serve(request, std::move(call), reply); },
               std::get<RestCall>(parsed));
}

void RestApi::serve(const HttpRequest&, HealthCall, const Reply& reply) {
    reply(json_response(200, R"({"status":"ok"})"));
}

void RestApi::serve(const HttpRequest&, ReadyCall, const Reply& reply) {
    readiness(reply);
}

void RestApi::readiness(const Reply& reply) {
    if (!config_.ready || config_.ready()) {
        return reply(json_response(200, R"({"status":"ready"})"));
    }
    reply(json_response(503, R"({"status":"not_ready"})"));
}

void RestApi::off_io_thread(const Reply& reply, std::function<void(const Reply&)> work) {
    auto task = [reply, work = std::move(work)] {
        try {
            work(reply);
        } catch (const store::EngineUnavailable& e) {
            log().warn("rest store unavailable error={}", audit_quote(e.what()));
            HttpResponse response = error_response(
                503, "unavailable", "the store cannot be reached for now; retry shortly");
            response.headers.emplace_back("Retry-After", "1");
            reply(std::move(response));
        } catch (const std::exception& e) {
            log().error("rest blocking work failed error={}", audit_quote(e.what()));
            reply(internal_error());
        }
    };
    if (!run_blocking_(std::move(task))) {
        log().warn("rest overloaded: blocking pool full");
        HttpResponse response =
            error_response(503, "overloaded", "the server is busy; retry shortly");
        response.headers.emplace_back("Retry-After", "1");
        reply(std::move(response));
    }
}

std::optional<Job> RestApi::visible_job(const std::string& job_id, const std::string& owner) {
    auto job = jobs_.get(job_id);
    // Another owner's job answers exactly like a missing one: ids are not secrets,
    // but whether a job exists must not leak across owners.
    if (!job || job->owner != owner) return std::nullopt;
    return job;
}

// ---- POST /v1/jobs ----------------------------------------------------------

namespace {

bool same_request(const Job& existing, const json::JobRequest& request) {
    return existing.type == request.type && existing.params == request.params &&
           existing.priority == request.priority && existing.max_attempts == request.max_attempts;
}

HttpResponse created_response(const store::WriteResult& result, const json::JobRequest& request) {
    if (store::engine_full(result)) return unavailable(result);
    if (result.status == store::WriteStatus::conflict) {
        return error_response(409, "conflict", result.message);
    }
    if (result.status != store::WriteStatus::ok || !result.job) {
        log().error("create job failed status={} message={}", store::to_string(result.status),
                    audit_quote(result.message));
        return internal_error();
    }
    const Job& job = *result.job;
    if (result.created) {
        log().debug("job created job={} type={} owner={}", job.id, audit_quote(job.type),
                    audit_quote(job.owner));
        HttpResponse response = json_response(201, json::job(job));
        response.headers.emplace_back("Location", "/v1/jobs/" + job.id);
        return response;
    }
    // The key was used before: replay the original answer, unless this request
    // differs from the one that created the job (a client bug worth surfacing).
    if (!same_request(job, request)) {
        return error_response(422, "idempotency_key_reused",
                              "Idempotency-Key was already used for a different request");
    }
    HttpResponse response = json_response(200, json::job(job));
    response.headers.emplace_back("Idempotent-Replayed", "true");
    return response;
}

}  // namespace

void RestApi::serve(const HttpRequest& request, CreateJobCall call, const Reply& reply) {
    auto& job_request = call.job;
    if (config_.security && !config_.security->admit_submission(request.owner, request.remote)) {
        auto response = error_response(429, "rate_limited", "too many job submissions; slow down");
        response.headers.emplace_back("Retry-After", "1");
        return reply(std::move(response));
    }
    UnixMs now = clock_.unix_ms();
    store::CreateJob op;
    op.job.id = new_job_id(now);
    op.job.type = job_request.type;
    op.job.owner = request.owner;
    op.job.params = job_request.params;
    op.job.priority = job_request.priority;
    op.job.max_attempts = job_request.max_attempts;
    op.job.state = JobState::queued;
    op.job.created_at = now;
    op.idempotency_key = std::move(call.idempotency_key);

    // Checking the params and create() (which blocks while the writer's queue is
    // full) run off the I/O thread; the answer comes from the writer thread
    // once the job is durable.
    off_io_thread(reply, [this, op = std::move(op),
                          job_request = std::move(job_request)](const Reply& reply) mutable {
        if (auto refusal = params_refusal(job_request)) return reply(std::move(*refusal));
        commands_.create(std::move(op), [reply, job_request = std::move(job_request)](
                                            const store::WriteResult& r) {
            guarded(reply, [&] { return created_response(r, job_request); });
        });
    });
}

std::optional<HttpResponse> RestApi::params_refusal(const json::JobRequest& request) {
    if (!config_.schemas) return std::nullopt;
    const auto schema = config_.schemas->find(request.type);
    if (!schema) return std::nullopt;
    const auto violation = schema->check(request.params);
    if (!violation) return std::nullopt;
    config_.schemas->refused(request.type);
    const std::string field = "params" + violation->pointer;
    std::string body = R"({"error":{"code":"invalid_params","message":)";
    json::append_quoted(body, field + ": " + violation->message + " (" + violation->rule + ")");
    body += R"(,"field":)";
    json::append_quoted(body, violation->pointer);
    body += R"(,"rule":)";
    json::append_quoted(body, violation->rule);
    body += "}}";
    return json_response(422, std::move(body));
}

// ---- GET /v1/types ----------------------------------------------------------

void RestApi::serve(const HttpRequest&, TypesCall, const Reply& reply) {
    std::string body = R"({"types":[)";
    if (config_.schemas) {
        bool first = true;
        for (const auto& info : config_.schemas->types()) {
            if (!first) body += ',';
            first = false;
            body += R"({"type":)";
            json::append_quoted(body, info.type);
            body += R"(,"workers":)" + std::to_string(info.workers) + R"(,"schema":)";
            body += info.schema ? info.schema->json() : std::string("null");
            body += '}';
        }
    }
    body += "]}";
    reply(json_response(200, std::move(body)));
}

// ---- GET /v1/jobs/{id}, GET /v1/jobs ---------------------------------------

void RestApi::serve(const HttpRequest& request, GetJobCall call, const Reply& reply) {
    std::string job_id = std::move(call.job_id);
    off_io_thread(reply,
                  [this, job_id = std::move(job_id), owner = request.owner](const Reply& reply) {
                      auto job = visible_job(job_id, owner);
                      reply(job ? json_response(200, json::job(*job)) : not_found_job());
                  });
}

void RestApi::serve(const HttpRequest& request, ListJobsCall call, const Reply& reply) {
    store::ListQuery list;
    list.owner = request.owner;
    list.state = call.state;
    list.type = std::move(call.type);
    list.limit = call.limit;
    list.cursor = std::move(call.cursor);

    off_io_thread(reply, [this, list = std::move(list)](const Reply& reply) {
        store::ListPage page = jobs_.list(list);
        std::string body = R"({"jobs":[)";
        for (std::size_t i = 0; i < page.jobs.size(); ++i) {
            if (i != 0) body += ',';
            body += json::job(page.jobs[i]);
        }
        body += R"(],"next":)";
        if (page.next.empty()) {
            body += "null";
        } else {
            json::append_quoted(body, page.next);
        }
        body += '}';
        reply(json_response(200, std::move(body)));
    });
}

// ---- POST /v1/jobs/{id}/cancel ---------------------------------------------

namespace {

HttpResponse already_finished() {
    return error_response(409, "conflict", "job already finished");
}

HttpResponse cancelled_response(const store::WriteResult& result) {
    switch (result.status) {
        case store::WriteStatus::ok:
            if (result.job) return json_response(202, json::job(*result.job));
            break;
        case store::WriteStatus::not_found:
            return not_found_job();
        case store::WriteStatus::conflict:
            return store::engine_full(result) ? unavailable(result) : already_finished();
        case store::WriteStatus::duplicate:
        case store::WriteStatus::gap:
            break;
    }
    log().error("cancel failed status={} message={}", store::to_string(result.status),
                audit_quote(result.message));
    return internal_error();
}

}  // namespace

void RestApi::serve(const HttpRequest& request, CancelJobCall call, const Reply& reply) {
    std::string job_id = std::move(call.job_id);
    off_io_thread(reply, [this, job_id = std::move(job_id), owner = request.owner,
                          ip = remote_ip(request.remote)](const Reply& reply) {
        auto job = visible_job(job_id, owner);
        if (!job) return reply(not_found_job());
        if (is_terminal(job->state)) return reply(already_finished());
        audit_log().info("event=cancel transport=http owner={} ip={} job={}", audit_quote(owner),
                         ip, audit_quote(job_id));
        store::CancelJob op;
        op.job = job_id;
        op.now = clock_.unix_ms();
        // A running job is asked to stop through its worker (force = false); the
        // job JSON shows cancel_requested until the worker confirms.
        commands_.cancel(std::move(op), [reply](const store::WriteResult& result) {
            guarded(reply, [&] { return cancelled_response(result); });
        });
    });
}

// ---- GET /v1/jobs/{id}/events ----------------------------------------------

std::optional<RestApi::EventsPage> RestApi::read_events(const std::string& job_id,
                                                        const std::string& owner,
                                                        std::uint64_t after, std::size_t limit) {
    // The job first, then the log: a job already terminal here has its final
    // last_seq, so a page reaching it is provably the end.
    auto job = visible_job(job_id, owner);
    if (!job) return std::nullopt;
    EventsPage page;
    client_api::PageFramer objects(client_api::PageFramer::Format::objects, job_id);
    page.reached = after;
    page.count = events_
                     .read_into(job_id, after, limit, config_.max_page_bytes,
                                [&](std::span<const EventView> events) {
                                    for (const EventView& event : events)
                                        objects.add(event);
                                    page.reached = events.back().seq;
                                })
                     .events;
    page.events = objects.take();
    page.last_seq = job->last_seq;
    // Past the job's last_seq: appended between the two reads.
    if (page.count != 0) page.last_seq = std::max(page.last_seq, page.reached);
    // (In cluster mode a finished job's last events may not be shown here
    // yet: the page is not the end before it reaches them.)
    page.done = is_terminal(job->state) && page.reached >= page.last_seq &&
                page.reached >= store::written_seq(jobs_, job_id);
    page.job = std::move(*job);
    return page;
}

void RestApi::serve(const HttpRequest& request, JobEventsCall call, const Reply& reply) {
    std::string job_id = std::move(call.job_id);
    const std::uint64_t after = call.after;
    const std::size_t limit = call.limit;
    const std::chrono::milliseconds wait = call.wait;
    if (wait.count() > 0 && config_.hub && config_.schedule) {
        // A waiting long-poll holds its connection like a stream does: it
        // takes a place under the same per-owner limit, until it is answered.
        std::shared_ptr<void> slot;
        if (config_.security) {
            auto acquired =
                config_.security->acquire_connection(request.owner, request.remote, "long_poll");
            if (!acquired.slot) return reply(too_many_connections(acquired.limit));
            slot = std::move(acquired.slot);
        }
        return off_io_thread(reply, [this, job_id = std::move(job_id), owner = request.owner, after,
                                     limit, wait, slot, grant = request.grant](const Reply& reply) {
            wait_for_events(job_id, owner, after, limit, wait, reply, slot, grant);
        });
    }
    off_io_thread(reply, [this, job_id = std::move(job_id), owner = request.owner, after,
                          limit](const Reply& reply) {
        auto page = read_events(job_id, owner, after, limit);
        reply(events_response(page, config_.stream_stats));
    });
}

// ---- GET /v1/jobs/{id}/snapshot --------------------------------------------

// The job, then its log folded up to the job's last_seq as read: the two
// agree at that seq whatever commits meanwhile. The log is read from the
// start in pages, so memory stays one page plus the folded text, and nothing
// is kept between requests: a 100,000-token job (the llm worker's cap) folds
// in about 0.1 s in a Release build (bench/late_joiner.mjs), which a cache
// per job would save only for a crowd of late joiners of one long job.
void RestApi::serve(const HttpRequest& request, JobSnapshotCall call, const Reply& reply) {
    off_io_thread(
        reply, [this, job_id = std::move(call.job_id), owner = request.owner](const Reply& reply) {
            auto job = visible_job(job_id, owner);
            if (!job) return reply(not_found_job());
            client_api::JobFold fold;
            while (fold.seq < job->last_seq) {
                auto page = events_.read(job_id, fold.seq, config_.max_events_limit,
                                         config_.max_page_bytes);
                if (page.empty()) break;
                while (!page.empty() && page.back().seq > job->last_seq)
                    page.pop_back();
                if (page.empty()) break;
                client_api::fold_events(fold, page);
            }
            reply(json_response(200, client_api::snapshot_body(std::move(*job), fold)));
        });
}

// ---- POST /v1/jobs/{id}/tokens, POST /v1/tokens/revoke ---------------------

namespace {

HttpResponse no_job_tokens() {
    return error_response(400, "auth_off",
                          "this broker mints no job tokens: it runs without auth (start it with "
                          "--jwt-secret or --jwt-public-key)");
}

}  // namespace

void RestApi::serve(const HttpRequest& request, CreateTokenCall call, const Reply& reply) {
    auto tokens = config_.security ? config_.security->job_tokens() : nullptr;
    if (!tokens) return reply(no_job_tokens());
    const std::int64_t ceiling = tokens->config().max_lifetime_seconds;
    const std::int64_t ttl =
        call.token.ttl_seconds.value_or(std::min(tokens->config().default_ttl_seconds, ceiling));
    if (ttl > ceiling) {
        return reply(error_response(400, "invalid_request",
                                    "ttl must be at most " + std::to_string(ceiling) +
                                        " seconds (the broker's --max-token-lifetime)"));
    }
    if (request.grant && call.token.cancel && !request.grant->cancel) {
        return reply(error_response(
            403, "forbidden", "this token may not cancel the job, so neither may its refresh"));
    }
    off_io_thread(reply, [this, tokens, call = std::move(call), ttl, owner = request.owner,
                          grant = request.grant,
                          ip = remote_ip(request.remote)](const Reply& reply) {
        if (!visible_job(call.job_id, owner)) return reply(not_found_job());
        auto minted =
            tokens->mint(owner, call.job_id, ttl, call.token.cancel, grant, clock_.unix_ms());
        if (!minted) {
            return reply(error_response(401, "unauthorized",
                                        "this token's session has reached the broker's "
                                        "--max-token-lifetime; the owner must mint a new token"));
        }
        audit_log().info(
            "event=token_issued owner={} ip={} job={} token_id={} session={} cancel={} "
            "expires_at={} refresh={}",
            audit_quote(owner), ip, audit_quote(call.job_id), minted->grant.token_id,
            minted->grant.session_id, minted->grant.cancel, minted->expires_at, grant.has_value());
        std::string body = R"({"token":)";
        json::append_quoted(body, minted->token);
        body += R"(,"token_id":)";
        json::append_quoted(body, minted->grant.token_id);
        body += R"(,"job":)";
        json::append_quoted(body, call.job_id);
        body += R"(,"cancel":)";
        body += minted->grant.cancel ? "true" : "false";
        body += R"(,"expires_at":)" + std::to_string(minted->expires_at);
        body += R"(,"session_expires_at":)" + std::to_string(minted->session_expires_at) + "}";
        reply(json_response(201, std::move(body)));
    });
}

void RestApi::serve(const HttpRequest& request, RevokeTokensCall call, const Reply& reply) {
    auto tokens = config_.security ? config_.security->job_tokens() : nullptr;
    if (!tokens) return reply(no_job_tokens());
    const bool admin = config_.security->token_admin(request.owner);
    if (call.revoke.kind == json::RevokeRequest::Kind::owner && call.revoke.key != request.owner &&
        !admin) {
        return reply(error_response(403, "forbidden",
                                    "only the owner or a token admin (--token-admin) may revoke "
                                    "an owner's tokens"));
    }
    off_io_thread(reply, [this, tokens, revoke = call.revoke, owner = request.owner, admin,
                          ip = remote_ip(request.remote)](const Reply& reply) {
        store::TokenRevocation revocation;
        revocation.key = revoke.key;
        revocation.owner = owner;
        switch (revoke.kind) {
            case json::RevokeRequest::Kind::token:
                // Recorded under the caller: it reaches the caller's tokens only.
                revocation.kind = "token";
                break;
            case json::RevokeRequest::Kind::job: {
                revocation.kind = "job";
                auto job = jobs_.get(revoke.key);
                if (!job || (job->owner != owner && !admin)) return reply(not_found_job());
                revocation.owner = job->owner;
                break;
            }
            case json::RevokeRequest::Kind::owner:
                revocation.kind = "owner";
                revocation.owner = revoke.key;
                break;
        }
        std::size_t closed = 0;
        try {
            closed = tokens->revoke(revocation, clock_.unix_ms());
        } catch (const store::StoreError& e) {
            log().error("token revocation not stored kind={} key={} error={}", revocation.kind,
                        audit_quote(revocation.key), audit_quote(e.what()));
            return reply(error_response(500, "internal",
                                        "the revocation holds on this broker until it restarts, "
                                        "but it could not be stored; try again"));
        }
        audit_log().info("event=token_revoked by={} ip={} kind={} owner={} key={} closed={}",
                         audit_quote(owner), ip, revocation.kind, audit_quote(revocation.owner),
                         audit_quote(revocation.key), closed);
        std::string body = R"({"revoked":{"kind":)";
        json::append_quoted(body, revocation.kind);
        body += R"(,"owner":)";
        json::append_quoted(body, revocation.owner);
        body += R"(,"key":)";
        json::append_quoted(body, revocation.key);
        body += R"(},"closed_streams":)" + std::to_string(closed) + "}";
        reply(json_response(200, std::move(body)));
    });
}

// One waiting long-poll: answered by the first commit for its job, by its
// timer, or by shutdown — whichever comes first, exactly once.
class LongPoll : public live::LiveSink, public std::enable_shared_from_this<LongPoll> {
  public:
    LongPoll(RestApi& api, std::string job, std::string owner, std::uint64_t after,
             std::size_t limit, Reply reply, std::shared_ptr<void> slot)
        : api_(api),
          job_(std::move(job)),
          owner_(std::move(owner)),
          after_(after),
          limit_(limit),
          reply_(std::move(reply)),
          slot_(std::move(slot)),
          open_(api.config_.stream_stats) {}

    void deliver(const live::PublishedPtr&) override { fire(); }

    // Reads the page again (off the hub and timer threads) and answers.
    void fire() {
        if (fired_.exchange(true)) return;
        api_.config_.hub->unsubscribe(job_, this);
        {
            std::lock_guard lock(api_.long_polls_mutex_);
            api_.long_polls_.erase(this);
        }
        auto self = shared_from_this();
        bool queued = api_.run_blocking_([self] { self->answer(); });
        if (!queued) answer_busy();
    }

    // Claims the poll for an immediate answer; false if something else already did.
    bool claim() {
        if (fired_.exchange(true)) return false;
        release();
        api_.config_.hub->unsubscribe(job_, this);
        std::lock_guard lock(api_.long_polls_mutex_);
        api_.long_polls_.erase(this);
        return true;
    }

    // Only the one that fired the poll calls these: the place under the
    // per-owner limit is given back before the client can see the answer.
    void answer() {
        release();
        try {
            auto page = api_.read_events(job_, owner_, after_, limit_);
            reply_(events_response(page, api_.config_.stream_stats));
        } catch (const std::exception& e) {
            log().error("long-poll read failed job={} error={}", audit_quote(job_),
                        audit_quote(e.what()));
            reply_(internal_error());
        }
    }

    void answer_busy() {
        release();
        reply_(error_response(503, "busy", "the broker is busy; try again"));
    }

    // The job token the poll was made with is revoked: it ends now, with
    // nothing read after the revocation.
    void revoked() {
        if (!claim()) return;
        reply_(error_response(401, "unauthorized", "token revoked"));
    }

    void watch(std::shared_ptr<void> handle) { watch_ = std::move(handle); }

  private:
    // Counts the poll in jobcast_connections{transport="longpoll"} while it
    // waits; given back (once) with its place under the limit.
    class OpenCount {
      public:
        explicit OpenCount(StreamStats* stats) : stats_(stats) {
            if (stats_) stats_->connections[kIndex].fetch_add(1);
        }
        OpenCount(const OpenCount&) = delete;
        OpenCount& operator=(const OpenCount&) = delete;
        ~OpenCount() { release(); }
        void release() {
            if (auto* stats = std::exchange(stats_, nullptr))
                stats->connections[kIndex].fetch_sub(1);
        }

      private:
        static constexpr std::size_t kIndex = static_cast<std::size_t>(Transport::longpoll);
        StreamStats* stats_;
    };

    void release() {
        slot_.reset();
        open_.release();
    }

    RestApi& api_;
    std::string job_, owner_;
    std::uint64_t after_;
    std::size_t limit_;
    Reply reply_;
    std::shared_ptr<void> slot_;  // the connection's place under the per-owner limit
    OpenCount open_;
    std::shared_ptr<void> watch_;  // revocations of the job token it relies on
    std::atomic<bool> fired_{false};
};

void RestApi::wait_for_events(std::string job_id, std::string owner, std::uint64_t after,
                              std::size_t limit, std::chrono::milliseconds wait, const Reply& reply,
                              std::shared_ptr<void> slot, std::optional<auth::JobGrant> grant) {
    auto poll =
        std::make_shared<LongPoll>(*this, job_id, owner, after, limit, reply, std::move(slot));
    {
        std::lock_guard lock(long_polls_mutex_);
        long_polls_.emplace(poll.get(), poll);
    }
    const auto* security = config_.security.get();
    if (grant && security && security->job_tokens()) {
        std::weak_ptr<LongPoll> weak = poll;
        poll->watch(security->job_tokens()->watch(owner, std::move(*grant), [weak] {
            if (auto p = weak.lock()) p->revoked();
        }));
    }
    // Listen first, then read: an event committed in between is either in
    // the read or wakes the poll (durable before visible).
    config_.hub->subscribe(job_id, after, poll, live::WireFormat::none);
    auto page = read_events(job_id, owner, after, limit);
    if (!page || page->count != 0 || page->done) {
        if (!poll->claim()) return;  // an event fired it meanwhile: it answers
        reply(events_response(page, config_.stream_stats));
        return;
    }
    // long_polls_ owns the poll until it is answered; the timer, like the
    // hub, only refers to it, so an answered poll frees its reply (and its
    // connection) at once. Whichever of timer, commit or shutdown comes first answers.
    std::weak_ptr<LongPoll> weak = poll;
    config_.schedule(wait, [weak] {
        if (auto p = weak.lock()) p->fire();
    });
}

void RestApi::release_long_polls() {
    std::vector<std::shared_ptr<LongPoll>> polls;
    {
        std::lock_guard lock(long_polls_mutex_);
        for (auto& [key, poll] : long_polls_)
            polls.push_back(poll);
    }
    for (auto& p : polls)
        p->fire();
}

}  // namespace jobcast::web
