// The web module's own view of an HTTP exchange: plain values with no Beast in
// them, so the REST handlers (and their tests) compile without the server.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/jwt.hpp"

namespace jobcast::web {

// Header names compare case-insensitively (RFC 9110 section 5.1).
struct CaseInsensitiveLess {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const;
};

using HeaderMap = std::map<std::string, std::string, CaseInsensitiveLess>;

// The owner of requests when auth is off (DESIGN.md, data model).
inline constexpr std::string_view kAnonymousOwner = "anonymous";

struct HttpRequest {
    std::string method;  // "GET", "POST", ... as sent
    std::string target;  // origin-form: path plus optional "?query", still percent-encoded
    HeaderMap headers;   // repeated fields are joined with ", "
    std::string body;
    std::string remote;                                // peer "ip:port", for logs
    std::string owner = std::string(kAnonymousOwner);  // set by the server's Authenticator
    std::int64_t auth_valid_until = 0;  // unix seconds the token stays valid; 0: no expiry
    // Set when the caller holds a per-job token: it reaches that job only
    // (web/security/job_tokens.hpp).
    std::optional<auth::JobGrant> grant;

    std::optional<std::string_view> header(std::string_view name) const;
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    // Extra fields (Allow, ...). "Connection: close" ends the connection after
    // this answer.
    std::vector<std::pair<std::string, std::string>> headers;
};

// Called exactly once per request, from any thread.
using Reply = std::function<void(HttpResponse)>;

// Decides who is calling: sets request.owner, or returns the response that
// turns the caller away (e.g. 401). Runs on the connection's I/O thread.
using Authenticator = std::function<std::optional<HttpResponse>(HttpRequest& request)>;
// Authenticates nobody: every request's owner is "anonymous" (auth off).
Authenticator anonymous_authenticator();

// Answers one request by calling the Reply exactly once, from any thread.
using Handler = std::function<void(HttpRequest request, Reply reply)>;

}  // namespace jobcast::web
