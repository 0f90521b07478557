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
#include "web/host_check.hpp"
#include "web/http_message.hpp"
#include "web/security_stats.hpp"

namespace jobcast::web {

// Each 0 means unlimited. Connections and submissions are limited only with
// auth on (see SecurityContext::admit_submission).
struct SecurityLimits {
    std::size_t connections_per_owner = 256;  // open WebSocket + SSE connections
    std::size_t connections_per_ip = 512;
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

// Open streaming connections per owner and per remote IP. acquire() returns
// a slot that gives its place back (and writes the audit line) when the
// connection ends, or the limit that was hit. Thread-safe.
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

    struct TokenCheck {
        std::optional<std::string> owner;  // set when the token is valid
        std::int64_t valid_until = 0;      // unix seconds (exp + leeway); 0: never expires
        std::size_t reason = 0;            // index into kAuthFailureReasons when refused
        std::string message;
    };
    // Verifies a token; a refusal is counted and written to the audit log.
    TokenCheck check_token(std::string_view token, std::string_view remote,
                           std::string_view transport);
    void count_auth_failure(std::size_t reason, std::string_view remote, std::string_view transport,
                            std::string_view message);

    // The Authenticator for the HTTP server: /v1/ routes need a bearer token
    // (Authorization: Bearer, or ?access_token= for browser WebSocket and
    // EventSource); /healthz, /readyz, /metrics and the UI stay open.
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

    SecurityStats stats;

  private:
    SecurityConfig config_;
    std::unique_ptr<auth::JwtVerifier> jwt_;
    std::function<std::int64_t()> now_seconds_;
    OwnerRateLimiter submissions_;
    ConnectionLimiter connections_;
    HostAllowList hosts_;
    bool check_host_;
};

// The bearer token of a request: Authorization: Bearer X, else ?access_token=X.
// Empty when there is none.
std::string bearer_token(const HttpRequest& request);

}  // namespace jobcast::web
