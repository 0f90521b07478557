// Which answers of a primary make a write worth sending again: the cluster
// moving a slot, failing over or refusing writes for now. Every write the
// Redis store and the Redis stream log send is idempotent, so a re-sent one
// answers as the first would have. Internal to cluster/.
#pragma once

#include <string_view>

#include "redis/reply.hpp"

namespace jobcast::cluster {

// Why a write is sent again: a lost connection, or a server error.
enum class Retry { connection, moved, ask, tryagain, clusterdown, refused, none };

inline Retry retry_kind(const redis::Reply& reply) {
    const std::string_view code = reply.error_code();
    if (code == "MOVED") return Retry::moved;
    if (code == "ASK") return Retry::ask;
    if (code == "TRYAGAIN") return Retry::tryagain;
    if (code == "CLUSTERDOWN") return Retry::clusterdown;
    if (code == "OOM" || code == "NOREPLICAS" || code == "READONLY" || code == "LOADING" ||
        code == "BUSY" || code == "MASTERDOWN" || code == "NOSCRIPT")
        return Retry::refused;
    return Retry::none;
}

}  // namespace jobcast::cluster
