#include "web/http/routes.hpp"

#include "web/http/query.hpp"

namespace jobcast::web {

std::optional<RouteMatch> match_route(std::string_view path) {
    if (path == "/healthz") return RouteMatch{Route::healthz, {}};
    if (path == "/readyz") return RouteMatch{Route::readyz, {}};
    if (path == "/v1/types") return RouteMatch{Route::types, {}};
    if (path == "/v1/tokens/revoke") return RouteMatch{Route::tokens_revoke, {}};
    constexpr std::string_view jobs = "/v1/jobs";
    if (path == jobs) return RouteMatch{Route::jobs, {}};
    if (!path.starts_with(jobs) || path.size() < jobs.size() + 2 || path[jobs.size()] != '/') {
        return std::nullopt;
    }
    std::string_view rest = path.substr(jobs.size() + 1);  // "{id}" or "{id}/action"
    auto slash = rest.find('/');
    std::string_view raw_id = rest.substr(0, slash);
    if (raw_id.empty()) return std::nullopt;
    // A malformed escape cannot name a stored job; keeping it raw makes it a plain 404.
    std::string id = percent_decode(raw_id, false).value_or(std::string(raw_id));
    if (slash == std::string_view::npos) return RouteMatch{Route::job, std::move(id)};
    std::string_view action = rest.substr(slash + 1);
    if (action == "cancel") return RouteMatch{Route::job_cancel, std::move(id)};
    if (action == "events") return RouteMatch{Route::job_events, std::move(id)};
    if (action == "snapshot") return RouteMatch{Route::job_snapshot, std::move(id)};
    if (action == "tokens") return RouteMatch{Route::job_tokens, std::move(id)};
    return std::nullopt;
}

std::string_view route_template(Route route) {
    switch (route) {
        case Route::healthz:
            return "/healthz";
        case Route::readyz:
            return "/readyz";
        case Route::jobs:
            return "/v1/jobs";
        case Route::job:
            return "/v1/jobs/{id}";
        case Route::job_cancel:
            return "/v1/jobs/{id}/cancel";
        case Route::job_events:
            return "/v1/jobs/{id}/events";
        case Route::job_snapshot:
            return "/v1/jobs/{id}/snapshot";
        case Route::job_tokens:
            return "/v1/jobs/{id}/tokens";
        case Route::tokens_revoke:
            return "/v1/tokens/revoke";
        case Route::types:
            return "/v1/types";
    }
    return kUnmatchedRoute;
}

std::string_view allowed_methods(Route route) {
    switch (route) {
        case Route::jobs:
            return "GET, POST";
        case Route::job_cancel:
        case Route::job_tokens:
        case Route::tokens_revoke:
            return "POST";
        case Route::healthz:
        case Route::readyz:
        case Route::job:
        case Route::job_events:
        case Route::job_snapshot:
        case Route::types:
            return "GET";
    }
    return "GET";
}

bool method_allowed(Route route, std::string_view method) {
    switch (route) {
        case Route::jobs:
            return method == "GET" || method == "POST";
        case Route::job_cancel:
        case Route::job_tokens:
        case Route::tokens_revoke:
            return method == "POST";
        case Route::healthz:
        case Route::readyz:
        case Route::job:
        case Route::job_events:
        case Route::job_snapshot:
        case Route::types:
            return method == "GET";
    }
    return false;
}

std::string_view route_label(std::string_view target) {
    std::string_view path = split_target(target).path;
    if (auto match = match_route(path)) return route_template(match->route);
    // Served beside the REST API (by the broker), labelled as themselves.
    if (path == "/metrics") return "/metrics";
    if (path == "/v1/ws") return "/v1/ws";
    if (path.starts_with("/v1/streams/jobs/")) return "/v1/streams/jobs/{id}";
    if (path.starts_with("/v1/streams/")) return "/v1/streams/{name}";
    // The UI's files: one label for all of them.
    if (path == "/" || path.rfind("/client/", 0) == 0 ||
        path.find('/', 1) == std::string_view::npos) {
        if (path.rfind("/v1", 0) != 0) return "/ (ui)";
    }
    return kUnmatchedRoute;
}

}  // namespace jobcast::web
