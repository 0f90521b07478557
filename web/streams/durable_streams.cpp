#include "web/streams/durable_streams.hpp"

#include <atomic>
#include <exception>
#include <limits>
#include <random>
#include <utility>

#include "live/hub.hpp"
#include "protocol/json.hpp"
#include "protocol/json_messages.hpp"
#include "web/http/log.hpp"
#include "web/http/query.hpp"
#include "web/rest/rest_api.hpp"
#include "web/rest/rest_request.hpp"
#include "web/security/audit.hpp"
#include "web/security/security.hpp"
#include "web/streams/stream_protocol.hpp"

namespace jobcast::web::streams {

namespace {

constexpr std::string_view kJsonType = "application/json";
constexpr std::string_view kDefaultType = "application/octet-stream";
constexpr std::uint64_t kNoOffset = std::numeric_limits<std::uint64_t>::max();

using Headers = std::vector<std::pair<std::string, std::string>>;

// On every answer under /v1/streams/, errors included (the protocol's
// browser security headers, and what a cross-origin reader may see).
void add_common_headers(HttpResponse& response) {
    response.headers.emplace_back("X-Content-Type-Options", "nosniff");
    response.headers.emplace_back("Cross-Origin-Resource-Policy", "cross-origin");
    response.headers.emplace_back(
        "Access-Control-Expose-Headers",
        "Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, "
        "Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, Producer-Expected-Seq, "
        "Producer-Received-Seq, ETag, Location, Content-Type");
}

HttpResponse answer(int status, std::string content_type = {}, std::string body = {},
                    Headers headers = {}) {
    HttpResponse response{status, std::move(content_type), std::move(body), std::move(headers)};
    add_common_headers(response);
    return response;
}

HttpResponse refuse(int status, std::string_view code, std::string_view message,
                    Headers headers = {}) {
    HttpResponse response = error_response(status, code, message);
    for (auto& header : headers)
        response.headers.push_back(std::move(header));
    add_common_headers(response);
    return response;
}

HttpResponse no_stream() {
    return refuse(404, "not_found", "no such stream");
}

// A stream deleted while forks still read it.
HttpResponse gone() {
    return refuse(410, "gone", "the stream was deleted");
}

HttpResponse internal_error() {
    return refuse(500, "internal", "internal error; see the broker log");
}

bool is_json(std::string_view content_type) {
    return domain::normalize_content_type(content_type) == kJsonType;
}

// A usable media type ("type/subtype", parameters kept), or nullopt.
std::optional<std::string> media_type(std::optional<std::string_view> header) {
    if (!header) return std::nullopt;
    std::string_view value = *header;
    auto word = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || c == '.' || c == '+';
    };
    std::size_t i = 0;
    while (i < value.size() && word(value[i]))
        ++i;
    if (i == 0 || i >= value.size() || value[i] != '/') return std::nullopt;
    std::size_t j = ++i;
    while (j < value.size() && word(value[j]))
        ++j;
    if (j == i) return std::nullopt;
    return std::string(value);
}

// Stream-Forked-From: the source's URL or path, under the base URL
// ("/v1/streams/{name}") or relative to it ("/{name}", as a client given
// the base URL writes it); nullopt when it names nothing.
std::optional<std::string> fork_source(std::string_view header) {
    if (const auto scheme = header.find("://"); scheme != std::string_view::npos) {
        const auto path = header.find('/', scheme + 3);
        header = path == std::string_view::npos ? std::string_view{} : header.substr(path);
    }
    auto decoded = percent_decode(header, false);
    if (!decoded) return std::nullopt;
    std::string_view path = *decoded;
    if (path.starts_with(kBasePath)) {
        path.remove_prefix(kBasePath.size());
    } else if (path.starts_with('/')) {
        path.remove_prefix(1);
    }
    if (path.empty()) return std::nullopt;
    return std::string(path);
}

// The body as the stream's messages: JSON mode splits an array, any other
// type is one message per append.
std::variant<std::vector<std::string>, HttpResponse> body_messages(std::string_view content_type,
                                                                   const std::string& body,
                                                                   bool creating) {
    std::vector<std::string> messages;
    if (body.empty()) return messages;  // a stream created empty, or a close
    if (is_json(content_type)) {
        auto parsed = json::json_messages(body, creating);
        if (auto* error = std::get_if<json::JsonMessagesError>(&parsed)) {
            return refuse(400, "invalid_json", error->message);
        }
        return std::get<std::vector<std::string>>(std::move(parsed));
    }
    messages.push_back(body);
    return messages;
}

// Messages as the answer's body: bytes back to back, or one JSON array.
std::string format_body(bool json, const std::vector<store::StreamMessage>& messages) {
    std::string out;
    if (json) out += '[';
    for (std::size_t i = 0; i < messages.size(); ++i) {
        if (json && i != 0) out += ',';
        out += messages[i].data;
    }
    if (json) out += ']';
    return out;
}

// A job's events (their objects, comma-separated) as a JSON read's body.
std::string job_body(std::string_view event_objects) {
    std::string out;
    out.reserve(event_objects.size() + 2);
    out += '[';
    out += event_objects;
    out += ']';
    return out;
}

std::string etag(std::string_view stream, std::string_view start, std::uint64_t end, bool closed) {
    std::string tag = "\"";
    tag.append(stream).append(":").append(start).append(":").append(format_offset(end));
    if (closed) tag += ":c";
    tag += '"';
    return tag;
}

}  // namespace

