// Per-job token revocations on the Redis Cluster (cluster mode): a revocation
// taken on any broker holds on every broker, outlives them all, and closes
// the streams relying on it wherever they are (issue 22; the rules of what a
// revocation covers are web/security/job_tokens.hpp's).
//
// Key layout: one hash tag for all of them, so one script sees them all and
// one shard channel lives beside them (revocations are few and small):
// - jc:{revocations}:r:<kind>\n<owner>\n<key>  HASH kind, owner, key,
//   revoked_at, until (unix ms). It expires at `until`, when every token it
//   covers has expired.
// - jc:{revocations}:index  ZSET of "<kind>\n<owner>\n<key>", scored by
//   `until`: what a load reads. Each add prunes the members that are over;
//   the key expires with the last of them.
// - jc:{revocations}:version  STRING, a random value each add sets: a broker
//   that finds it changed reloads. Expires with the index.
// - shard channel jc:{revocations}:revoked: each revocation as stored,
//   published once the replicas have it.
//
// An add is one script — a revocation of the same kind, owner and key merges
// with the one stored: the later revoked_at and the later until of the two —
// followed by WAIT on the same connection: like every write of the Redis store
// (CLUSTER.md §5.3) it is acknowledged only once the replicas have it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/replica_wait.hpp"
#include "common/clock.hpp"
#include "persistence/token_revocations.hpp"

namespace jobcast::redis {
class Cluster;
}

namespace jobcast::cluster {

// WAIT as the store's: an add counts once the replicas have it.
struct RedisRevocationsConfig : ReplicaWait {
    // How long an add keeps trying (a failover, a moved slot, a shard
    // without its replica) before it throws.
    std::chrono::milliseconds add_timeout{5000};
};

// The payload of the revocations' channel: msgpack [kind, owner, key,
// revoked_at, until]. Decoding refuses anything else.
std::string encode_revocation(const store::TokenRevocation& revocation);
std::optional<store::TokenRevocation> decode_revocation(std::string_view payload);

// The TokenRevocations port on the cluster. load() and add() block: call them
// from any thread but the cluster's loop. `cluster` outlives this.
class RedisTokenRevocations final : public store::TokenRevocations {
  public:
    RedisTokenRevocations(redis::Cluster& cluster, RedisRevocationsConfig config);

    std::vector<store::TokenRevocation> load(UnixMs now) override;
    // Stored and replicated, then published to every broker.
    void add(const store::TokenRevocation& revocation, UnixMs now) override;

  private:
    redis::Cluster& cluster_;
    const RedisRevocationsConfig config_;
};

// Follows the revocations every broker takes, and hands them over on the
// cluster's loop thread: each one published, as it comes; and, since pub/sub
// is at-most-once, the whole set in force again each time the channel is
// (re)subscribed (a broker that was cut off catches up on reconnect) and
// whenever a check every `reload_interval` finds the version changed (a
// message lost with a failed publish). What is handed over twice is the
// receiver's to ignore.
class RevocationFollower {
  public:
    using Deliver = std::function<void(std::vector<store::TokenRevocation>)>;

    // `cluster` outlives the follower.
    RevocationFollower(redis::Cluster& cluster, Deliver deliver,
                       std::chrono::milliseconds reload_interval = std::chrono::seconds(1),
                       const Clock& clock = Clock::system());
    // Stops first.
    ~RevocationFollower();
    RevocationFollower(const RevocationFollower&) = delete;
    RevocationFollower& operator=(const RevocationFollower&) = delete;

    // Nothing is handed over once it returns. Not from the loop thread; idempotent.
    void stop();

    struct State;

  private:
    std::shared_ptr<State> state_;
};

}  // namespace jobcast::cluster
