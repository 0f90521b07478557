// http://HOST[:PORT][/PATH] and https://... as users give them (the CLI's
// --url, the worker's OpenAI-compatible base URL). Pure, header-only.
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
// a port that is not 1..65535.
inline std::optional<HttpUrl> parse_http_url(std::string_view url) {
    HttpUrl out;
    if (url.starts_with("https://")) {
        out.tls = true;
        url.remove_prefix(8);
    } else if (url.starts_with("http://")) {
        url.remove_prefix(7);
    } else {
        return std::nullopt;
    }
    const auto slash = url.find('/');
    const auto authority = url.substr(0, slash);
    auto path = slash == std::string_view::npos ? std::string_view{} : url.substr(slash);
    if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;

    std::string_view port;
    if (authority.front() == '[') {  // [IPv6]:port
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        out.host = std::string(authority.substr(1, close - 1));
        const auto rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return std::nullopt;
            port = rest.substr(1);
        }
    } else {
        const auto colon = authority.find(':');
        out.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    }
    if (out.host.empty()) return std::nullopt;

    if (port.empty()) {
        out.port = out.tls ? "443" : "80";
    } else {
        if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) {
            return std::nullopt;
        }
        const auto number = std::stoi(std::string(port));
        if (number < 1 || number > 65535) return std::nullopt;
        out.port = std::string(port);
    }

    if (path.find_first_of("?# \r\n") != std::string_view::npos) return std::nullopt;
    while (!path.empty() && path.back() == '/')
        path.remove_suffix(1);
    out.path = std::string(path);
    return out;
}

}  // namespace jobcast