bool is_stream_target(std::string_view target) {
    return split_target(target).path.starts_with(kBasePath);
}

// ---- waits -------------------------------------------------------------------

// One long-poll (or a quiet SSE stream) waiting for its stream to change:
// woken by the first change or by its timer, exactly once.
class StreamWait : public live::LiveSink, public std::enable_shared_from_this<StreamWait> {
  public:
    StreamWait(DurableStreams& owner, std::function<void(bool)> wake)
        : owner_(owner), wake_(std::move(wake)) {}

    void deliver(const live::PublishedPtr&) override { fire(false); }

    void fire(bool timed_out) {
        if (fired_.exchange(true)) return;
        auto self = shared_from_this();  // alive through the wake, whoever owned it
        owner_.forget(this);
        wake_(timed_out);
        wake_ = nullptr;
    }

    // The reader went away: forget the wait without waking anyone.
    void cancel() {
        if (fired_.exchange(true)) return;
        auto self = shared_from_this();
        owner_.forget(this);
        wake_ = nullptr;
    }

    std::string job;  // a job's wait: subscribed to the hub for it
    std::int64_t stream = 0;

  private:
    DurableStreams& owner_;
    std::function<void(bool)> wake_;
    std::atomic<bool> fired_{false};
};

DurableStreams::DurableStreams(store::StreamLog* log, RestApi& jobs, live::Hub& hub,
                               DurableStreamsConfig config, RunBlocking run_blocking,
                               Schedule schedule, std::shared_ptr<SecurityContext> security,
                               const jobcast::Clock& clock)
    : log_(log),
      jobs_(jobs),
      hub_(hub),
      config_(config),
      run_blocking_(std::move(run_blocking)),
      schedule_(std::move(schedule)),
      security_(std::move(security)),
      clock_(clock) {
    // Other brokers' writes (a shared store) wake the waits here too.
    if (log_) log_->listen([this](std::int64_t id) { notify(id); });
}

DurableStreams::~DurableStreams() {
    release_waits();
    if (log_) log_->listen(nullptr);
}

std::shared_ptr<StreamWait> DurableStreams::wait_stream(std::int64_t id, std::uint64_t after,
                                                        std::function<void(bool)> wake) {
    auto wait = std::make_shared<StreamWait>(*this, std::move(wake));
    wait->stream = id;
    log_->watch(id, after);  // before the wait can fire, which unwatches
    {
        std::lock_guard lock(waits_mutex_);
        waits_.emplace(wait.get(), wait);
        by_stream_.emplace(id, wait);
    }
    start_wait(wait);
    return wait;
}

std::shared_ptr<StreamWait> DurableStreams::wait_job(const std::string& job, std::uint64_t after,
                                                     std::function<void(bool)> wake) {
    auto wait = std::make_shared<StreamWait>(*this, std::move(wake));
    wait->job = job;
    {
        std::lock_guard lock(waits_mutex_);
        waits_.emplace(wait.get(), wait);
    }
    hub_.subscribe(job, after, wait, live::WireFormat::none);
    start_wait(wait);
    return wait;
}

void DurableStreams::start_wait(const std::shared_ptr<StreamWait>& wait) {
    std::weak_ptr<StreamWait> weak = wait;
    schedule_(config_.long_poll_timeout, [weak] {
        if (auto w = weak.lock()) w->fire(true);
    });
}

void DurableStreams::forget(StreamWait* wait) {
    if (!wait->job.empty()) hub_.unsubscribe(wait->job, wait);
    if (wait->stream != 0) log_->unwatch(wait->stream);
    std::lock_guard lock(waits_mutex_);
    waits_.erase(wait);
    if (wait->stream != 0) {
        auto [first, last] = by_stream_.equal_range(wait->stream);
        for (auto it = first; it != last; ++it) {
            if (it->second.lock().get() == wait || it->second.expired()) {
                by_stream_.erase(it);
                break;
            }
        }
    }
}

void DurableStreams::notify(std::int64_t id) {
    std::vector<std::shared_ptr<StreamWait>> woken;
    {
        std::lock_guard lock(waits_mutex_);
        auto [first, last] = by_stream_.equal_range(id);
        for (auto it = first; it != last; ++it)
            if (auto w = it->second.lock()) woken.push_back(std::move(w));
    }
    for (auto& wait : woken)
        wait->fire(false);
}

void DurableStreams::release_waits() {
    std::vector<std::shared_ptr<StreamWait>> all;
    {
        std::lock_guard lock(waits_mutex_);
        for (auto& [key, wait] : waits_)
            all.push_back(wait);
    }
    for (auto& wait : all)
        wait->fire(true);
}

std::shared_ptr<StreamWait> DurableStreams::watch(const SsePlan& plan, std::uint64_t after,
                                                  std::function<void(bool)> wake) {
    if (plan.job.empty()) return wait_stream(plan.stream.id, after, std::move(wake));
    auto wait = wait_job(plan.job, after, std::move(wake));
    // A commit handed out between the caller's read and the subscription
    // (its last event, say) would wait for the timeout: look once more, as
    // a long-poll does (on a full pool the wait keeps its timeout).
    std::weak_ptr<StreamWait> weak = wait;
    run_blocking_([this, weak, job = plan.job, owner = plan.owner, after] {
        auto w = weak.lock();
        if (!w) return;
        bool moved = true;  // a failed read: the caller's read reports it
        try {
            moved = job_moved(job, owner, after);
        } catch (const std::exception&) {
        }
        if (moved) w->fire(false);
    });
    return wait;
}

