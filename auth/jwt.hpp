// JSON Web Tokens (RFC 7519) as jobcast uses them: bearer tokens whose `sub`
// (and optional `tenant`) name the owner of jobs. Verification is pure: no
// I/O after the keys are loaded, and the clock is a parameter. Signatures use
// OpenSSL; OpenSSL and Boost.JSON stay inside jwt.cpp.
//
// Which algorithm a token may use is decided by the configured key, never by
// the token: HS256 only with a shared secret, RS256 only with an RSA public
// key, ES256 only with a P-256 public key; `alg: none` is always refused.
// That closes the classic confusions (an RSA public key used as an HMAC secret).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jobcast::auth {

struct JwtConfig {
    std::string hs256_secret;          // empty: no HS256
    std::string public_key_file;       // PEM public key(s) or a JWKS (JSON) file; empty: none
    std::string issuer;                // when set, `iss` must equal it
    std::string audience;              // when set, `aud` must be it or contain it
    std::int64_t leeway_seconds = 30;  // clock skew allowed on exp / nbf
    // The longest a token may live: exp - now (beyond the leeway) and, when
    // the token has iat, exp - iat. With a maximum, a token needs exp.
    // 0: no maximum, exp optional.
    std::int64_t max_lifetime_seconds = 30 * 86'400;

    bool enabled() const { return !hs256_secret.empty() || !public_key_file.empty(); }
};

// Why a token was refused; also the `reason` label of jobcast_auth_failures_total.
enum class JwtFailure {
    missing,        // no token at all (the caller decides whether that is a failure)
    malformed,      // not three base64url parts of JSON objects, a claim of the wrong type,
                    // or exp / nbf / iat outside [0, 9999-12-31T23:59:59Z]
    algorithm,      // alg none, unknown, or not the one the configured keys allow
    signature,      // no configured key verifies it
    expired,        // exp + leeway <= now
    not_yet_valid,  // nbf - leeway > now
    issuer,         // iss differs from the configured issuer
    audience,       // aud does not name the configured audience
    subject,        // sub missing, empty, too long, with control characters, or reserved
    lifetime,       // no exp, or a lifetime beyond JwtConfig::max_lifetime_seconds
};
std::string_view to_string(JwtFailure failure);

// What a per-job token (one the broker mints, POST /v1/jobs/{id}/tokens)
// grants: reading one job, and cancelling it when `cancel`. A refresh keeps
// the session (its id and start), so the session's start bounds every token
// of it and revoking the session revokes them all.
struct JobGrant {
    std::string job;
    bool cancel = false;
    std::string token_id;                 // jti
    std::string session_id;               // sid: the jti of the session's first token
    std::int64_t session_started_ms = 0;  // sid_ms: when that first token was minted
};

struct JwtClaims {
    std::string subject;
    std::string tenant;           // empty when the token has none
    std::int64_t expires_at = 0;  // unix seconds, at most year 9999; 0: the token does not expire
    // Set when the token carries a `job` claim: it reads that job only,
    // whoever signed it. Its jti, sid and sid_ms must then be present.
    std::optional<JobGrant> grant;

    // The job owner: "tenant/sub", or "sub" without a tenant, where '%' and '/'
    // in sub are written %25 and %2F (a tenant has no '/'), so no two
    // (tenant, sub) pairs share an owner.
    std::string owner() const;
};

struct JwtResult {
    std::optional<JwtClaims> claims;  // set when valid
    JwtFailure failure = JwtFailure::malformed;
    std::string message;  // for the client: what is wrong, no secrets
};

class JwtVerifier {
  public:
    // Loads the keys. Throws std::invalid_argument with a clear message for a
    // file that cannot be read or holds no usable key.
    explicit JwtVerifier(const JwtConfig& config);
    ~JwtVerifier();
    JwtVerifier(const JwtVerifier&) = delete;
    JwtVerifier& operator=(const JwtVerifier&) = delete;

    // Never throws; any input is safe.
    JwtResult verify(std::string_view token, std::int64_t now_unix_seconds) const;

    // "HS256", "RS256", "ES256": what this verifier accepts, for the startup log.
    std::vector<std::string> algorithms() const;

    struct Key;

  private:
    JwtConfig config_;
    std::vector<std::unique_ptr<Key>> keys_;
};

// The longest token accepted; longer is `malformed` before any parsing.
inline constexpr std::size_t kMaxTokenBytes = 8 * 1024;

struct MintOptions {
    std::string subject;
    std::string tenant;
    std::string issuer;
    std::string audience;
    std::int64_t issued_at = 0;
    std::int64_t ttl_seconds = 3600;  // 0: no exp claim; exp saturates instead of overflowing
    std::string key_id;               // the header's kid; empty: none
    std::optional<JobGrant> grant;    // the job, cancel, jti, sid and sid_ms claims
};
// An HS256 token, for development (`jobcast token`), tests, and the broker's
// per-job tokens.
std::string mint_hs256(std::string_view secret, const MintOptions& options);

// The kid of a token's header; empty when there is none or the header does
// not parse (verify then says why). Never throws.
std::string key_id(std::string_view token);

// HMAC-SHA256(secret, label): a 32-byte key for one purpose derived from a
// secret kept for another.
std::string derive_key(std::string_view secret, std::string_view label);

// Base64url without padding (RFC 7515 section 2). decode returns nullopt for
// characters outside the alphabet, padding, or an impossible length.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace jobcast::auth
