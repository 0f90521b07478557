// Which host names the broker answers to. A browser page whose DNS name is
// re-pointed at 127.0.0.1 (DNS rebinding) reaches a loopback broker with its
// own name in Host, and as the Origin too, so an open broker serves only Host
// values that no attacker can make a browser send: loopback literals,
// localhost, the address it is bound to, and names the operator lists
// (--allowed-host). Pure: no sockets, no clock.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jobcast::web {

// The host part of HOST[:PORT] as a Host header or a listen address carries
// it: "[::1]:8080" -> "::1", "a.example:80" -> "a.example", "a.example" ->
// "a.example". nullopt when it is malformed (empty host, an unclosed bracket,
// a port that is not digits, anything after the bracket but a port).
std::optional<std::string> host_part(std::string_view authority);

// An IP address literal: a dotted quad (exactly four decimal parts) or an IPv6
// address, with or without brackets.
bool is_ip_literal(std::string_view host);

// A literal loopback address: 127.0.0.0/8 as a dotted quad, ::1 (in any IPv6
// spelling, bracketed or not), or an IPv4-mapped ::ffff:127.x.y.z. Names are
// never loopback here, even "127.example.com".
bool is_loopback_literal(std::string_view host);

// A loopback literal or the name "localhost" (any case, one trailing dot allowed).
bool is_loopback_host(std::string_view host);

// The Host values one broker serves. Thread-safe to read once built.
class HostAllowList {
  public:
    // `names`: --allowed-host values, compared without case; "*" allows every host.
    explicit HostAllowList(std::vector<std::string> names = {});

    // The literal address the listen socket is bound to. An unspecified
    // address (0.0.0.0, ::) stands for every local address: then every IP
    // literal is served (a literal cannot be re-pointed by DNS).
    void add_bound_address(std::string_view address);

    // True when the Host header value (nullopt: none was sent) may be served.
    bool allows(std::optional<std::string_view> host_header) const;

  private:
    std::vector<std::string> names_;      // lower case, without a trailing dot
    std::vector<std::string> addresses_;  // canonical IP literals
    bool any_ = false;
    bool any_ip_literal_ = false;
};

}  // namespace jobcast::web