bool DurableStreams::job_moved(const std::string& job, const std::string& owner,
                               std::uint64_t after) {
    auto again = jobs_.read_events(job, owner, kNoOffset, 1);
    return !again || again->last_seq > after || again->done;
}

void DurableStreams::cancel_watch(const std::shared_ptr<StreamWait>& wait) {
    wait->cancel();
}

std::shared_ptr<void> DurableStreams::live_reader(LiveMode mode) {
    // Counted from its construction to its destruction (the stats outlive it).
    class Reader {
      public:
        Reader(std::shared_ptr<DurableStreamStats> stats, std::size_t mode)
            : stats_(std::move(stats)), mode_(mode) {
            stats_->live_readers[mode_].fetch_add(1, std::memory_order_relaxed);
        }
        ~Reader() { stats_->live_readers[mode_].fetch_sub(1, std::memory_order_relaxed); }
        Reader(const Reader&) = delete;
        Reader& operator=(const Reader&) = delete;

      private:
        std::shared_ptr<DurableStreamStats> stats_;
        std::size_t mode_;
    };
    return std::make_shared<Reader>(stats_, static_cast<std::size_t>(mode));
}

std::string DurableStreams::cursor(const std::optional<std::string>& client) const {
    // Jitter of 1 s to 1 h, in 20 s intervals: a cursor a client echoes back
    // moves ahead by a random amount, so cached answers do not line up.
    thread_local std::mt19937 random{std::random_device{}()};
    std::uniform_int_distribution<std::uint32_t> intervals(1, 180);
    return next_cursor(clock_.unix_ms(),
                       client ? std::optional<std::string_view>(*client) : std::nullopt,
                       intervals(random));
}

// ---- routing -------------------------------------------------------------------

struct DurableStreams::Target {
    std::string name;  // the stream's name (created streams)
    std::string job;   // a job's id (/v1/streams/jobs/{id})
    bool is_job() const { return !job.empty(); }
};

void DurableStreams::handle(HttpRequest request, Reply reply) {
    try {
        route(request, reply);
    } catch (const std::exception& e) {
        log().error("streams handler failed method={} target={} error={}",
                    audit_quote(request.method), log_target(request.target), audit_quote(e.what()));
        reply(internal_error());
    }
}

void DurableStreams::off_io_thread(const Reply& reply, std::function<void(const Reply&)> work) {
    auto task = [reply, work = std::move(work)] {
        try {
            work(reply);
        } catch (const std::exception& e) {
            log().error("streams blocking work failed error={}", audit_quote(e.what()));
            reply(internal_error());
        }
    };
    if (!run_blocking_(std::move(task))) {
        reply(
            refuse(503, "overloaded", "the server is busy; retry shortly", {{"Retry-After", "1"}}));
    }
}

void DurableStreams::route(HttpRequest& request, const Reply& reply) {
    auto path = split_target(request.target).path.substr(kBasePath.size());
    auto decoded = percent_decode(path, false);
    if (!decoded || decoded->empty() || decoded->size() > config_.max_name_bytes) {
        return reply(no_stream());
    }
    Target target;
    if (decoded->starts_with(kJobsPrefix)) {
        target.job = decoded->substr(kJobsPrefix.size());
        if (target.job.empty() || target.job.find('/') != std::string::npos) {
            return reply(no_stream());
        }
    } else {
        target.name = std::move(*decoded);
    }
    const std::string& method = request.method;
    if (target.is_job() && method != "GET" && method != "HEAD") {
        // A job's log is written by its workers only.
        return reply(refuse(405, "method_not_allowed",
                            "a job's stream is read-only: its workers write it",
                            {{"Allow", "GET, HEAD"}}));
    }
    if (!target.is_job() && !log_) {
        return reply(
            refuse(501, "not_implemented", "this store keeps no streams besides the jobs' logs"));
    }
    if (method == "GET") return read(request, target, reply);
    if (method == "HEAD") return head(request, target, reply);
    if (method == "PUT") return create(request, target, reply);
    if (method == "POST") return append(request, target, reply);
    if (method == "DELETE") return remove(request, target, reply);
    reply(refuse(405, "method_not_allowed", "use GET, HEAD, PUT, POST or DELETE",
                 {{"Allow", "GET, HEAD, PUT, POST, DELETE"}}));
}

// ---- PUT -------------------------------------------------------------------------

