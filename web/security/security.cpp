#include "web/security/security.hpp"

#include <algorithm>
#include <utility>

#include "common/clock.hpp"
#include "common/time_bounds.hpp"
#include "protocol/json.hpp"
#include "web/http/log.hpp"
#include "web/http/query.hpp"
#include "web/http/routes.hpp"
#include "web/security/audit.hpp"

namespace jobcast::web {

namespace {

// Beyond this many owners with a non-full bucket, full ones are forgotten.
constexpr std::size_t kMaxTrackedOwners = 10'000;
// Refusals at accept are audited at most this often per limit (with a count
// of those not written), so a flood of connections cannot flood the log.
constexpr std::chrono::seconds kRefusalAuditInterval{10};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// "https://host:port" -> "host:port" (what a same-origin request has as Host).
std::string_view origin_authority(std::string_view origin) {
    auto scheme = origin.find("://");
    return scheme == std::string_view::npos ? std::string_view{} : origin.substr(scheme + 3);
}

HttpResponse error(int status, std::string_view code, std::string_view message) {
    return HttpResponse{status, "application/json", json::error_body(code, message), {}};
}

}  // namespace

std::size_t sockets_per_ip(const SecurityLimits& limits) {
    if (limits.sockets_per_ip > 0) return limits.sockets_per_ip;
    return limits.max_connections > 0 ? std::max<std::size_t>(1, limits.max_connections / 2) : 0;
}

bool TokenBucket::take(Clock::time_point now) {
    if (now > last_) {
        tokens_ =
            std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
        last_ = now;
    }
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
}

bool TokenBucket::full(Clock::time_point now) const {
    return tokens_ + std::chrono::duration<double>(now - last_).count() * rate_ >= burst_;
}

bool OwnerRateLimiter::admit(const std::string& owner, TokenBucket::Clock::time_point now) {
    std::lock_guard lock(mutex_);
    if (buckets_.size() > kMaxTrackedOwners) {
        std::erase_if(buckets_, [now](const auto& entry) { return entry.second.full(now); });
    }
    auto it = buckets_.try_emplace(owner, rate_, burst_, now).first;
    return it->second.take(now);
}

std::string remote_ip(std::string_view remote) {
    if (!remote.empty() && remote.front() == '[') {
        auto close = remote.find(']');
        return std::string(
            remote.substr(1, close == std::string_view::npos ? remote.npos : close - 1));
    }
    return std::string(remote.substr(0, remote.rfind(':')));
}

ConnectionLimiter::Acquired ConnectionLimiter::acquire(const std::string& owner,
                                                       const std::string& remote,
                                                       std::string_view transport) {
    std::string ip = remote_ip(remote);
    {
        std::lock_guard lock(mutex_);
        auto& by_owner = owners_[owner];
        auto& by_ip = ips_[ip];
        bool owner_full = per_owner_ > 0 && by_owner >= per_owner_;
        bool ip_full = per_ip_ > 0 && by_ip >= per_ip_;
        if (owner_full || ip_full) {
            Limit hit = owner_full ? Limit::connections_per_owner : Limit::connections_per_ip;
            if (by_owner == 0) owners_.erase(owner);
            if (by_ip == 0) ips_.erase(ip);
            return {nullptr, hit};
        }
        ++by_owner;
        ++by_ip;
    }
    audit_log().info("event=connection_opened transport={} owner={} ip={}", transport,
                     audit_quote(owner), ip);
    auto opened = std::chrono::steady_clock::now();
    struct Slot {
        std::function<void()> on_close;
        ~Slot() { on_close(); }
    };
    auto slot = std::make_shared<Slot>();
    slot->on_close = [this, owner, ip, transport = std::string(transport), opened] {
        release(owner, ip);
        auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - opened);
        audit_log().info("event=connection_closed transport={} owner={} ip={} seconds={:.1f}",
                         transport, audit_quote(owner), ip, seconds.count());
    };
    return {std::move(slot), Limit::connections_per_owner};
}

void ConnectionLimiter::release(const std::string& owner, const std::string& ip) {
    std::lock_guard lock(mutex_);
    if (auto it = owners_.find(owner); it != owners_.end() && --it->second == 0) owners_.erase(it);
    if (auto it = ips_.find(ip); it != ips_.end() && --it->second == 0) ips_.erase(it);
}

