// The Durable Streams log (persistence/stream_log.hpp) on Redis Cluster, for
// cluster mode: what SqliteStreamLog is to one broker, forks included. A
// stream belongs to the partition of its owner (cluster/partitions.hpp), so
// every key of it, and of every stream it forks from, shares one hash slot;
// its id carries the partition, so a read by id finds the slot. The Function
// library's jc_stream_* functions
// (cluster/jobcast_v1.lua) make each write one atomic call; the rules of an
// append are domain/stream_rules' own, decided here on the stream as stored
// and kept only if nobody changed it meanwhile (else decided again).
//
// Durable before visible, as for job events (CLUSTER.md §5.4): each write
// goes to the slot's primary over this log's own connection, pipelined with
// WAIT, and is answered only once WAIT says the replicas have it and the
// node still owns the slot; then the confirmed watermark (cseq, cclosed) is
// raised. Readers see a stream only up to its watermark: one that finds more
// (its writer died, or still waits) confirms it itself the same way first,
// so no reader on any broker sees what a failover could take back. A write
// whose answer was lost is sent again: taken appends and creations are
// remembered by op id, refusals are decided again.
//
// Expiry is Redis' own: every key of a stream expires with it (its TTL after
// the last read or write, its Expires-At, or else the retention after its
// last write), so expire() has nothing to delete; the protocol's rule
// (domain::stream_expired) still decides, at the caller's time, whether a
// stream is there.
//
// Other brokers' readers learn of a change over sharded pub/sub: after the
// watermark moved, the writer publishes on the stream's channel; a broker
// with readers waiting on a stream subscribes to it, and on each
// (re)subscription and each watch looks whether the stream already moved
// past its readers (pub/sub loses what is published while not subscribed).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "cluster/partitions.hpp"
#include "cluster/replica_wait.hpp"
#include "persistence/stream_log.hpp"

namespace jobcast::redis {
class Cluster;
}

namespace jobcast::cluster {

// WAIT as the store's (RedisStoreConfig).
struct RedisStreamLogConfig : ReplicaWait {
    // As the store's: how long a stream without a TTL or Expires-At is kept
    // after its last write.
    std::chrono::milliseconds retention{std::chrono::hours(24 * 7)};
    // How long a write keeps trying while the cluster moves slots, fails over
    // or cannot replicate, before it throws store::StoreError (its outcome
    // unknown: the producer's retry settles it).
    std::chrono::milliseconds write_timeout{10'000};
};

class RedisStreamLog final : public store::StreamLog {
  public:
    // `cluster` and `partitions` outlive the log; the library jobcast_v1 is
    // loaded on the primaries (open_redis_store does it).
    RedisStreamLog(redis::Cluster& cluster, const Partitions& partitions,
                   RedisStreamLogConfig config = {});
    ~RedisStreamLog() override;
    RedisStreamLog(const RedisStreamLog&) = delete;
    RedisStreamLog& operator=(const RedisStreamLog&) = delete;

    store::StreamWriteResult create(store::CreateStream op) override;
    store::StreamWriteResult append(store::AppendToStream op) override;
    store::StreamWrite remove(const std::string& name, const std::string& owner,
                              std::int64_t now_ms) override;
    void touch(std::int64_t id, std::int64_t now_ms) override;
    std::optional<store::StreamInfo> get(const std::string& name, const std::string& owner,
                                         std::int64_t now_ms) override;
    std::vector<store::StreamMessage> read(std::int64_t id, std::uint64_t after,
                                           std::size_t max_bytes) override;
    std::size_t expire(std::int64_t now_ms) override;

    void listen(ChangeListener listener) override;
    void watch(std::int64_t id, std::uint64_t after) override;
    void unwatch(std::int64_t id) override;

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace jobcast::cluster