void DurableStreams::create(const HttpRequest& request, const Target& target, const Reply& reply) {
    store::CreateStream op;
    op.name = target.name;
    op.owner = request.owner;
    auto forked_from = request.header(kForkedFrom);
    auto fork_offset = request.header(kForkOffset);
    auto sub_offset = request.header(kForkSubOffset);
    if (!forked_from && (fork_offset || sub_offset)) {
        return reply(
            refuse(400, "invalid_request",
                   "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From"));
    }
    if (forked_from) {
        auto source = fork_source(*forked_from);
        if (!source || source->size() > config_.max_name_bytes) return reply(no_stream());
        if (source->starts_with(kJobsPrefix)) {
            return reply(refuse(400, "invalid_request", "a job's stream cannot be forked"));
        }
        store::ForkFrom fork;
        fork.source = std::move(*source);
        if (fork_offset) {
            auto offset = parse_fork_offset(*fork_offset);
            if (!offset) return reply(refuse(400, "invalid_request", "invalid Stream-Fork-Offset"));
            if (auto* at = std::get_if<OffsetAfter>(&*offset)) fork.offset = at->seq;
            if (std::holds_alternative<OffsetStart>(*offset)) fork.offset = 0;
        }
        if (sub_offset) {
            auto count = parse_header_number(*sub_offset, kMaxSafeInteger, true);
            if (!count) {
                return reply(refuse(400, "invalid_request", "invalid Stream-Fork-Sub-Offset"));
            }
            fork.sub_offset = *count;
        }
        op.fork = std::move(fork);
    }
    // A fork without a usable Content-Type takes its source's.
    auto content_type = media_type(request.header("Content-Type"));
    if (content_type || !op.fork)
        op.content_type = content_type.value_or(std::string(kDefaultType));
    auto ttl = request.header(kTtl);
    auto expires = request.header(kExpiresAt);
    if (ttl && expires) {
        return reply(
            refuse(400, "invalid_request", "Stream-TTL and Stream-Expires-At exclude each other"));
    }
    if (ttl) {
        auto seconds = parse_header_number(*ttl, kMaxTtlSeconds, true);
        if (!seconds) return reply(refuse(400, "invalid_request", "invalid Stream-TTL"));
        op.ttl_seconds = static_cast<std::int64_t>(*seconds);
    }
    if (expires) {
        auto at = parse_timestamp(*expires);
        if (!at) return reply(refuse(400, "invalid_request", "invalid Stream-Expires-At"));
        op.expires_at = std::string(*expires);
        op.expires_at_ms = *at;
    }
    op.closed = request.header(kClosed) == std::optional<std::string_view>("true");
    op.now_ms = clock_.unix_ms();

    // Absolute, as the protocol's clients resolve it (behind a TLS proxy,
    // X-Forwarded-Proto names the scheme).
    std::string location = std::string(request.header("X-Forwarded-Proto").value_or("http")) +
                           "://" + std::string(request.header("Host").value_or("localhost")) +
                           std::string(split_target(request.target).path);
    off_io_thread(reply, [this, op = std::move(op), body = request.body,
                          location](const Reply& reply) mutable {
        // The body's messages in the stream's type: an inheriting fork's is
        // its source's (the store checks the source again as it forks).
        std::string type = op.content_type;
        if (type.empty() && !body.empty()) {
            auto source = log_->get(op.fork->source, op.owner, op.now_ms);
            if (source) type = source->content_type;
        }
        auto messages = body_messages(type, body, true);
        if (auto* refused = std::get_if<HttpResponse>(&messages)) {
            return reply(std::move(*refused));
        }
        op.messages = std::get<std::vector<std::string>>(std::move(messages));
        // Expired streams are invisible at once; creating a stream also
        // deletes them, so their rows do not outlive them for long.
        stats_->expired.fetch_add(log_->expire(op.now_ms), std::memory_order_relaxed);
        const bool fork = op.fork.has_value();
        auto result = log_->create(std::move(op));
        switch (result.status) {
            case store::StreamWrite::conflict:
                return reply(refuse(409, "conflict",
                                    fork ? "the name is taken, or the source's content type differs"
                                         : "the name is taken by a stream with other settings"));
            case store::StreamWrite::source_missing:
                return reply(refuse(404, "not_found", "no such stream to fork"));
            case store::StreamWrite::source_gone:
                return reply(refuse(409, "conflict", "the stream to fork was deleted"));
            case store::StreamWrite::bad_fork_offset:
                return reply(refuse(400, "invalid_request",
                                    "the fork offset is past the end of the stream to fork"));
            case store::StreamWrite::fork_too_deep:
                return reply(refuse(409, "conflict",
                                    "the stream to fork is a fork " +
                                        std::to_string(domain::kMaxForkDepth) +
                                        " levels deep, the most there may be"));
            default:
                break;
        }
        if (!result.stream) return reply(internal_error());
        const auto& stream = *result.stream;
        Headers headers{{std::string(kNextOffset), format_offset(stream.last_seq)}};
        if (stream.closed) headers.emplace_back(kClosed, "true");
        const bool created = result.status == store::StreamWrite::created;
        if (created) {
            headers.emplace_back("Location", location);
            stats_->created[fork ? 1 : 0].fetch_add(1, std::memory_order_relaxed);
            log().debug("stream created owner={} stream={} fork={}", audit_quote(stream.owner),
                        audit_quote(stream.name), fork);
        }
        reply(answer(created ? 201 : 200, stream.content_type, {}, std::move(headers)));
    });
}

// ---- POST ------------------------------------------------------------------------

