// Counters of the security checks (auth failures, limits hit), kept as
// relaxed atomics and read by the metrics module at scrape time. Header-only
// so the metrics code needs no link to the web module.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace jobcast::web {

enum class Limit : std::uint8_t {
    body_size,              // HTTP request body (413)
    ws_message_size,        // WebSocket message (close 1009)
    subscriptions,          // per WebSocket connection (error frame)
    connections_per_owner,  // WebSocket + SSE + long-poll (429, closed)
    connections_per_ip,     // WebSocket + SSE + long-poll (429, closed)
    submissions_rate,       // POST /v1/jobs per owner per second (429)
    ws_ops_rate,            // WebSocket ops per connection per second (error frame)
    connections,            // every connection of the HTTP port, at accept (503, closed)
    sockets_per_ip,         // every connection from one IP, at accept (429, closed)
};
inline constexpr std::array<std::string_view, 9> kLimitNames = {
    "body_size",          "ws_message_size",  "subscriptions", "connections_per_owner",
    "connections_per_ip", "submissions_rate", "ws_ops_rate",   "connections",
    "sockets_per_ip"};
inline constexpr std::size_t kLimits = kLimitNames.size();
inline std::string_view to_string(Limit limit) {
    return kLimitNames[static_cast<std::size_t>(limit)];
}

// The `reason` label of jobcast_auth_failures_total: auth::JwtFailure in its
// order, plus a WebSocket auth op whose token names another owner (or
// another job), a revoked job token, and a job token used beyond its job
// (another job, listing, submitting, the jobs feed).
inline constexpr std::array<std::string_view, 13> kAuthFailureReasons = {
    "missing",  "malformed", "algorithm", "signature",      "expired", "not_yet_valid", "issuer",
    "audience", "subject",   "lifetime",  "owner_mismatch", "revoked", "scope"};
inline constexpr std::size_t kOwnerMismatch = 10;
inline constexpr std::size_t kRevoked = 11;
inline constexpr std::size_t kScope = 12;

// The `reason` label of jobcast_tls_handshake_failures_total: plain HTTP on
// the TLS port (answered 400), a handshake OpenSSL refused (old protocol, no
// shared cipher, not TLS after all), or one that did not finish in time.
enum class TlsFailure : std::uint8_t { plaintext, handshake, timeout };
inline constexpr std::array<std::string_view, 3> kTlsFailureReasons = {"plaintext", "handshake",
                                                                       "timeout"};

// The `reason` label of jobcast_requests_refused_total: a Host the broker
// does not answer to (DNS rebinding, 403 host_not_allowed) and an Origin that
// may not call it (403 origin_not_allowed).
enum class Refusal : std::uint8_t { host, origin };
inline constexpr std::array<std::string_view, 2> kRefusalReasons = {"host", "origin"};

struct SecurityStats {
    std::array<std::atomic<std::uint64_t>, kAuthFailureReasons.size()> auth_failures{};
    std::array<std::atomic<std::uint64_t>, kLimits> limit_hits{};
    std::array<std::atomic<std::uint64_t>, kTlsFailureReasons.size()> tls_failures{};
    std::array<std::atomic<std::uint64_t>, kRefusalReasons.size()> refused_requests{};
    // The served certificate's notAfter, unix seconds; 0 without TLS.
    std::atomic<std::int64_t> tls_certificate_expiry{0};
};

}  // namespace jobcast::web
