#include "web/security/host_check.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace jobcast::web {

namespace {

std::string_view unbracket(std::string_view host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    return host;
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (auto& ch : out)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return out;
}

// A name as compared: lower case, without one trailing dot ("localhost." is "localhost").
std::string normalized_name(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    return lower(name);
}

struct Parsed {
    int family = 0;  // AF_INET, AF_INET6, or 0: not a literal
    unsigned char bytes[16] = {};
};

Parsed parse_literal(std::string_view host) {
    Parsed out;
    host = unbracket(host);
    // inet_pton takes a C string; a literal is short, so anything long is a name.
    if (host.empty() || host.size() > 45) return out;
    char text[46] = {};
    std::memcpy(text, host.data(), host.size());
    // glibc's inet_pton accepts only four decimal parts for IPv4 ("127.1",
    // "0x7f.0.0.1" and "0177.0.0.1" are not literals here), which is what we want.
    if (::inet_pton(AF_INET, text, out.bytes) == 1) {
        out.family = AF_INET;
    } else if (::inet_pton(AF_INET6, text, out.bytes) == 1) {
        out.family = AF_INET6;
    }
    return out;
}

std::string canonical(const Parsed& parsed) {
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(parsed.family, parsed.bytes, text, sizeof text);
    return text;
}

bool is_unspecified(const Parsed& parsed) {
    std::size_t n = parsed.family == AF_INET ? 4 : 16;
    return parsed.family != 0 &&
           std::all_of(parsed.bytes, parsed.bytes + n, [](unsigned char b) { return b == 0; });
}

}  // namespace

std::optional<std::string> host_part(std::string_view authority) {
    std::string_view host, port;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = authority.substr(1, close - 1);
        auto rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return std::nullopt;
            port = rest.substr(1);
            if (port.empty()) return std::nullopt;
        }
    } else {
        auto colon = authority.rfind(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
            if (port.empty() || host.find(':') != std::string_view::npos) return std::nullopt;
        }
    }
    if (host.empty()) return std::nullopt;
    if (port.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    return std::string(host);
}

bool is_ip_literal(std::string_view host) {
    return parse_literal(host).family != 0;
}

bool is_loopback_literal(std::string_view host) {
    Parsed parsed = parse_literal(host);
    if (parsed.family == AF_INET) return parsed.bytes[0] == 127;
    if (parsed.family != AF_INET6) return false;
    static const unsigned char loopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(parsed.bytes, loopback6, 16) == 0) return true;
    return std::memcmp(parsed.bytes, mapped_prefix, 12) == 0 && parsed.bytes[12] == 127;
}

bool is_loopback_host(std::string_view host) {
    return is_loopback_literal(host) || normalized_name(unbracket(host)) == "localhost";
}

HostAllowList::HostAllowList(std::vector<std::string> names) {
    for (const auto& name : names) {
        if (name == "*") {
            any_ = true;
            continue;
        }
        Parsed parsed = parse_literal(name);
        if (parsed.family != 0) {
            addresses_.push_back(canonical(parsed));
        } else {
            names_.push_back(normalized_name(name));
        }
    }
}

void HostAllowList::add_bound_address(std::string_view address) {
    Parsed parsed = parse_literal(address);
    if (parsed.family == 0) return;  // a name: it resolved to a loopback address (see config)
    if (is_unspecified(parsed)) {
        any_ip_literal_ = true;
    } else {
        addresses_.push_back(canonical(parsed));
    }
}

bool HostAllowList::allows(std::optional<std::string_view> host_header) const {
    if (any_) return true;
    if (!host_header) return false;  // HTTP/1.1 requires Host; every browser sends it
    auto host = host_part(*host_header);
    if (!host) return false;
    if (is_loopback_host(*host)) return true;
    Parsed parsed = parse_literal(*host);
    if (parsed.family != 0) {
        if (any_ip_literal_) return true;
        return std::find(addresses_.begin(), addresses_.end(), canonical(parsed)) !=
               addresses_.end();
    }
    return std::find(names_.begin(), names_.end(), normalized_name(*host)) != names_.end();
}

}  // namespace jobcast::web