void DurableStreams::append(const HttpRequest& request, const Target& target, const Reply& reply) {
    store::AppendToStream op;
    op.name = target.name;
    op.owner = request.owner;
    auto& req = op.request;
    req.close = request.header(kClosed) == std::optional<std::string_view>("true");
    auto id = request.header(kProducerId);
    auto epoch = request.header(kProducerEpoch);
    auto seq = request.header(kProducerSeq);
    if (id || epoch || seq) {
        if (!id || !epoch || !seq) {
            return reply(refuse(400, "invalid_request",
                                "Producer-Id, Producer-Epoch and Producer-Seq go together"));
        }
        if (id->empty()) return reply(refuse(400, "invalid_request", "Producer-Id is empty"));
        auto e = parse_header_number(*epoch, kMaxSafeInteger, false);
        auto s = parse_header_number(*seq, kMaxSafeInteger, false);
        if (!e || !s) {
            return reply(refuse(400, "invalid_request",
                                "Producer-Epoch and Producer-Seq are non-negative integers"));
        }
        req.producer = domain::ProducerClaim{std::string(*id), *e, *s};
    }
    if (auto stream_seq = request.header(kStreamSeq)) req.stream_seq = std::string(*stream_seq);
    req.has_data = !request.body.empty();
    if (!req.has_data && !req.close) {
        return reply(refuse(400, "invalid_request", "an append needs a body"));
    }
    if (req.has_data) {
        auto content_type = request.header("Content-Type");
        if (!content_type || content_type->empty()) {
            return reply(refuse(400, "invalid_request", "an append needs a Content-Type"));
        }
        req.content_type = domain::normalize_content_type(*content_type);
        auto messages = body_messages(*content_type, request.body, false);
        if (auto* refused = std::get_if<HttpResponse>(&messages)) {
            return reply(std::move(*refused));
        }
        op.messages = std::get<std::vector<std::string>>(std::move(messages));
    }
    op.now_ms = clock_.unix_ms();

    off_io_thread(reply, [this, op = std::move(op)](const Reply& reply) mutable {
        const auto producer = op.request.producer;
        const bool has_data = op.request.has_data;
        std::uint64_t bytes = 0;
        for (const auto& message : op.messages)
            bytes += message.size();
        auto result = log_->append(std::move(op));
        if (result.status == store::StreamWrite::gone) return reply(gone());
        if (result.status == store::StreamWrite::not_found || !result.stream) {
            return reply(no_stream());
        }
        const auto& stream = *result.stream;
        const auto& decision = result.decision;
        stats_->count_append(decision.verdict);
        Headers headers{{std::string(kNextOffset), format_offset(stream.last_seq)}};
        auto add_closed = [&] {
            if (stream.closed) headers.emplace_back(kClosed, "true");
        };
        using domain::AppendVerdict;
        switch (decision.verdict) {
            case AppendVerdict::append:
                stats_->appended_bytes.fetch_add(bytes, std::memory_order_relaxed);
                notify(stream.id);
                add_closed();
                if (producer) {
                    headers.emplace_back(kProducerEpoch, std::to_string(producer->epoch));
                    headers.emplace_back(kProducerSeq, std::to_string(producer->seq));
                }
                // A producer's append is answered 200 with what it committed;
                // other appends, and a close without data, 204.
                return reply(answer(producer && has_data ? 200 : 204, {}, {}, std::move(headers)));
            case AppendVerdict::close_again:
                add_closed();
                return reply(answer(204, {}, {}, std::move(headers)));
            case AppendVerdict::duplicate:
                add_closed();
                headers.emplace_back(kProducerEpoch, std::to_string(producer->epoch));
                headers.emplace_back(kProducerSeq, std::to_string(decision.producer_seq));
                return reply(answer(204, {}, {}, std::move(headers)));
            case AppendVerdict::closed:
                add_closed();
                return reply(
                    refuse(409, "stream_closed", "the stream is closed", std::move(headers)));
            case AppendVerdict::content_type_mismatch:
                return reply(
                    refuse(409, "content_type_mismatch",
                           "Content-Type differs from the stream's " + stream.content_type));
            case AppendVerdict::stale_epoch:
                return reply(refuse(
                    403, "stale_producer_epoch", "a newer epoch of this producer took over",
                    {{std::string(kProducerEpoch), std::to_string(decision.current_epoch)}}));
            case AppendVerdict::invalid_epoch_seq:
                return reply(refuse(400, "invalid_request",
                                    "a new producer epoch starts at Producer-Seq 0"));
            case AppendVerdict::sequence_gap:
                return reply(refuse(
                    409, "producer_sequence_gap", "Producer-Seq skips ahead",
                    {{std::string(kProducerExpectedSeq), std::to_string(decision.expected_seq)},
                     {std::string(kProducerReceivedSeq), std::to_string(decision.received_seq)}}));
            case AppendVerdict::stream_seq_conflict:
                return reply(
                    refuse(409, "sequence_conflict", "Stream-Seq is not after the last one taken"));
        }
        reply(internal_error());
    });
}

// ---- DELETE ------------------------------------------------------------------------

void DurableStreams::remove(const HttpRequest& request, const Target& target, const Reply& reply) {
    off_io_thread(reply, [this, name = target.name, owner = request.owner](const Reply& reply) {
        const auto now = clock_.unix_ms();
        auto stream = log_->get(name, owner, now);
        if (!stream) return reply(no_stream());
        switch (log_->remove(name, owner, now)) {
            case store::StreamWrite::removed:
                stats_->deleted.fetch_add(1, std::memory_order_relaxed);
                notify(stream->id);  // its readers learn it is gone
                return reply(answer(204));
            case store::StreamWrite::gone:
                return reply(gone());
            default:
                return reply(no_stream());
        }
    });
}

