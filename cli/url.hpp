// The broker's address as the user gives it (--url / JOBCAST_URL) and the
// request targets built on it. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jobcast::cli {

struct ServerUrl {
    bool tls = false;
    std::string host;       // without brackets for IPv6
    std::string port;       // always set: "80"/"443" when the URL has none
    std::string base_path;  // "" or "/prefix" (no trailing slash), for a broker behind a proxy

    // "host:port", or "host" on the scheme's default port (the Host header).
    std::string authority() const;
    // base_path + path, e.g. target("/v1/jobs") -> "/prefix/v1/jobs".
    std::string target(std::string_view path) const;
};

// http://HOST[:PORT][/PATH] or https://...; nullopt for anything else
// (other schemes, user info, a query or fragment, a bad port).
std::optional<ServerUrl> parse_server_url(std::string_view url);

// A path segment or query value: everything but unreserved characters
// (A-Z a-z 0-9 - . _ ~) is %-escaped.
std::string percent_encode(std::string_view text);

// "?k1=v1&k2=v2" from the pairs whose value is not empty; "" when none is.
std::string query_string(const std::vector<std::pair<std::string, std::string>>& pairs);

}  // namespace jobcast::cli
