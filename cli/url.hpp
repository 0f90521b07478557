// The broker's address as the user gives it (--url / JOBCAST_URL) and the
// request targets built on it. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/http_url.hpp"

namespace jobcast::cli {

// The broker's base URL; `path` is a prefix for a broker behind a proxy.
struct ServerUrl : HttpUrl {
    // path + p, e.g. target("/v1/jobs") -> "/prefix/v1/jobs".
    std::string target(std::string_view p) const { return path + std::string(p); }
};

// http://HOST[:PORT][/PATH] or https://...; nullopt for anything else.
std::optional<ServerUrl> parse_server_url(std::string_view url);

// A path segment or query value: everything but unreserved characters
// (A-Z a-z 0-9 - . _ ~) is %-escaped.
std::string percent_encode(std::string_view text);

// "?k1=v1&k2=v2" from the pairs whose value is not empty; "" when none is.
std::string query_string(const std::vector<std::pair<std::string, std::string>>& pairs);

}  // namespace jobcast::cli
