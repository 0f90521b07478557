// Errors of the client itself (the server's own errors arrive as error
// replies). They travel as std::error_code in every completion.
#pragma once

#include <string>
#include <system_error>

namespace jobcast::redis {

enum class Errc {
    connect_failed = 1,  // refused, unreachable, name not resolved
    connect_timeout,     // no connection within ConnectionOptions::connect_timeout
    connection_lost,     // the connection broke before the reply came
    reply_timeout,       // no reply within ConnectionOptions::reply_timeout
    protocol_error,      // the server sent something that is not RESP
    closed,              // the connection or the cluster client was closed
    no_topology,         // no seed node answered CLUSTER SHARDS / CLUSTER SLOTS
    retries_exhausted,   // MOVED/ASK/TRYAGAIN/CLUSTERDOWN or lost connections past the limits
};

const std::error_category& error_category();

inline std::error_code make_error_code(Errc e) {
    return {static_cast<int>(e), error_category()};
}

}  // namespace jobcast::redis

template <>
struct std::is_error_code_enum<jobcast::redis::Errc> : std::true_type {};
