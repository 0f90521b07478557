#include "protocol/json.hpp"

#include <array>
#include <cmath>

#include "protocol/assign_check.hpp"
#include "protocol/json_document.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/limits.hpp"

namespace jobcast::json {

namespace {

using detail::JsonDocument;
using detail::Token;
using detail::TokenKind;

// Stored payloads come from our own decoder (data nested at most
// DecodeLimits::max_depth) or from parse_job_request; this only bounds the work.
constexpr std::size_t kStoredMaxDepth = 512;
// A request body: the object itself plus params nested up to 63 levels. The
// params' own limit (proto::kMaxDataDepth, what workers decode) is stricter
// and checked with proto::params_problem, which says so in its message.
constexpr std::size_t kRequestMaxDepth = 64;
constexpr std::size_t kMaxTypeLength = 128;
constexpr std::int64_t kMinPriority = -1000;
constexpr std::int64_t kMaxPriority = 1000;
constexpr std::int64_t kMinAttempts = 1;
constexpr std::int64_t kMaxAttempts = 100;

JsonDocument& thread_document() {
    thread_local JsonDocument doc;
    return doc;
}

// Appends `text` re-serialized compactly when it is valid JSON, null otherwise:
// a damaged stored payload must not make the whole job JSON unparseable.
void append_embedded(std::string& out, std::string_view text) {
    JsonDocument& doc = thread_document();
    if (text.empty() || !doc.parse(text, kStoredMaxDepth)) {
        out += "null";
    } else {
        doc.write(out);
    }
    doc.trim();
}

void append_key(std::string& out, std::string_view key) {
    // Keys here are our own ASCII names: no escaping needed.
    out.push_back('"');
    out.append(key);
    out += "\":";
}

void append_text_or_null(std::string& out, std::string_view text) {
    if (text.empty()) {
        out += "null";
    } else {
        append_quoted(out, text);
    }
}

void append_time_or_null(std::string& out, UnixMs time) {
    if (time == 0) {
        out += "null";
    } else {
        detail::append_int(out, time);
    }
}

bool valid_type_name(std::string_view type) {
    for (char c : type) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

// The integer value of `token`, if it is an integer within [min, max].
bool integer_in_range(const Token& token, std::int64_t min, std::int64_t max, std::int64_t& out) {
    if (token.kind == TokenKind::int64) {
        out = token.int64;
    } else if (token.kind == TokenKind::uint64) {
        return false;  // above INT64_MAX: out of any range we accept
    } else {
        return false;
    }
    return out >= min && out <= max;
}

bool is_integer(const Token& token) {
    return token.kind == TokenKind::int64 || token.kind == TokenKind::uint64;
}

RequestError field_error(std::string_view field, std::string_view problem) {
    std::string message = "field '";
    message.append(field).append("' ").append(problem);
    return RequestError{std::move(message)};
}

// An optional integer field (token index `at`, 0 when absent) within [min, max]:
// stored in `out` when present, else the error that names it.
std::optional<RequestError> bounded_int(const std::vector<Token>& tokens, std::size_t at,
                                        std::string_view field, std::int64_t min, std::int64_t max,
                                        int& out) {
    if (at == 0) return std::nullopt;
    const Token& token = tokens[at];
    if (!is_integer(token)) return field_error(field, "must be an integer");
    std::int64_t number = 0;
    if (!integer_in_range(token, min, max, number)) {
        return field_error(
            field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    out = static_cast<int>(number);
    return std::nullopt;
}

}  // namespace

std::string job(const Job& job) {
    std::string out;
    out.reserve(384 + job.params.size() + job.result.size() + job.error.size());
    out.push_back('{');
    // Starts the next member: the comma before all but the first, then `"name":`.
    auto key = [&out, first = true](std::string_view name) mutable -> std::string& {
        if (!first) out.push_back(',');
        first = false;
        append_key(out, name);
        return out;
    };
    append_quoted(key("id"), job.id);
    append_quoted(key("type"), job.type);
    append_quoted(key("owner"), job.owner);
    append_embedded(key("params"), job.params);
    detail::append_int(key("priority"), job.priority);
    append_quoted(key("state"), to_string(job.state));
    detail::append_int(key("attempt"), job.attempt);
    detail::append_int(key("max_attempts"), job.max_attempts);
    append_text_or_null(key("worker"), job.worker);
    if (!detail::append_double(key("progress"), job.progress)) out += "null";
    detail::append_uint(key("last_seq"), job.last_seq);
    append_embedded(key("result"), job.result);
    append_text_or_null(key("error"), job.error);
    append_time_or_null(key("created_at"), job.created_at);
    append_time_or_null(key("started_at"), job.started_at);
    append_time_or_null(key("finished_at"), job.finished_at);
    key("cancel_requested") += job.cancel_requested ? "true" : "false";
    key("has_checkpoint") += job.checkpoint.empty() ? "false" : "true";
    out.push_back('}');
    return out;
}

// The fan-out path runs these per event per subscriber batch: plain appends,
// and `data` (validated JSON text from the codec or the broker) goes in verbatim.
void append_event_members(std::string& out, const EventView& event) {
    out.reserve(out.size() + 64 + event.data.size());
    out += "\"seq\":";
    detail::append_uint(out, event.seq);
    out += ",\"kind\":\"";
    out += to_string(event.kind);  // fixed ASCII names
    out += "\",\"ts\":";
    detail::append_int(out, event.ts);
    out += ",\"data\":";
    if (event.data.empty()) {
        out += "{}";
    } else {
        out += event.data;
    }
}

void append_event_object(std::string& out, const EventView& event) {
    out.push_back('{');
    append_event_members(out, event);
    out.push_back('}');
}

std::string event_object(const Event& event) {
    std::string out;
    append_event_object(out, event);
    return out;
}

std::string error_body(std::string_view code, std::string_view message) {
    std::string out;
    out.reserve(32 + code.size() + message.size());
    out += "{\"error\":{\"code\":";
    append_quoted(out, code);
    out += ",\"message\":";
    append_quoted(out, message);
    out += "}}";
    return out;
}

std::variant<JobRequest, RequestError> parse_job_request(std::string_view body) {
    JsonDocument& doc = thread_document();
    std::string why;
    if (!doc.parse(body, kRequestMaxDepth, &why)) {
        return RequestError{"body is not valid JSON: " + why};
    }
    const std::vector<Token>& tokens = doc.tokens();
    if (tokens[0].kind != TokenKind::object) {
        return RequestError{"body must be a JSON object"};
    }

    enum { kType, kParams, kPriority, kMaxAttemptsField, kKnown };
    static constexpr std::array<std::string_view, kKnown> kNames = {"type", "params", "priority",
                                                                    "max_attempts"};
    std::array<std::size_t, kKnown> value_of{};  // token index of each field's value; 0 = absent
    std::string unknown;
    std::size_t index = 1;
    for (std::uint32_t i = 0; i < tokens[0].count; ++i) {
        const std::string_view key = doc.string(tokens[index]);
        const std::size_t value = index + 1;
        index = tokens[value].end;
        std::size_t field = 0;
        while (field < kKnown && kNames[field] != key)
            ++field;
        if (field == kKnown) {
            if (!unknown.empty()) unknown += ", ";
            append_quoted(unknown, key);
            continue;
        }
        if (value_of[field] != 0) return field_error(key, "appears more than once");
        value_of[field] = value;
    }
    if (!unknown.empty()) {
        return RequestError{"unknown field(s): " + unknown +
                            " (allowed: type, params, priority, max_attempts)"};
    }

    JobRequest request;
    if (value_of[kType] == 0) return field_error("type", "is required");
    const Token& type = tokens[value_of[kType]];
    if (type.kind != TokenKind::string) return field_error("type", "must be a string");
    const std::string_view type_text = doc.string(type);
    if (type_text.empty()) return field_error("type", "must not be empty");
    if (type_text.size() > kMaxTypeLength) {
        return field_error("type", "must be at most 128 characters");
    }
    if (!valid_type_name(type_text)) {
        return field_error("type", "may contain only letters, digits, '.', '_' and '-'");
    }
    request.type.assign(type_text);

    if (value_of[kParams] != 0) {
        const std::size_t at = value_of[kParams];
        if (tokens[at].kind != TokenKind::object)
            return field_error("params", "must be a JSON object");
        request.params.clear();
        doc.write(request.params, at);
        // Only what every worker can decode: the job would otherwise hold a
        // worker slot while the worker drops its assign.
        if (auto problem = proto::params_problem(request.type, request.params)) {
            doc.trim();
            return RequestError{std::move(*problem)};
        }
    }

    if (auto error = bounded_int(tokens, value_of[kPriority], "priority", kMinPriority,
                                 kMaxPriority, request.priority)) {
        return *std::move(error);
    }
    if (auto error = bounded_int(tokens, value_of[kMaxAttemptsField], "max_attempts", kMinAttempts,
                                 kMaxAttempts, request.max_attempts)) {
        return *std::move(error);
    }
    doc.trim();
    return request;
}

bool is_object(std::string_view text) {
    JsonDocument& doc = thread_document();
    const bool object =
        doc.parse(text, kStoredMaxDepth) && doc.tokens()[0].kind == TokenKind::object;
    doc.trim();
    return object;
}

}  // namespace jobcast::json