AcceptLimiter::Admitted AcceptLimiter::admit(const std::string& ip) {
    {
        std::lock_guard lock(mutex_);
        if (total_ > 0 && open_ >= total_) return {nullptr, Limit::connections};
        if (per_ip_ > 0) {
            auto& by_ip = ips_[ip];
            if (by_ip >= per_ip_) return {nullptr, Limit::sockets_per_ip};
            ++by_ip;
        }
        ++open_;
    }
    struct Ticket {
        Ticket(AcceptLimiter* limiter, std::string ip) : limiter(limiter), ip(std::move(ip)) {}
        Ticket(const Ticket&) = delete;
        Ticket& operator=(const Ticket&) = delete;
        ~Ticket() { limiter->release(ip); }
        AcceptLimiter* limiter;
        std::string ip;
    };
    return {std::make_shared<Ticket>(this, ip), Limit::connections};
}

void AcceptLimiter::release(const std::string& ip) {
    std::lock_guard lock(mutex_);
    --open_;
    if (per_ip_ == 0) return;
    if (auto it = ips_.find(ip); it != ips_.end() && --it->second == 0) ips_.erase(it);
}

std::size_t AcceptLimiter::open() const {
    std::lock_guard lock(mutex_);
    return open_;
}

SecurityContext::SecurityContext(SecurityConfig config, std::function<std::int64_t()> now_seconds)
    : config_(std::move(config)),
      now_seconds_(now_seconds ? std::move(now_seconds)
                               : [] { return Clock::system().unix_ms() / 1000; }),
      submissions_(config_.limits.submissions_per_second, config_.limits.submissions_burst),
      // Without auth every client is "anonymous": a per-owner count would only
      // throttle the local user, so it stays unlimited (0), but connections are
      // still audited. The per-IP limits and the global cap apply in both modes.
      connections_(config_.jwt.enabled() ? config_.limits.connections_per_owner : 0,
                   config_.limits.connections_per_ip),
      accepted_(config_.limits.max_connections, sockets_per_ip(config_.limits)),
      hosts_(config_.allowed_hosts),
      // With auth, tokens are the boundary; Host is checked only when asked.
      check_host_(!config_.jwt.enabled() || !config_.allowed_hosts.empty()) {
    if (config_.jwt.enabled()) jwt_ = std::make_unique<auth::JwtVerifier>(config_.jwt);
}

static_assert(kAuthFailureReasons[static_cast<std::size_t>(auth::JwtFailure::lifetime)] ==
                  "lifetime",
              "kAuthFailureReasons follows auth::JwtFailure");

SecurityContext::TokenCheck SecurityContext::check_token(std::string_view token,
                                                         std::string_view remote,
                                                         std::string_view transport) {
    TokenCheck out;
    if (!jwt_) {
        out.owner = std::string(kAnonymousOwner);
        return out;
    }
    // The broker's own job tokens say so in their kid; any other token is the
    // identity provider's.
    const auto job_tokens = job_tokens_.load();
    const bool job_token = job_tokens && auth::key_id(token) == JobTokens::kKeyId;
    auto result =
        job_token ? job_tokens->verify(token, now_seconds_()) : jwt_->verify(token, now_seconds_());
    if (!result.claims) {
        out.reason = static_cast<std::size_t>(result.failure);
        out.message = result.message;
        count_auth_failure(out.reason, remote, transport, out.message);
        return out;
    }
    // A job token's sub is the owner as the broker wrote it.
    auto owner = job_token ? result.claims->subject : result.claims->owner();
    if (result.claims->grant && job_tokens && job_tokens->revoked(owner, *result.claims->grant)) {
        out.reason = kRevoked;
        out.message = "token revoked";
        count_auth_failure(out.reason, remote, transport, out.message);
        return out;
    }
    if (owner == kAnonymousOwner) {
        // The owner of every job made while auth was off: no token may inherit them.
        out.reason = static_cast<std::size_t>(auth::JwtFailure::subject);
        out.message = "sub '" + std::string(kAnonymousOwner) + "' is reserved";
        count_auth_failure(out.reason, remote, transport, out.message);
        return out;
    }
    out.owner = std::move(owner);
    out.grant = std::move(result.claims->grant);
    if (result.claims->expires_at != 0) {
        out.valid_until =
            time_bounds::saturating_add(result.claims->expires_at, config_.jwt.leeway_seconds);
    }
    return out;
}

void SecurityContext::count_auth_failure(std::size_t reason, std::string_view remote,
                                         std::string_view transport, std::string_view message) {
    reason = std::min(reason, kAuthFailureReasons.size() - 1);
    stats.auth_failures[reason].fetch_add(1, std::memory_order_relaxed);
    audit_log().info("event=auth_failure transport={} ip={} reason={} message={}", transport,
                     remote_ip(remote), kAuthFailureReasons[reason], audit_quote(message));
}

