// A Redis Cluster client: the slot map from CLUSTER SHARDS (CLUSTER SLOTS on
// servers without it), each command routed to the primary owning its key's
// slot over one pipelined connection per node, and the cluster's answers
// followed: MOVED (update the map, refresh it in the background, resend), ASK
// (ASKING + resend once at the target), TRYAGAIN and CLUSTERDOWN (bounded
// retries with backoff), lost connections (reconnect, refresh the topology,
// resend; a node that stops answering counts as lost). A command may thus run
// more than once when a connection breaks after it was sent: what callers
// send must be idempotent.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "redis/connection.hpp"
#include "redis/reply.hpp"
#include "redis/resp.hpp"

namespace jobcast::redis {

class Loop;

struct ClusterOptions {
    std::vector<Endpoint> seeds;  // any nodes of the cluster
    ConnectionOptions connection;
    int max_redirects = 16;  // MOVED + ASK per command
    int max_retries = 8;     // TRYAGAIN, CLUSTERDOWN, lost connections, no topology
    // Backoff between retries: doubles from first_retry_delay up to max_retry_delay.
    std::chrono::milliseconds first_retry_delay{25};
    std::chrono::milliseconds max_retry_delay{1000};
    // How long one node is given to answer a topology query before the next
    // is asked (a stopped node answers nothing and keeps its connection).
    std::chrono::milliseconds topology_answer{1000};
};

// One shard of the topology: its slot ranges (inclusive), its primary, its replicas.
struct Shard {
    std::vector<std::pair<std::uint16_t, std::uint16_t>> slots;
    Endpoint primary;
    std::vector<Endpoint> replicas;
};

// Parses a CLUSTER SHARDS (Redis ≥ 7.0) or CLUSTER SLOTS reply; shards
// without a primary are left out. Nothing if the reply has another shape.
std::optional<std::vector<Shard>> parse_cluster_shards(const Reply& reply);
std::optional<std::vector<Shard>> parse_cluster_slots(const Reply& reply);

// A "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" error. An empty
// host means the node that answered (`from`).
struct Redirect {
    enum class Kind { moved, ask };
    Kind kind;
    std::uint16_t slot;
    Endpoint target;
};
std::optional<Redirect> parse_redirect(std::string_view error, const Endpoint& from);

// The slot a command is routed by: its first key — command[1] for most
// commands, the first key after the key count for FCALL/FCALL_RO/EVAL*.
std::uint16_t command_slot(const Command& command);

// The cluster's answers a client followed or retried, by cause. Counters only grow.
struct ClusterStats {
    std::uint64_t moved = 0;        // MOVED: the slot has another owner
    std::uint64_t ask = 0;          // ASK: the slot is migrating
    std::uint64_t tryagain = 0;     // TRYAGAIN: keys of a migrating slot
    std::uint64_t clusterdown = 0;  // CLUSTERDOWN: the cluster cannot serve the slot
    std::uint64_t connection = 0;   // a command re-sent after a lost connection or no topology
};

class Cluster {
  public:
    // Nothing is connected until the first command (or refresh_topology).
    Cluster(Loop& loop, ClusterOptions options);
    // Closes every connection; completions still pending get Errc::closed.
    ~Cluster();
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    // Asynchronous facade, callable from any thread; `done` runs on the loop
    // thread. Routed by the slot of command[1] (the key of most commands), or
    // by the slot given.
    void async_exec(Command command, Completion done);
    void async_exec(std::uint16_t slot, Command command, Completion done);
    // To one node, for commands without a key (FUNCTION LOAD on each primary,
    // CLUSTER INFO): no redirects followed, no retries.
    void async_exec_at(Endpoint node, Command command, Completion done);

    // Synchronous facade for threads other than the loop's: posts and waits.
    // Server error replies are returned; client errors throw std::system_error.
    Reply exec(Command command);
    Reply exec(std::uint16_t slot, Command command);
    Reply exec_at(Endpoint node, Command command);

    // Loop thread only (ShardedPubSub, the store's engine).
    Loop& loop() const;
    const ClusterOptions& options() const;
    // The primary owning a slot, if the slot map has one.
    std::optional<Endpoint> primary_of(std::uint16_t slot) const;
    std::vector<Endpoint> primaries() const;
    // The topology of the last refresh: shards with slots, in CLUSTER SHARDS order.
    std::vector<Shard> shards() const;

    // Any thread.
    ClusterStats stats() const;
    // Reloads the slot map from the first known node that answers, starting
    // with `ask_first` (a node that just said its slots changed knows best);
    // concurrent calls share one reload. `done` gets Errc::no_topology if no
    // node answered.
    void refresh_topology(std::function<void(std::error_code)> done,
                          std::optional<Endpoint> ask_first = std::nullopt);

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace jobcast::redis
