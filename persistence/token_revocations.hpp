// Revoked per-job tokens, kept in the store so a revocation outlives the
// broker that made it (the web module decides what a revocation covers; see
// web/security/job_tokens.hpp). In SQLite: a connection of its own, not the
// writer's: revocations are rare, and a write waits at most the busy timeout
// for the writer's transaction. On the Redis Cluster: cluster/
// redis_token_revocations.hpp.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "protocol/model.hpp"

namespace jobcast::store {

struct TokenRevocation {
    std::string kind;  // "token" (key: a session id), "job" (key: a job id), "owner"
    std::string owner;
    std::string key;
    UnixMs revoked_at = 0;
    UnixMs until = 0;  // when every token it covers has expired
};

class TokenRevocations {
  public:
    virtual ~TokenRevocations() = default;
    // The revocations still in force at `now`. Throws StoreError.
    virtual std::vector<TokenRevocation> load(UnixMs now) = 0;
    // Stores `revocation` (merged with one of the same kind, owner and key:
    // the later revoked_at and the later until of the two) and deletes those
    // over by `now`. Throws StoreError.
    virtual void add(const TokenRevocation& revocation, UnixMs now) = 0;
};

// The revocations of the (migrated) database at `path`. Throws StoreError.
std::unique_ptr<TokenRevocations> open_token_revocations(const std::string& path,
                                                         std::chrono::milliseconds busy_timeout);

}  // namespace jobcast::store
