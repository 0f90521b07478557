// http://HOST[:PORT][/PATH] and https://... as users give them (the CLI's
// --url, the worker's OpenAI-compatible base URL). Pure; Boost.URL parses them
// and stays inside http_url.cpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace jobcast {

struct HttpUrl {
    bool tls = false;
    std::string host;  // without brackets for IPv6 literals
    std::string port;  // always set: "80"/"443" when the URL has none
    std::string path;  // "" or "/prefix" (no trailing slash)

    // "host:port", or "host" on the scheme's default port (the Host header).
    std::string authority() const {
        const bool default_port = (tls && port == "443") || (!tls && port == "80");
        const std::string name = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        return default_port ? name : name + ":" + port;
    }
};

// nullopt for anything else: other schemes, user info, a query or fragment,
// a port that is not 1..65535, an IPvFuture literal, a host name whose
// %-escapes decode to characters a host name cannot hold. A %-escaped host
// name is decoded; the path keeps its escapes (it becomes a request target).
std::optional<HttpUrl> parse_http_url(std::string_view url);

}  // namespace jobcast
