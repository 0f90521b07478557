// Per-job browser tokens: JWTs the broker mints for one job of their owner
// (POST /v1/jobs/{id}/tokens), verifies, refreshes and revokes.
//
// - Key: HS256 with a key the broker owns (--job-token-secret, else one
//   derived from the store's random key: the same for every broker of one
//   store, and it survives restarts). The header's kid is kKeyId, which is
//   how a job token is told from the identity provider's tokens.
// - Scope: the `job` claim (JobGrant). grant_permits() is the one check of
//   that scope; every read path of a job goes through it (the route gate of
//   SecurityContext::authenticate for REST, SSE, long-poll, snapshot and
//   Durable Streams reads; the WebSocket's subscribe, cancel and feed ops).
// - Sessions: the first token an owner mints starts a session (sid = its
//   jti, sid_ms = when); a job token asking for a new one of its own job gets
//   a refresh in the same session. No token of a session lives past sid_ms
//   + the ceiling (--max-token-lifetime), however often it is refreshed.
// - Revocation: of a session (by any of its token ids), of every token of a
//   job, or of every job token of an owner; the two last cover the sessions
//   started up to the revocation. A revocation is kept (in memory and in the
//   store) until every token it covers has expired, and it closes the open
//   streams that rely on such a token at once. Two of the same kind, owner
//   and key merge: the later revocation time and expiry of the two. In
//   cluster mode the store tells every broker of the revocations the others
//   take (apply), so they hold, and close streams, on every broker.
#pragma once

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
#include "common/clock.hpp"
#include "persistence/token_revocations.hpp"

namespace jobcast::web {

enum class JobAccess { read, cancel, mint };

// Whether a caller holding `grant` may `access` the job `job_id`: an owner's
// own token (no grant) may do anything with the jobs it owns (the owner check
// is the caller's); a job token only with its job, and cancel only when it
// says so.
bool grant_permits(const std::optional<auth::JobGrant>& grant, std::string_view job_id,
                   JobAccess access);

struct JobTokenConfig {
    std::string key;                             // 32+ bytes
    std::int64_t max_lifetime_seconds = 86'400;  // the session ceiling, > 0
    std::int64_t default_ttl_seconds = 900;      // capped at the ceiling
    std::int64_t leeway_seconds = 30;
};

class JobTokens : public std::enable_shared_from_this<JobTokens> {
  public:
    static constexpr std::string_view kKeyId = "jobcast-job";
    static constexpr std::string_view kIssuer = "jobcast";

    // `store` keeps revocations across restarts (null: memory only); those in
    // force are loaded now. Throws std::invalid_argument for a short key,
    // store::StoreError when the store cannot be read.
    JobTokens(JobTokenConfig config, std::unique_ptr<store::TokenRevocations> store,
              const Clock& clock = Clock::system());

    const JobTokenConfig& config() const { return config_; }

    struct Minted {
        std::string token;
        std::int64_t expires_at = 0;          // unix seconds
        std::int64_t session_expires_at = 0;  // no refresh goes past it
        auth::JobGrant grant;
    };
    // A token for `job` of `owner`: a new session, or with `parent` (the job
    // token asking) a refresh in its session, cancel only if the parent may.
    // nullopt when the parent's session has reached its ceiling.
    std::optional<Minted> mint(const std::string& owner, const std::string& job,
                               std::int64_t ttl_seconds, bool cancel,
                               const std::optional<auth::JobGrant>& parent,
                               std::int64_t now_ms) const;
    // A job token's signature and claims. The owner is its sub as written.
    auth::JwtResult verify(std::string_view token, std::int64_t now_seconds) const;

    bool revoked(const std::string& owner, const auth::JobGrant& grant) const;
    // Applies `revocation` (kind, owner, key; the times are set here), closes
    // the streams it covers, then stores it; returns how many streams it
    // closed. Throws store::StoreError when storing fails (it holds until
    // this broker stops). For a "token" revocation `key` may be any token id
    // of the session.
    std::size_t revoke(store::TokenRevocation revocation, std::int64_t now_ms);
    // Revocations already stored, taken on another broker sharing the store
    // (cluster mode): each one this broker does not hold yet is held and
    // closes the streams it covers; those over by `now_ms` are ignored.
    // Returns how many streams they closed.
    std::size_t apply(const std::vector<store::TokenRevocation>& revocations, std::int64_t now_ms);

    // Calls `on_revoked` (once, on the revoking thread) when a revocation
    // covers the token an open stream relies on, until the returned handle
    // is dropped.
    std::shared_ptr<void> watch(std::string owner, auth::JobGrant grant,
                                std::function<void()> on_revoked);

  private:
    struct Watcher {
        std::string owner;
        auth::JobGrant grant;
        std::function<void()> on_revoked;
    };
    static std::string index_key(std::string_view kind, std::string_view owner,
                                 std::string_view key);
    bool covers(const store::TokenRevocation& revocation, const std::string& owner,
                const auth::JobGrant& grant) const;
    // Holds `revocation`, merged with the one of the same kind, owner and key;
    // the merged one, or nullptr if that changed nothing. mutex_ held.
    const store::TokenRevocation* hold(const store::TokenRevocation& revocation);
    // Moves the callbacks of the watchers `revocation` covers to `close`. mutex_ held.
    void take_covered(const store::TokenRevocation& revocation,
                      std::vector<std::function<void()>>& close);
    void unwatch(std::uint64_t id);

    JobTokenConfig config_;
    auth::JwtVerifier verifier_;
    std::unique_ptr<store::TokenRevocations> store_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, store::TokenRevocation> revocations_;  // by index_key
    std::unordered_map<std::uint64_t, Watcher> watchers_;
    std::uint64_t next_watcher_ = 0;
};

}  // namespace jobcast::web