// ---- HEAD ----------------------------------------------------------------------------

void DurableStreams::head(const HttpRequest& request, const Target& target, const Reply& reply) {
    off_io_thread(reply, [this, target, owner = request.owner](const Reply& reply) {
        Headers headers{{"Cache-Control", "no-store"}};
        if (target.is_job()) {
            auto page = jobs_.read_events(target.job, owner, kNoOffset, 1);
            if (!page) return reply(no_stream());
            headers.emplace_back(kNextOffset, format_offset(page->last_seq));
            if (page->done) headers.emplace_back(kClosed, "true");
            headers.emplace_back("ETag",
                                 etag("jobs/" + target.job, "-1", page->last_seq, page->done));
            return reply(answer(200, std::string(kJsonType), {}, std::move(headers)));
        }
        auto stream = log_->get(target.name, owner, clock_.unix_ms());
        if (!stream) return reply(no_stream());
        if (stream->deleted) return reply(gone());
        headers.emplace_back(kNextOffset, format_offset(stream->last_seq));
        if (stream->closed) headers.emplace_back(kClosed, "true");
        if (stream->ttl_seconds >= 0)
            headers.emplace_back(kTtl, std::to_string(stream->ttl_seconds));
        if (!stream->expires_at.empty()) headers.emplace_back(kExpiresAt, stream->expires_at);
        headers.emplace_back(
            "ETag", etag(std::to_string(stream->id), "-1", stream->last_seq, stream->closed));
        reply(answer(200, stream->content_type, {}, std::move(headers)));
    });
}

// ---- GET -----------------------------------------------------------------------------

struct DurableStreams::ReadRequest {
    Target target;
    std::string owner;
    std::optional<Offset> offset;  // nullopt: none given (the start)
    std::string start = "-1";      // the offset as given, for the ETag
    bool long_poll = false;
    std::optional<std::string> cursor;
    std::optional<std::string> if_none_match;
    bool waited = false;  // a long-poll answering after its wait
};

namespace {

// The query's offset and live mode, or the answer refusing them.
std::variant<std::monostate, HttpResponse> parse_read_query(const HttpRequest& request,
                                                            std::optional<Offset>& offset,
                                                            std::string& start, std::string& live,
                                                            std::optional<std::string>& cursor) {
    auto query = QueryParams::parse(split_target(request.target).query);
    if (!query) return refuse(400, "invalid_request", "malformed query string");
    std::size_t offsets = 0;
    for (const auto& [name, value] : query->all()) {
        if (name == "offset") ++offsets;
    }
    if (offsets > 1) return refuse(400, "invalid_request", "one offset per request");
    if (auto value = query->get("offset")) {
        offset = parse_offset(*value);
        if (!offset) return refuse(400, "invalid_request", "invalid offset");
        start = std::string(*value);
    }
    if (auto value = query->get("live")) live = std::string(*value);
    if (auto value = query->get("cursor")) cursor = std::string(*value);
    if ((live == "long-poll" || live == "sse") && !offset) {
        return refuse(400, "invalid_request", live + " needs an offset");
    }
    if (!live.empty() && live != "long-poll" && live != "sse") {
        return refuse(400, "invalid_request", "live is long-poll or sse");
    }
    return std::monostate{};
}

}  // namespace

void DurableStreams::read(const HttpRequest& request, const Target& target, const Reply& reply) {
    ReadRequest query;
    std::string live;
    auto parsed = parse_read_query(request, query.offset, query.start, live, query.cursor);
    if (auto* refused = std::get_if<HttpResponse>(&parsed)) return reply(std::move(*refused));
    if (live == "sse") {
        // Taken at admission when the server streams; this server does not.
        return reply(refuse(400, "invalid_request", "live=sse is not served here"));
    }
    query.target = target;
    query.owner = request.owner;
    query.long_poll = live == "long-poll";
    if (auto match = request.header("If-None-Match")) query.if_none_match = std::string(*match);
    if (!query.long_poll) {
        return off_io_thread(reply, [this, query = std::move(query)](const Reply& reply) mutable {
            if (query.target.is_job()) return read_job(std::move(query), reply);
            read_stream(std::move(query), reply);
        });
    }
    // A long-poll holds its connection like a stream does: a place under the
    // same limits as GET /v1/jobs/{id}/events?wait=, given back before its
    // answer is seen.
    std::shared_ptr<void> slot;
    if (security_) {
        auto acquired = security_->acquire_connection(request.owner, request.remote, "long_poll");
        if (!acquired.slot) {
            auto refused = too_many_connections(acquired.limit);
            add_common_headers(refused);
            return reply(std::move(refused));
        }
        slot = std::move(acquired.slot);
    }
    auto held = std::make_shared<std::pair<std::shared_ptr<void>, std::shared_ptr<void>>>(
        std::move(slot), live_reader(LiveMode::long_poll));
    Reply release_then_reply = [held, reply](HttpResponse response) {
        *held = {};
        reply(std::move(response));
    };
    off_io_thread(release_then_reply, [this, query = std::move(query)](const Reply& reply) mutable {
        if (query.target.is_job()) return read_job(std::move(query), reply);
        read_stream(std::move(query), reply);
    });
}

