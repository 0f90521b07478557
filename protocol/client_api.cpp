#include "protocol/client_api.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "protocol/event_data.hpp"
#include "protocol/json.hpp"

namespace jobcast::client_api {

namespace {

constexpr std::size_t kMaxJobId = 64;

OpError bad(std::string message, std::string job = {}) {
    return OpError{"bad_request", std::move(message), std::move(job)};
}

// A required job id: a non-empty string of printable ASCII, at most 64 bytes.
std::variant<std::string, OpError> job_field(const boost::json::object& op) {
    auto* v = op.if_contains("job");
    if (!v) return bad("'job' is required");
    if (!v->is_string()) return bad("'job' must be a string");
    std::string job(v->as_string());
    if (job.empty() || job.size() > kMaxJobId) return bad("'job' must be 1 to 64 characters");
    for (unsigned char c : job) {
        if (c <= 0x20 || c >= 0x7f) return bad("'job' has characters a job id never has");
    }
    return job;
}

}  // namespace

std::variant<ClientOp, OpError> parse_client_op(std::string_view text) {
    boost::system::error_code ec;
    boost::json::parse_options options;
    options.max_depth = 16;
    boost::json::value value = boost::json::parse(text, ec, {}, options);
    if (ec) return OpError{"bad_json", "not valid JSON: " + ec.message(), {}};
    if (!value.is_object()) return OpError{"bad_json", "an op must be a JSON object", {}};
    const auto& op = value.as_object();
    auto* name = op.if_contains("op");
    if (!name || !name->is_string()) return bad("'op' is required and must be a string");
    std::string_view kind = name->as_string();

    if (kind == "ping") return ClientOp{PingOp{}};
    if (kind == "auth") {
        auto* token = op.if_contains("token");
        if (!token || !token->is_string() || token->as_string().empty()) {
            return bad("'token' is required and must be a string");
        }
        return ClientOp{AuthOp{std::string(token->as_string())}};
    }
    if (kind == "subscribe" || kind == "unsubscribe") {
        if (auto* feed = op.if_contains("feed")) {
            if (!feed->is_string() || feed->as_string() != "jobs") {
                return bad("'feed' must be \"jobs\"");
            }
            if (kind == "subscribe") return ClientOp{SubscribeFeedOp{"jobs"}};
            return ClientOp{UnsubscribeFeedOp{"jobs"}};
        }
    }
    if (kind == "subscribe" || kind == "unsubscribe" || kind == "cancel") {
        auto job = job_field(op);
        if (auto* err = std::get_if<OpError>(&job)) return *err;
        auto id = std::get<std::string>(std::move(job));
        if (kind == "unsubscribe") return ClientOp{UnsubscribeOp{std::move(id)}};
        if (kind == "cancel") return ClientOp{CancelOp{std::move(id)}};
        std::uint64_t after = 0;
        if (auto* a = op.if_contains("after"); a && !a->is_null()) {
            if (a->is_uint64()) {
                after = a->as_uint64();
            } else if (a->is_int64() && a->as_int64() >= 0) {
                after = static_cast<std::uint64_t>(a->as_int64());
            } else {
                return bad("'after' must be a non-negative integer", id);
            }
        }
        return ClientOp{SubscribeOp{std::move(id), after}};
    }
    return OpError{"unknown_op", "unknown op '" + std::string(kind) + "'", {}};
}

std::string error_frame(std::string_view code, std::string_view message, std::string_view job) {
    std::string out = R"({"type":"error","code":)";
    json::append_quoted(out, code);
    out.append(R"(,"message":)");
    json::append_quoted(out, message);
    if (!job.empty()) {
        out.append(R"(,"job":)");
        json::append_quoted(out, job);
    }
    out.push_back('}');
    return out;
}

std::string subscribed_frame(std::string_view job, std::uint64_t last_seq) {
    std::string out = R"({"type":"subscribed","job":)";
    json::append_quoted(out, job);
    out.append(R"(,"last_seq":)").append(std::to_string(last_seq)).push_back('}');
    return out;
}

std::string feed_subscribed_frame() {
    return R"({"type":"subscribed","feed":"jobs"})";
}

std::string pong_frame() {
    return R"({"type":"pong"})";
}

std::string authenticated_frame(std::optional<std::int64_t> expires_at) {
    if (!expires_at) return R"({"type":"authenticated"})";
    return R"({"type":"authenticated","expires_at":)" + std::to_string(*expires_at) + "}";
}

std::string event_frame(std::string_view job, const Event& event) {
    std::string out;
    out.reserve(96 + job.size() + event.data.size());
    out += "{\"type\":\"event\",\"job\":";
    json::append_quoted(out, job);
    out.push_back(',');
    json::append_event_members(out, event);
    out.push_back('}');
    return out;
}

std::string websocket_frame(const std::string& job, const std::vector<Event>& events,
                            std::size_t skip) {
    return websocket_frame(job, std::vector<EventSlice>{{&events, skip}});
}

std::string websocket_frame(const std::string& job, const std::vector<EventSlice>& slices) {
    std::size_t reserve = 64 + job.size();
    for (const auto& slice : slices) {
        for (std::size_t i = slice.skip; i < slice.events->size(); ++i)
            reserve += (*slice.events)[i].data.size() + 64;
    }
    PageFramer framer(PageFramer::Format::websocket, job);
    framer.reserve(reserve);
    for (const auto& slice : slices) {
        for (std::size_t i = slice.skip; i < slice.events->size(); ++i)
            framer.add(view_of((*slice.events)[i]));
    }
    return framer.take();
}

std::string sse_text(const std::string& job, const std::vector<Event>& events, std::size_t skip) {
    PageFramer framer(PageFramer::Format::sse, job);
    for (std::size_t i = skip; i < events.size(); ++i)
        framer.add(view_of(events[i]));
    return framer.take();
}

namespace {
constexpr std::string_view kEventsFrameHead = R"({"type":"events","job":)";
constexpr std::string_view kEventFrameHead = R"({"type":"event","job":)";
}  // namespace

PageFramer::PageFramer(Format format, std::string_view job, std::string buffer)
    : format_(format), job_(job), out_(std::move(buffer)) {
    out_.clear();
}

void PageFramer::add(const EventView& event) {
    if (format_ == Format::objects) {
        if (events_ != 0) out_.push_back(',');
        json::append_event_object(out_, event);
    } else if (format_ == Format::sse) {
        out_.append("id: ");
        json::detail::append_uint(out_, event.seq);
        out_.append("\nevent: ").append(to_string(event.kind));
        out_.append("\ndata: ");
        json::append_event_object(out_, event);
        out_.append("\n\n");
    } else {
        if (events_ == 0) {
            out_.append(kEventsFrameHead);
            json::append_quoted(out_, job_);
            out_.append(R"(,"events":[)");
            first_ = out_.size();
        } else {
            out_.push_back(',');
        }
        json::append_event_object(out_, event);
    }
    ++events_;
}

std::string PageFramer::take() {
    std::string out;
    if (format_ == Format::websocket && events_ == 1) {
        // One event is an `event` frame: its members (past the object's
        // brace) follow the job.
        out.reserve(out_.size());
        out.append(kEventFrameHead);
        json::append_quoted(out, job_);
        out.push_back(',');
        out.append(std::string_view(out_).substr(first_ + 1));
        out_.clear();
    } else {
        if (format_ == Format::websocket && events_ > 1) out_.append("]}");
        out.swap(out_);
    }
    events_ = 0;
    return out;
}

std::string PageFramer::release_buffer() {
    std::string buffer = std::move(out_);
    out_ = std::string();
    buffer.clear();
    events_ = 0;
    return buffer;
}

std::string sse_comment(std::string_view text) {
    std::string out = ": ";
    out.append(text).append("\n\n");
    return out;
}

std::string sse_retry(std::uint32_t milliseconds) {
    return "retry: " + std::to_string(milliseconds) + "\n\n";
}

UiMessageStream::UiMessageStream(std::string job, std::uint64_t after, int attempt)
    : job_(std::move(job)), seq_(after), attempt_(attempt) {}

std::string UiMessageStream::format(const std::vector<Event>& events, std::size_t skip) {
    std::string out;
    for (std::size_t i = skip; i < events.size() && !restating_; ++i) {
        const Event& event = events[i];
        if (event.seq <= seq_) continue;
        if (event.kind == EventKind::state) {
            const EventData data = read_event_data(event);
            if (data.state == JobState::running && data.resume_seq != 0) {
                restating_ = event;
                break;
            }
        }
        append_event(out, event);
        seq_ = event.seq;
    }
    return out;
}

std::string UiMessageStream::restate(std::string_view text) {
    std::string out;
    if (!restating_) return out;
    append_event(out, *restating_, text);
    seq_ = restating_->seq;
    restating_.reset();
    return out;
}

namespace {

// {"type":"data-<name>","data":<event data>,"transient":true}
std::string data_chunk(std::string_view name, const Event& event) {
    std::string chunk = R"({"type":"data-)";
    chunk.append(name).append(R"(","data":)");
    chunk.append(event.data.empty() ? "{}" : event.data);
    chunk.append(R"(,"transient":true})");
    return chunk;
}

std::string text_chunk(std::string_view type, std::string_view id) {
    std::string chunk = R"({"type":")";
    chunk.append(type).append(R"(","id":)");
    json::append_quoted(chunk, id);
    chunk.push_back('}');
    return chunk;
}

