#include "cli/url.hpp"

namespace jobcast::cli {

std::string ServerUrl::authority() const {
    const bool default_port = (tls && port == "443") || (!tls && port == "80");
    const std::string name = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return default_port ? name : name + ":" + port;
}

std::string ServerUrl::target(std::string_view path) const {
    return base_path + std::string(path);
}

std::optional<ServerUrl> parse_server_url(std::string_view url) {
    ServerUrl out;
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
    out.base_path = std::string(path);
    return out;
}

std::string percent_encode(std::string_view text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(text.size());
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                                c == '~';
        if (unreserved) {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        }
    }
    return out;
}

std::string query_string(const std::vector<std::pair<std::string, std::string>>& pairs) {
    std::string out;
    for (const auto& [key, value] : pairs) {
        if (value.empty()) continue;
        out += out.empty() ? '?' : '&';
        out += percent_encode(key);
        out += '=';
        out += percent_encode(value);
    }
    return out;
}

}  // namespace jobcast::cli