void DurableStreams::read_stream(ReadRequest read, const Reply& reply) {
    const auto now = clock_.unix_ms();
    auto stream = log_->get(read.target.name, read.owner, now);
    if (!stream) return reply(no_stream());
    if (stream->deleted) return reply(gone());
    if (stream->ttl_seconds >= 0) log_->touch(stream->id, now);  // a read keeps it alive
    const bool json = is_json(stream->content_type);
    Headers headers;
    std::uint64_t after = 0;
    if (read.offset && std::holds_alternative<OffsetNow>(*read.offset)) {
        after = stream->last_seq;
        if (!read.long_poll) {
            headers = {{std::string(kNextOffset), format_offset(after)},
                       {std::string(kUpToDate), "true"},
                       {"Cache-Control", "no-store"}};
            if (stream->closed) headers.emplace_back(kClosed, "true");
            return reply(answer(200, stream->content_type, json ? "[]" : "", std::move(headers)));
        }
    } else if (read.offset) {
        if (auto* at = std::get_if<OffsetAfter>(&*read.offset)) after = at->seq;
    }
    after = std::min(after, stream->last_seq);
    auto messages = log_->read(stream->id, after, config_.max_read_bytes);
    if (read.long_poll && messages.empty()) {
        if (!stream->closed && !read.waited) {
            // Caught up: wait for the next change, then read again.
            auto shared = std::make_shared<ReadRequest>(std::move(read));
            shared->waited = true;
            shared->offset = OffsetAfter{after};
            auto wait = wait_stream(stream->id, after, [this, shared, reply](bool) {
                if (!run_blocking_([this, shared, reply] {
                        try {
                            read_stream(*shared, reply);
                        } catch (const std::exception& e) {
                            log().error("stream long-poll read failed error={}",
                                        audit_quote(e.what()));
                            reply(internal_error());
                        }
                    })) {
                    reply(refuse(503, "overloaded", "the server is busy; retry shortly"));
                }
            });
            // An append between the read and the wait's start wakes it now.
            auto again = log_->get(shared->target.name, shared->owner, clock_.unix_ms());
            if (!again || again->id != stream->id || again->deleted || again->last_seq > after ||
                again->closed) {
                wait->fire(false);
            }
            return;
        }
        headers = {{std::string(kNextOffset), format_offset(after)},
                   {std::string(kUpToDate), "true"},
                   {std::string(kCursor), cursor(read.cursor)}};
        if (stream->closed) headers.emplace_back(kClosed, "true");
        return reply(answer(204, {}, {}, std::move(headers)));
    }
    const std::uint64_t reached = messages.empty() ? after : messages.back().seq;
    const bool up_to_date = reached >= stream->last_seq;
    const bool closed = stream->closed && up_to_date;
    headers = {{std::string(kNextOffset), format_offset(reached)}};
    if (up_to_date) headers.emplace_back(kUpToDate, "true");
    if (closed) headers.emplace_back(kClosed, "true");
    if (read.long_poll) headers.emplace_back(kCursor, cursor(read.cursor));
    const std::string tag = etag(std::to_string(stream->id), read.start, reached, closed);
    if (read.if_none_match == tag) return reply(answer(304, {}, {}, {{"ETag", tag}}));
    headers.emplace_back("ETag", tag);
    reply(answer(200, stream->content_type, format_body(json, messages), std::move(headers)));
}

void DurableStreams::read_job(ReadRequest read, const Reply& reply) {
    std::uint64_t after = 0;
    const bool now = read.offset && std::holds_alternative<OffsetNow>(*read.offset);
    if (read.offset) {
        if (auto* at = std::get_if<OffsetAfter>(&*read.offset)) after = at->seq;
    }
    // The REST API's read of a job's log: the job must be the caller's.
    auto page = jobs_.read_events(read.target.job, read.owner, now ? kNoOffset : after,
                                  config_.max_job_events);
    if (!page) return reply(no_stream());
    if (now || after > page->last_seq) after = page->last_seq;
    Headers headers;
    if (now && !read.long_poll) {
        headers = {{std::string(kNextOffset), format_offset(after)},
                   {std::string(kUpToDate), "true"},
                   {"Cache-Control", "no-store"}};
        if (page->done) headers.emplace_back(kClosed, "true");
        return reply(answer(200, std::string(kJsonType), "[]", std::move(headers)));
    }
    if (read.long_poll && page->count == 0) {
        if (!page->done && !read.waited) {
            auto shared = std::make_shared<ReadRequest>(std::move(read));
            shared->waited = true;
            shared->offset = OffsetAfter{after};
            auto wait = wait_job(shared->target.job, after, [this, shared, reply](bool) {
                if (!run_blocking_([this, shared, reply] {
                        try {
                            read_job(*shared, reply);
                        } catch (const std::exception& e) {
                            log().error("job stream long-poll read failed error={}",
                                        audit_quote(e.what()));
                            reply(internal_error());
                        }
                    })) {
                    reply(refuse(503, "overloaded", "the server is busy; retry shortly"));
                }
            });
            // A commit between the read and the subscription wakes it now.
            if (job_moved(shared->target.job, shared->owner, after)) wait->fire(false);
            return;
        }
        headers = {{std::string(kNextOffset), format_offset(after)},
                   {std::string(kUpToDate), "true"},
                   {std::string(kCursor), cursor(read.cursor)}};
        if (page->done) headers.emplace_back(kClosed, "true");
        return reply(answer(204, {}, {}, std::move(headers)));
    }
    const std::uint64_t reached = page->count == 0 ? after : page->reached;
    const bool up_to_date = reached >= page->last_seq;
    headers = {{std::string(kNextOffset), format_offset(reached)}};
    if (up_to_date) headers.emplace_back(kUpToDate, "true");
    if (page->done) headers.emplace_back(kClosed, "true");
    if (read.long_poll) headers.emplace_back(kCursor, cursor(read.cursor));
    const std::string tag = etag("jobs/" + read.target.job, read.start, reached, page->done);
    if (read.if_none_match == tag) return reply(answer(304, {}, {}, {{"ETag", tag}}));
    headers.emplace_back("ETag", tag);
    reply(answer(200, std::string(kJsonType), job_body(page->events), std::move(headers)));
}

