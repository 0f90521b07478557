// The route table of Client API v1: which path is which endpoint, its template
// (the metric label, never the raw path) and the methods it allows.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace jobcast::web {

enum class Route {
    healthz,        // GET  /healthz
    readyz,         // GET  /readyz
    jobs,           // GET, POST /v1/jobs
    job,            // GET  /v1/jobs/{id}
    job_cancel,     // POST /v1/jobs/{id}/cancel
    job_events,     // GET  /v1/jobs/{id}/events
    job_snapshot,   // GET  /v1/jobs/{id}/snapshot
    job_tokens,     // POST /v1/jobs/{id}/tokens
    types,          // GET  /v1/types
    tokens_revoke,  // POST /v1/tokens/revoke
};

struct RouteMatch {
    Route route;
    std::string job_id;  // percent-decoded {id}; empty for routes without one
};

// Matches a path (no query). Exact matching: no trailing slash, no empty segments.
std::optional<RouteMatch> match_route(std::string_view path);

// "/v1/jobs/{id}/events", ...
std::string_view route_template(Route route);
// The Allow header's value for the route: "GET", "POST" or "GET, POST".
std::string_view allowed_methods(Route route);
bool method_allowed(Route route, std::string_view method);

// Label for a request target that may not match any REST route ("/metrics"
// is labelled as itself; anything unknown is "unmatched").
inline constexpr std::string_view kUnmatchedRoute = "unmatched";
std::string_view route_label(std::string_view target);

}  // namespace jobcast::web