void append_sse_data(std::string& out, std::uint64_t id, std::string_view data) {
    out.append("id: ").append(std::to_string(id)).append("\ndata: ");
    out.append(data).append("\n\n");
}

}  // namespace

void UiMessageStream::close_part() {
    if (open_part_.empty()) return;
    chunks_.push_back(text_chunk("text-end", open_part_));
    open_part_.clear();
}

void UiMessageStream::append_delta(std::string_view text) {
    if (open_part_.empty()) {
        open_part_ = job_ + "-" + std::to_string(attempt_);
        chunks_.push_back(text_chunk("text-start", open_part_));
    }
    std::string delta = R"({"type":"text-delta","id":)";
    json::append_quoted(delta, open_part_);
    delta.append(R"(,"delta":)");
    json::append_quoted(delta, text);
    delta.push_back('}');
    chunks_.push_back(std::move(delta));
}

void UiMessageStream::append_event(std::string& out, const Event& event,
                                   std::string_view restated) {
    chunks_.clear();
    if (event.seq == 1) {
        std::string start = R"({"type":"start","messageId":)";
        json::append_quoted(start, job_);
        start.push_back('}');
        chunks_.push_back(std::move(start));
    }
    bool terminal = false;
    switch (event.kind) {
        case EventKind::token:
            append_delta(read_event_data(event).text);
            break;
        case EventKind::progress:
            chunks_.push_back(data_chunk("progress", event));
            break;
        case EventKind::log:
            chunks_.push_back(data_chunk("log", event));
            break;
        case EventKind::error:
            chunks_.push_back(data_chunk("error", event));
            break;
        case EventKind::result:
            close_part();
            chunks_.push_back(data_chunk("result", event));
            break;
        case EventKind::state: {
            EventData data = read_event_data(event);
            attempt_ = data.attempt;
            // A requeued attempt's part ends here; a finished job's too.
            if (data.state == JobState::queued || (data.state && is_terminal(*data.state))) {
                close_part();
            }
            chunks_.push_back(data_chunk("state", event));
            // An attempt resuming from a checkpoint: its part restates the
            // job's text up to there.
            if (data.state == JobState::running && !restated.empty()) {
                close_part();
                append_delta(restated);
            }
            if (data.state == JobState::succeeded) {
                chunks_.emplace_back(R"({"type":"finish","finishReason":"stop"})");
            } else if (data.state == JobState::failed) {
                std::string error = R"({"type":"error","errorText":)";
                json::append_quoted(error, data.reason.empty() ? "failed" : data.reason);
                error.push_back('}');
                chunks_.push_back(std::move(error));
                chunks_.emplace_back(R"({"type":"finish","finishReason":"error"})");
            } else if (data.state == JobState::cancelled) {
                std::string abort = R"({"type":"abort","reason":)";
                json::append_quoted(abort, data.reason.empty() ? "cancelled" : data.reason);
                abort.push_back('}');
                chunks_.push_back(std::move(abort));
            }
            terminal = data.state && is_terminal(*data.state);
            break;
        }
    }
    for (std::size_t i = 0; i < chunks_.size(); ++i) {
        append_sse_data(out, i + 1 == chunks_.size() ? event.seq : event.seq - 1, chunks_[i]);
    }
    if (terminal) append_sse_data(out, event.seq, "[DONE]");
}

std::string events_page(std::string_view event_objects, std::uint64_t last_seq, bool done) {
    std::string body;
    body.reserve(event_objects.size() + 64);
    body += R"({"events":[)";
    body += event_objects;
    body += R"(],"last_seq":)";
    body += std::to_string(last_seq);
    body += R"(,"done":)";
    body += done ? "true" : "false";
    body += '}';
    return body;
}

}  // namespace jobcast::client_api