// ---- SSE -------------------------------------------------------------------------------

std::variant<HttpResponse, SsePlan> DurableStreams::plan_sse(const HttpRequest& request) {
    std::optional<Offset> offset;
    std::string start, live;
    SsePlan plan;
    auto parsed = parse_read_query(request, offset, start, live, plan.cursor);
    if (auto* refused = std::get_if<HttpResponse>(&parsed)) return std::move(*refused);
    plan.owner = request.owner;
    auto path = split_target(request.target).path.substr(kBasePath.size());
    auto decoded = percent_decode(path, false);
    if (!decoded || decoded->empty()) return no_stream();
    const bool now = std::holds_alternative<OffsetNow>(*offset);
    std::uint64_t after = 0;
    if (auto* at = std::get_if<OffsetAfter>(&*offset)) after = at->seq;
    if (decoded->starts_with(kJobsPrefix)) {
        plan.job = decoded->substr(kJobsPrefix.size());
        auto page = jobs_.read_events(plan.job, plan.owner, kNoOffset, 1);
        if (!page) return no_stream();
        plan.last_seq = page->last_seq;
        plan.after = now ? page->last_seq : std::min(after, page->last_seq);
        plan.closed_at_tail = page->done && plan.after >= page->last_seq;
        plan.json = true;
        return plan;
    }
    if (!log_) return no_stream();
    const auto now_ms = clock_.unix_ms();
    auto stream = log_->get(*decoded, plan.owner, now_ms);
    if (!stream) return no_stream();
    if (stream->deleted) return gone();
    if (stream->ttl_seconds >= 0) log_->touch(stream->id, now_ms);
    plan.stream = *stream;
    plan.last_seq = stream->last_seq;
    plan.after = now ? stream->last_seq : std::min(after, stream->last_seq);
    const auto type = domain::normalize_content_type(stream->content_type);
    plan.json = type == kJsonType;
    plan.base64 = sse_needs_base64(type);
    return plan;
}

DurableStreams::SseBatch DurableStreams::read_sse(const SsePlan& plan, std::uint64_t after) {
    SseBatch batch;
    batch.reached = after;
    batch.stream = log_->get(plan.stream.name, plan.owner, clock_.unix_ms());
    if (!batch.stream || batch.stream->id != plan.stream.id || batch.stream->deleted) {
        batch.stream.reset();
        return batch;
    }
    auto messages = log_->read(plan.stream.id, after, config_.max_read_bytes);
    for (const auto& message : messages) {
        // Each data event is followed by its control event: a reader that
        // stops after any event knows exactly where it is.
        std::string payload;
        if (plan.base64) {
            payload = base64_encode(message.data);
        } else if (plan.json) {
            payload = "[" + message.data + "]";
        } else {
            payload = message.data;
        }
        append_sse_event(batch.frames, "data", payload);
        batch.reached = message.seq;
        const bool at_tail = batch.reached >= batch.stream->last_seq;
        batch.frames +=
            control_event(batch.reached, at_tail, at_tail && batch.stream->closed, plan.cursor);
    }
    return batch;
}

std::string DurableStreams::control_event(std::uint64_t reached, bool up_to_date, bool closed,
                                          std::optional<std::string_view> client_cursor) {
    std::string body = R"({"streamNextOffset":")" + format_offset(reached) + "\"";
    if (closed) {
        body += R"(,"streamClosed":true)";
    } else {
        std::optional<std::string> theirs;
        if (client_cursor) theirs = std::string(*client_cursor);
        body += R"(,"streamCursor":")" + cursor(theirs) + "\"";
        if (up_to_date) body += R"(,"upToDate":true)";
    }
    body += '}';
    std::string out;
    append_sse_event(out, "control", body);
    return out;
}

std::string DurableStreams::job_sse_frames(const std::vector<Event>& events, std::size_t skip) {
    std::string out;
    for (std::size_t i = skip; i < events.size(); ++i) {
        std::string payload = "[";
        json::append_event_object(payload, events[i]);
        payload += ']';
        append_sse_event(out, "data", payload);
    }
    return out;
}

}  // namespace jobcast::web::streams