HttpResponse too_many_connections(Limit limit) {
    auto response = error(429, "too_many_connections",
                          limit == Limit::connections_per_owner
                              ? "too many open streams and long-polls for this owner"
                              : "too many open streams and long-polls from this address");
    response.headers.emplace_back("Retry-After", "5");
    // An idle keep-alive connection would go on holding what was refused.
    response.headers.emplace_back("Connection", "close");
    return response;
}

std::string bearer_token(const HttpRequest& request) {
    if (auto header = request.header("Authorization")) {
        std::string_view value = *header;
        if (value.size() > 7 && iequals(value.substr(0, 7), "Bearer ")) {
            value.remove_prefix(7);
            while (!value.empty() && value.front() == ' ')
                value.remove_prefix(1);
            while (!value.empty() && value.back() == ' ')
                value.remove_suffix(1);
            return std::string(value);
        }
        return {};
    }
    auto query = split_target(request.target).query;
    if (query.empty()) return {};
    auto params = QueryParams::parse(query);
    if (!params) return {};
    if (auto token = params->get("access_token")) return std::string(*token);
    return {};
}

std::optional<HttpResponse> SecurityContext::authenticate(HttpRequest& request) {
    auto path = split_target(request.target).path;
    if (!jwt_ || path.rfind("/v1/", 0) != 0) {
        request.owner = std::string(kAnonymousOwner);
        return std::nullopt;
    }
    // Preflights carry no credentials (Fetch standard); they are answered before this.
    std::string token = bearer_token(request);
    std::string_view transport = path == "/v1/ws" ? "websocket" : "http";
    TokenCheck check;
    if (token.empty()) {
        check.reason = static_cast<std::size_t>(auth::JwtFailure::missing);
        check.message = "a bearer token is required (Authorization: Bearer, or ?access_token=)";
        count_auth_failure(check.reason, request.remote, transport, check.message);
    } else {
        check = check_token(token, request.remote, transport);
    }
    if (!check.owner) {
        auto response = error(401, "unauthorized", check.message);
        response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"jobcast\"");
        return response;
    }
    if (check.grant && !scoped_request_allowed(*check.grant, request.method, path)) {
        count_auth_failure(kScope, request.remote, transport,
                           "job token used beyond its job: " + request.method + " " +
                               std::string(path.substr(0, 200)));
        return no_such_job();
    }
    request.owner = std::move(*check.owner);
    request.grant = std::move(check.grant);
    request.auth_valid_until = check.valid_until;
    return std::nullopt;
}

bool SecurityContext::token_admin(std::string_view owner) const {
    const auto& admins = config_.token_admins;
    return std::find(admins.begin(), admins.end(), owner) != admins.end();
}

bool scoped_request_allowed(const auth::JobGrant& grant, std::string_view method,
                            std::string_view path) {
    if (path == "/v1/ws") return method == "GET";
    constexpr std::string_view stream = "/v1/streams/jobs/";
    if (path.starts_with(stream)) {
        auto id = percent_decode(path.substr(stream.size()), false);
        return (method == "GET" || method == "HEAD") && id &&
               grant_permits(grant, *id, JobAccess::read);
    }
    auto match = match_route(path);
    if (!match) return false;
    switch (match->route) {
        case Route::job:
        case Route::job_events:
        case Route::job_snapshot:
            return method == "GET" && grant_permits(grant, match->job_id, JobAccess::read);
        case Route::job_cancel:
            return method == "POST" && grant_permits(grant, match->job_id, JobAccess::cancel);
        case Route::job_tokens:
            return method == "POST" && grant_permits(grant, match->job_id, JobAccess::mint);
        case Route::healthz:
        case Route::readyz:
        case Route::jobs:
        case Route::types:
        case Route::tokens_revoke:
            return false;
    }
    return false;
}

HttpResponse no_such_job() {
    return error(404, "not_found", "no such job");
}

std::optional<HttpResponse> SecurityContext::check_host(const HttpRequest& request) {
    if (!check_host_ || hosts_.allows(request.header("Host"))) return std::nullopt;
    auto host = request.header("Host");
    count_refusal(Refusal::host, request, host ? *host : std::string_view{});
    return error(403, "host_not_allowed",
                 host ? "this broker does not answer to the Host in this request; use localhost, "
                        "127.0.0.1 or [::1], or start the broker with --allowed-host NAME"
                      : "a Host header is required");
}

void SecurityContext::count_refusal(Refusal reason, const HttpRequest& request,
                                    std::string_view value) {
    auto index = static_cast<std::size_t>(reason);
    stats.refused_requests[index].fetch_add(1, std::memory_order_relaxed);
    audit_log().info("event=request_refused reason={} ip={} {}={} method={} target={}",
                     kRefusalReasons[index], remote_ip(request.remote),
                     reason == Refusal::host ? "host" : "origin", audit_quote(value),
                     audit_quote(request.method), log_target(request.target));
}

