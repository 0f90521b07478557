// What the broker does about hostile or greedy clients, without Beast: who is
// calling (JWT bearer tokens), which browser origins may call, and the limits
// (connections per owner and per IP, job submissions per owner per second,
// WebSocket ops per connection per second), each counted when hit. One
// SecurityContext per server, shared by the HTTP, streaming and REST code.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/jwt.hpp"
#include "web/http/http_message.hpp"
#include "web/security/host_check.hpp"
#include "web/security/job_tokens.hpp"
#include "web/security/security_stats.hpp"

namespace jobcast::web {

// Each 0 means unlimited (but see sockets_per_ip). Per-owner limits apply
// only with auth on (see SecurityContext::admit_submission); the others
// apply always.
struct SecurityLimits {
    // Open WebSocket, SSE and long-poll (wait > 0) connections of one owner,
    // and from one IP.
    std::size_t connections_per_owner = 256;
    std::size_t connections_per_ip = 512;
    // Every open connection of the HTTP port, counted at accept. The broker
    // sets it below its file descriptor limit.
    std::size_t max_connections = 0;
    // Every open connection from one IP (keep-alive HTTP, WebSocket, SSE,
    // long-poll alike), counted at accept. 0: half of max_connections, so no
    // one address can take them all.
    std::size_t sockets_per_ip = 0;
    double submissions_per_second = 20;  // per owner, refilled continuously
    double submissions_burst = 100;
    double ws_ops_per_second = 50;  // per connection
    double ws_ops_burst = 200;
};

// A token bucket: `burst` tokens, refilled at `rate` per second. Pure: the
// caller passes the time.
class TokenBucket {
  public:
    using Clock = std::chrono::steady_clock;
    TokenBucket(double rate, double burst, Clock::time_point now)
        : rate_(rate), burst_(burst), tokens_(burst), last_(now) {}
    bool take(Clock::time_point now);
    // True when the bucket is full again at `now` (it can be forgotten).
    bool full(Clock::time_point now) const;

  private:
    double rate_, burst_, tokens_;
    Clock::time_point last_;
};

// Token buckets keyed by owner, for job submissions. Thread-safe.
class OwnerRateLimiter {
  public:
    OwnerRateLimiter(double rate, double burst) : rate_(rate), burst_(burst) {}
    bool admit(const std::string& owner, TokenBucket::Clock::time_point now);

  private:
    double rate_, burst_;
    std::mutex mutex_;
    std::unordered_map<std::string, TokenBucket> buckets_;
};

// Open long-lived connections (WebSocket, SSE, long-poll) per owner and per
// remote IP. acquire() returns a slot that gives its place back (and writes
// the audit line) when the connection ends, or the limit that was hit.
// Thread-safe.
class ConnectionLimiter {
  public:
    ConnectionLimiter(std::size_t per_owner, std::size_t per_ip)
        : per_owner_(per_owner), per_ip_(per_ip) {}
    struct Acquired {
        std::shared_ptr<void> slot;  // null when refused
        Limit limit = Limit::connections_per_owner;
    };
    Acquired acquire(const std::string& owner, const std::string& remote,
                     std::string_view transport);

  private:
    void release(const std::string& owner, const std::string& ip);
    std::size_t per_owner_, per_ip_;
    std::mutex mutex_;
    std::unordered_map<std::string, std::size_t> owners_, ips_;
};

// Every open connection of the HTTP port, counted when it is accepted: at
// most `total` in all and `per_ip` from one address (0: no limit). The ticket
// travels with the socket (HTTP session, then WebSocket or SSE session) and
// gives its place back when the connection closes. Thread-safe.
class AcceptLimiter {
  public:
    AcceptLimiter(std::size_t total, std::size_t per_ip) : total_(total), per_ip_(per_ip) {}
    struct Admitted {
        std::shared_ptr<void> ticket;  // null when refused
        Limit limit = Limit::connections;
    };
    Admitted admit(const std::string& ip);
    std::size_t open() const;

  private:
    void release(const std::string& ip);
    std::size_t total_, per_ip_;
    mutable std::mutex mutex_;
    std::size_t open_ = 0;
    std::unordered_map<std::string, std::size_t> ips_;
};

// The per-IP cap at accept that `limits` give: sockets_per_ip, or half of
// max_connections when it is 0 (0 when neither is set: no cap).
std::size_t sockets_per_ip(const SecurityLimits& limits);

// "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "::1".
std::string remote_ip(std::string_view remote);

struct SecurityConfig {
    auth::JwtConfig jwt;  // no key configured: auth off, every owner "anonymous"
    // Browser origins ("https://app.example.com") allowed to open WebSockets
    // and to call REST/SSE cross-origin. Empty: same origin only. "*": any.
    std::vector<std::string> allowed_origins;
    // Host names served besides loopback literals, localhost and the bound
    // address; "*" serves any Host. Host is checked when auth is off, or
    // whenever this list is given.
    std::vector<std::string> allowed_hosts;
    SecurityLimits limits;
    // Owners who may revoke the job tokens of any job and any owner
    // (POST /v1/tokens/revoke); every owner may revoke its own.
    std::vector<std::string> token_admins;
    // The key of the per-job tokens the broker mints (32+ bytes); empty: one
    // derived from the store's own random key.
    std::string job_token_secret;
};

class SecurityContext {
  public:
    // Throws std::invalid_argument for unusable keys (see auth::JwtVerifier).
    explicit SecurityContext(SecurityConfig config, std::function<std::int64_t()> now_seconds = {});

