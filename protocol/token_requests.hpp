// The bodies of the per-job token endpoints: POST /v1/jobs/{id}/tokens
// {ttl?, cancel?} and POST /v1/tokens/revoke {token_id | job | owner}. Pure
// parsing with bounds; what the broker allows on top (ttl against
// --max-token-lifetime, who may revoke what) is the web module's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/json.hpp"

namespace jobcast::json {

// A ttl beyond this is refused whatever the broker's maximum (ten years).
inline constexpr std::int64_t kMaxTokenTtlSeconds = 10LL * 365 * 86'400;
// Token ids, job ids and owners named in a revocation: at most this long.
inline constexpr std::size_t kMaxRevokeKeyBytes = 1024;

struct TokenRequest {
    std::optional<std::int64_t> ttl_seconds;  // in [1, kMaxTokenTtlSeconds]; absent: the default
    bool cancel = false;
};
// An empty body is {}.
std::variant<TokenRequest, RequestError> parse_token_request(std::string_view body);

struct RevokeRequest {
    enum class Kind { token, job, owner };
    Kind kind = Kind::token;
    std::string key;  // the token id, job id or owner
};
// Exactly one of token_id, job, owner: a non-empty string.
std::variant<RevokeRequest, RequestError> parse_revoke_request(std::string_view body);

}  // namespace jobcast::json
