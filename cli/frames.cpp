#include "cli/frames.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace jobcast::cli {
namespace {

namespace json = boost::json;

std::string string_field(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    if (value == nullptr || !value->is_string()) return {};
    return std::string(value->get_string());
}

std::optional<std::uint64_t> seq_field(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    if (value == nullptr) return std::nullopt;
    if (value->is_uint64()) return value->get_uint64();
    if (value->is_int64() && value->get_int64() >= 0) {
        return static_cast<std::uint64_t>(value->get_int64());
    }
    return std::nullopt;
}

// {seq, kind, ts, data} as in an "event" frame or an element of "events".
std::optional<StreamEvent> parse_event(const json::object& object) {
    StreamEvent event;
    const auto seq = seq_field(object, "seq");
    if (!seq || *seq == 0) return std::nullopt;
    event.seq = *seq;
    event.kind = string_field(object, "kind");
    if (event.kind.empty()) return std::nullopt;
    if (const auto* ts = object.if_contains("ts")) {
        if (ts->is_int64()) event.ts = ts->get_int64();
        if (ts->is_uint64()) event.ts = static_cast<std::int64_t>(ts->get_uint64());
    }
    if (const auto* data = object.if_contains("data"); data != nullptr && data->is_object()) {
        event.data = data->get_object();
    }
    return event;
}

}  // namespace

ServerFrame parse_server_frame(std::string_view text) {
    boost::system::error_code ec;
    const auto value = json::parse(text, ec);
    if (ec) return MalformedFrame{"not JSON: " + ec.message()};
    if (!value.is_object()) return MalformedFrame{"not a JSON object"};
    const auto& frame = value.get_object();
    const auto type = string_field(frame, "type");

    if (type == "subscribed") {
        const auto last_seq = seq_field(frame, "last_seq");
        auto job = string_field(frame, "job");
        if (job.empty()) return IgnoredFrame{type};  // {"type":"subscribed","feed":"jobs"}
        if (!last_seq) return MalformedFrame{"subscribed frame without last_seq"};
        return SubscribedFrame{std::move(job), *last_seq};
    }
    if (type == "event") {
        auto event = parse_event(frame);
        auto job = string_field(frame, "job");
        if (!event || job.empty()) return MalformedFrame{"event frame without job, seq or kind"};
        return EventsFrame{std::move(job), {std::move(*event)}};
    }
    if (type == "events") {
        EventsFrame out{string_field(frame, "job"), {}};
        const auto* events = frame.if_contains("events");
        if (out.job.empty() || events == nullptr || !events->is_array()) {
            return MalformedFrame{"events frame without job or events"};
        }
        for (const auto& item : events->get_array()) {
            auto event = item.is_object() ? parse_event(item.get_object()) : std::nullopt;
            if (!event) return MalformedFrame{"events frame with an event without seq or kind"};
            out.events.push_back(std::move(*event));
        }
        return out;
    }
    if (type == "error") {
        return ErrorFrame{string_field(frame, "code"), string_field(frame, "message"),
                          string_field(frame, "job")};
    }
    if (type.empty()) return MalformedFrame{"frame without a type"};
    return IgnoredFrame{type};
}

std::string subscribe_op(std::string_view job, std::uint64_t after) {
    json::object op;
    op["op"] = "subscribe";
    op["job"] = job;
    op["after"] = after;
    return json::serialize(op);
}

std::string event_json_line(std::string_view job, const StreamEvent& event) {
    json::object line;
    line["job"] = job;
    line["seq"] = event.seq;
    line["kind"] = event.kind;
    line["ts"] = event.ts;
    line["data"] = event.data;
    return json::serialize(line);
}

std::optional<Outcome> terminal_outcome(const StreamEvent& event) {
    if (event.kind != "state") return std::nullopt;
    const auto state = string_field(event.data, "state");
    if (state == "succeeded") return Outcome::succeeded;
    if (state == "failed") return Outcome::failed;
    if (state == "cancelled") return Outcome::cancelled;
    return std::nullopt;
}

ExitCode exit_code(Outcome outcome) {
    switch (outcome) {
        case Outcome::succeeded:
            return ExitCode::succeeded;
        case Outcome::failed:
            return ExitCode::failed;
        case Outcome::cancelled:
            return ExitCode::cancelled;
    }
    return ExitCode::failed;
}

}  // namespace jobcast::cli
