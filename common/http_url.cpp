#include "common/http_url.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/rfc/sub_delim_chars.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>

namespace jobcast {

std::optional<HttpUrl> parse_http_url(std::string_view url) {
    namespace urls = boost::urls;
    const auto parsed = urls::parse_uri(url);
    if (!parsed) return std::nullopt;
    const urls::url_view& u = *parsed;

    HttpUrl out;
    if (u.scheme_id() == urls::scheme::https) {
        out.tls = true;
    } else if (u.scheme_id() != urls::scheme::http) {
        return std::nullopt;
    }
    if (!u.has_authority() || u.has_userinfo() || u.has_query() || u.has_fragment()) {
        return std::nullopt;
    }

    switch (u.host_type()) {
        case urls::host_type::ipv4:
        case urls::host_type::ipv6:  // host_address() drops the brackets
            out.host = u.host_address();
            break;
        case urls::host_type::name: {
            out.host = u.host_name();
            // The decoded name goes into Host headers and TLS SNI: nothing a
            // %-escape could smuggle in ('/', ':', '@', spaces, control bytes).
            constexpr auto name_chars = urls::unreserved_chars + urls::sub_delim_chars;
            if (!std::all_of(out.host.begin(), out.host.end(),
                             [&](char c) { return name_chars(c); })) {
                return std::nullopt;
            }
            break;
        }
        default:  // IPvFuture
            return std::nullopt;
    }
    if (out.host.empty()) return std::nullopt;

    const std::string_view port = u.port();
    if (port.empty()) {
        out.port = out.tls ? "443" : "80";
    } else {
        if (port.size() > 5) return std::nullopt;
        const auto number = std::stoi(std::string(port));
        if (number < 1 || number > 65535) return std::nullopt;
        out.port = std::string(port);
    }

    std::string_view path = u.encoded_path();
    // Boost.URL 1.81 lets a path without its leading '/' follow the authority,
    // so "http://h:80x" parses as port "80", path "x": refuse it here.
    if (!path.empty() && path.front() != '/') return std::nullopt;
    while (!path.empty() && path.back() == '/')
        path.remove_suffix(1);
    out.path = std::string(path);
    return out;
}

}  // namespace jobcast
