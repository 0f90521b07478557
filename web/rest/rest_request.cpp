#include "web/rest/rest_request.hpp"

#include <charconv>

#include "web/http/query.hpp"
#include "web/http/routes.hpp"

namespace jobcast::web {

namespace {

HttpResponse invalid(std::string message) {
    return error_response(400, "invalid_request", message);
}

// Strict unsigned decimal: digits only, no sign, no spaces, no overflow.
template <class T>
std::optional<T> parse_unsigned(std::string_view text) {
    if (text.empty()) return std::nullopt;
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// A bounded count parameter ("limit"): absent -> fallback; otherwise an integer
// in [1, max]. nullopt means the client sent something invalid.
std::optional<std::size_t> parse_count(const QueryParams& query, std::string_view name,
                                       std::size_t fallback, std::size_t max) {
    auto text = query.get(name);
    if (!text) return fallback;
    auto value = parse_unsigned<std::size_t>(*text);
    if (!value || *value < 1 || *value > max) return std::nullopt;
    return *value;
}

std::string limit_message(std::string_view name, std::size_t max) {
    return std::string(name) + " must be an integer between 1 and " + std::to_string(max);
}

std::variant<RestCall, HttpResponse> create_job(const HttpRequest& request,
                                                const RestLimits& limits) {
    CreateJobCall call;
    if (auto header = request.header("Idempotency-Key")) {
        if (header->empty()) return invalid("Idempotency-Key must not be empty");
        if (header->size() > limits.max_idempotency_key) {
            return invalid("Idempotency-Key must be at most " +
                           std::to_string(limits.max_idempotency_key) + " characters");
        }
        call.idempotency_key = std::string(*header);
    }
    // Any Content-Type is accepted: the body must parse as the JSON object either way.
    auto parsed = json::parse_job_request(request.body);
    if (auto* error = std::get_if<json::RequestError>(&parsed)) return invalid(error->message);
    call.job = std::get<json::JobRequest>(std::move(parsed));
    return RestCall{std::move(call)};
}

std::variant<RestCall, HttpResponse> list_jobs(const QueryParams& query, const RestLimits& limits) {
    ListJobsCall call;
    if (auto state = query.get("state"); state && !state->empty()) {
        call.state = parse_job_state(*state);
        if (!call.state) {
            return invalid("state must be one of queued, running, succeeded, failed, cancelled");
        }
    }
    if (auto type = query.get("type"); type && !type->empty()) call.type = std::string(*type);
    auto limit = parse_count(query, "limit", limits.default_list_limit, limits.max_list_limit);
    if (!limit) return invalid(limit_message("limit", limits.max_list_limit));
    call.limit = *limit;
    if (auto cursor = query.get("cursor")) call.cursor = std::string(*cursor);
    return RestCall{std::move(call)};
}

std::variant<RestCall, HttpResponse> job_events(std::string job_id, const QueryParams& query,
                                                const RestLimits& limits) {
    JobEventsCall call;
    call.job_id = std::move(job_id);
    if (auto text = query.get("after")) {
        auto value = parse_unsigned<std::uint64_t>(*text);
        if (!value) return invalid("after must be a non-negative integer (a seq)");
        call.after = *value;
    }
    auto limit = parse_count(query, "limit", limits.default_events_limit, limits.max_events_limit);
    if (!limit) return invalid(limit_message("limit", limits.max_events_limit));
    call.limit = *limit;
    if (auto text = query.get("wait")) {
        auto value = parse_unsigned<std::uint64_t>(*text);
        if (!value || *value > static_cast<std::uint64_t>(limits.max_wait.count())) {
            return invalid("wait must be whole seconds between 0 and " +
                           std::to_string(limits.max_wait.count()));
        }
        call.wait = std::chrono::seconds(*value);
    }
    return RestCall{std::move(call)};
}

}  // namespace

HttpResponse error_response(int status, std::string_view code, std::string_view message) {
    HttpResponse response;
    response.status = status;
    response.body = json::error_body(code, message);
    return response;
}

std::variant<RestCall, HttpResponse> parse_rest_request(const HttpRequest& request,
                                                        const RestLimits& limits) {
    TargetParts target = split_target(request.target);
    auto match = match_route(target.path);
    if (!match) return error_response(404, "not_found", "no such route");
    if (!method_allowed(match->route, request.method)) {
        std::string_view allow = allowed_methods(match->route);
        HttpResponse response = error_response(
            405, "method_not_allowed",
            "method " + request.method + " is not allowed here; use " + std::string(allow));
        response.headers.emplace_back("Allow", std::string(allow));
        return response;
    }
    auto query = QueryParams::parse(target.query);
    if (!query) return invalid("query string has a malformed %-escape");
    switch (match->route) {
        case Route::healthz:
            return RestCall{HealthCall{}};
        case Route::readyz:
            return RestCall{ReadyCall{}};
        case Route::jobs:
            if (request.method == "POST") return create_job(request, limits);
            return list_jobs(*query, limits);
        case Route::job:
            return RestCall{GetJobCall{std::move(match->job_id)}};
        case Route::job_cancel:
            return RestCall{CancelJobCall{std::move(match->job_id)}};
        case Route::job_events:
            return job_events(std::move(match->job_id), *query, limits);
        case Route::job_snapshot:
            return RestCall{JobSnapshotCall{std::move(match->job_id)}};
        case Route::types:
            return RestCall{TypesCall{}};
        case Route::job_tokens: {
            auto parsed = json::parse_token_request(request.body);
            if (auto* error = std::get_if<json::RequestError>(&parsed)) {
                return invalid(error->message);
            }
            return RestCall{
                CreateTokenCall{std::move(match->job_id), std::get<json::TokenRequest>(parsed)}};
        }
        case Route::tokens_revoke: {
            auto parsed = json::parse_revoke_request(request.body);
            if (auto* error = std::get_if<json::RequestError>(&parsed)) {
                return invalid(error->message);
            }
            return RestCall{RevokeTokensCall{std::get<json::RevokeRequest>(std::move(parsed))}};
        }
    }
    return error_response(404, "not_found", "no such route");
}

}  // namespace jobcast::web