bool SecurityContext::origin_allowed(const HttpRequest& request) const {
    auto origin = request.header("Origin");
    if (!origin) return true;
    const auto& allowed = config_.allowed_origins;
    if (std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) return true;
    if (std::find(allowed.begin(), allowed.end(), *origin) != allowed.end()) return true;
    auto host = request.header("Host");
    return host && !origin_authority(*origin).empty() && iequals(origin_authority(*origin), *host);
}

std::optional<std::string> SecurityContext::cors_origin(const HttpRequest& request) const {
    auto origin = request.header("Origin");
    if (!origin || !origin_allowed(request)) return std::nullopt;
    return std::string(*origin);
}

HttpResponse SecurityContext::preflight(const HttpRequest& request) const {
    auto origin = cors_origin(request);
    if (!origin) return error(403, "origin_not_allowed", "this Origin may not call the broker");
    HttpResponse response{204, "", "", {}};
    // Durable Streams (/v1/streams/) create, append, delete and revalidate,
    // with the protocol's own request headers.
    const bool streams = request.target.starts_with("/v1/streams/");
    response.headers = {
        {"Access-Control-Allow-Origin", *origin},
        {"Access-Control-Allow-Methods",
         streams ? "GET, HEAD, POST, PUT, DELETE, OPTIONS" : "GET, POST, OPTIONS"},
        {"Access-Control-Allow-Headers",
         streams ? "Authorization, Content-Type, If-None-Match, Stream-Seq, Stream-TTL, "
                   "Stream-Expires-At, Stream-Closed, Producer-Id, Producer-Epoch, Producer-Seq, "
                   "Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset"
                 : "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"},
        {"Access-Control-Max-Age", "600"},
        {"Vary", "Origin"},
    };
    return response;
}

void SecurityContext::count_limit(Limit limit, std::string_view owner, std::string_view remote) {
    stats.limit_hits[static_cast<std::size_t>(limit)].fetch_add(1, std::memory_order_relaxed);
    audit_log().info("event=limit_hit limit={} owner={} ip={}", to_string(limit),
                     audit_quote(owner), remote_ip(remote));
}

void SecurityContext::count_tls_failure(TlsFailure failure, std::string_view remote,
                                        std::string_view detail) {
    auto reason = static_cast<std::size_t>(failure);
    stats.tls_failures[reason].fetch_add(1, std::memory_order_relaxed);
    audit_log().info("event=tls_failed reason={} ip={} detail={}", kTlsFailureReasons[reason],
                     remote_ip(remote), audit_quote(detail));
}

// Per-owner and per-IP limits apply with auth on: without it the broker is
// loopback-only and every client is the one "anonymous" owner, so they would
// only throttle the local user.
bool SecurityContext::admit_submission(const std::string& owner, std::string_view remote) {
    if (!jwt_ || config_.limits.submissions_per_second <= 0) return true;
    if (submissions_.admit(owner, std::chrono::steady_clock::now())) return true;
    count_limit(Limit::submissions_rate, owner, remote);
    return false;
}

ConnectionLimiter::Acquired SecurityContext::acquire_connection(const std::string& owner,
                                                                const std::string& remote,
                                                                std::string_view transport) {
    auto acquired = connections_.acquire(owner, remote, transport);
    if (!acquired.slot) count_limit(acquired.limit, owner, remote);
    return acquired;
}

AcceptLimiter::Admitted SecurityContext::admit_connection(const std::string& ip) {
    auto admitted = accepted_.admit(ip);
    if (admitted.ticket) return admitted;
    auto index = static_cast<std::size_t>(admitted.limit);
    stats.limit_hits[index].fetch_add(1, std::memory_order_relaxed);
    std::uint64_t unaudited = 0;
    {
        std::lock_guard lock(refusal_audit_mutex_);
        auto now = std::chrono::steady_clock::now();
        auto& last = refusal_audited_[index];
        if (last != std::chrono::steady_clock::time_point{} && now - last < kRefusalAuditInterval) {
            ++refusals_unaudited_[index];
            return admitted;
        }
        last = now;
        unaudited = std::exchange(refusals_unaudited_[index], 0);
    }
    audit_log().info(
        "event=limit_hit limit={} ip={} open={} max_connections={} max_sockets_per_ip={} "
        "not_logged_since_last={}",
        to_string(admitted.limit), ip, accepted_.open(), config_.limits.max_connections,
        sockets_per_ip(config_.limits), unaudited);
    return admitted;
}

}  // namespace jobcast::web