    bool auth_enabled() const { return jwt_ != nullptr; }
    std::vector<std::string> algorithms() const {
        return jwt_ ? jwt_->algorithms() : std::vector<std::string>{};
    }
    const SecurityConfig& config() const { return config_; }

    // Per-job tokens (minted, verified, revoked): set once, before serving.
    // Without them the token routes answer that this broker mints none.
    // Set once the store is open, while HTTP already serves: atomic.
    void use_job_tokens(std::shared_ptr<JobTokens> tokens) { job_tokens_.store(std::move(tokens)); }
    std::shared_ptr<JobTokens> job_tokens() const { return job_tokens_.load(); }
    bool token_admin(std::string_view owner) const;

    struct TokenCheck {
        std::optional<std::string> owner;     // set when the token is valid
        std::optional<auth::JobGrant> grant;  // a job token's scope
        std::int64_t valid_until = 0;         // unix seconds (exp + leeway); 0: never expires
        std::size_t reason = 0;               // index into kAuthFailureReasons when refused
        std::string message;
    };
    // Verifies a token; a refusal is counted and written to the audit log.
    TokenCheck check_token(std::string_view token, std::string_view remote,
                           std::string_view transport);
    void count_auth_failure(std::size_t reason, std::string_view remote, std::string_view transport,
                            std::string_view message);

    // The Authenticator for the HTTP server: /v1/ routes need a bearer token
    // (Authorization: Bearer, or ?access_token= for browser WebSocket and
    // EventSource); /healthz, /readyz, /metrics and the UI stay open. A job
    // token reaches its own job's routes only (scoped_request_allowed);
    // anywhere else it gets the answer of an unknown job (404).
    std::optional<HttpResponse> authenticate(HttpRequest& request);

    // The listen socket's address (HttpServer::start, before serving): a Host
    // naming it is served.
    void note_bound_address(std::string_view address) { hosts_.add_bound_address(address); }
    // DNS rebinding: the 403 host_not_allowed answer (counted and audited)
    // when the request's Host is not one this broker answers to.
    std::optional<HttpResponse> check_host(const HttpRequest& request);
    // Counts a request refused for its Host or Origin and writes the audit line.
    void count_refusal(Refusal reason, const HttpRequest& request, std::string_view value);

    // Origin allow-list: true for requests without an Origin (not a browser),
    // for the same origin (Origin matches Host), and for listed origins.
    bool origin_allowed(const HttpRequest& request) const;
    // The Access-Control-Allow-Origin value for a cross-origin request from an
    // allowed origin; nullopt when no CORS headers apply.
    std::optional<std::string> cors_origin(const HttpRequest& request) const;
    // The answer to a CORS preflight (OPTIONS with Access-Control-Request-Method).
    HttpResponse preflight(const HttpRequest& request) const;

    // Counts a hit and writes the audit line.
    void count_limit(Limit limit, std::string_view owner, std::string_view remote);
    void count_tls_failure(TlsFailure failure, std::string_view remote, std::string_view detail);
    bool admit_submission(const std::string& owner, std::string_view remote);
    ConnectionLimiter::Acquired acquire_connection(const std::string& owner,
                                                   const std::string& remote,
                                                   std::string_view transport);
    // A new connection's place under the global and per-IP caps; a refusal
    // is counted, and audited at most once per interval per limit.
    AcceptLimiter::Admitted admit_connection(const std::string& ip);
    std::size_t open_connections() const { return accepted_.open(); }

    SecurityStats stats;

  private:
    SecurityConfig config_;
    std::unique_ptr<auth::JwtVerifier> jwt_;
    std::atomic<std::shared_ptr<JobTokens>> job_tokens_;
    std::function<std::int64_t()> now_seconds_;
    OwnerRateLimiter submissions_;
    ConnectionLimiter connections_;
    AcceptLimiter accepted_;
    HostAllowList hosts_;
    bool check_host_;
    // Accept refusals come in floods: one audit line per interval and limit.
    std::mutex refusal_audit_mutex_;
    std::array<std::chrono::steady_clock::time_point, kLimits> refusal_audited_{};
    std::array<std::uint64_t, kLimits> refusals_unaudited_{};
};

// The 429 answer to a WebSocket, SSE or long-poll request over the per-owner
// or per-IP limit: {"error":{"code":"too_many_connections",...}} with
// Retry-After, and the connection closes after it.
HttpResponse too_many_connections(Limit limit);

// Whether a job token's `grant` reaches `method` `path`: GET (HEAD for
// Durable Streams) of its job, its events (JSON, SSE, long-poll,
// ui-message), its snapshot and its stream /v1/streams/jobs/{id}; POST of
// its cancel (when the grant may cancel) and of its tokens (a refresh); and
// the WebSocket, whose ops check the grant again. Nothing else.
bool scoped_request_allowed(const auth::JobGrant& grant, std::string_view method,
                            std::string_view path);

// The answer to a request for a job the caller may not see: the same for an
// unknown job, another owner's, and one a job token does not reach.
HttpResponse no_such_job();

// The bearer token of a request: Authorization: Bearer X, else ?access_token=X.
// Empty when there is none.
std::string bearer_token(const HttpRequest& request);

}  // namespace jobcast::web
