#include "broker/security_config.hpp"

#include <boost/program_options.hpp>
#include <fstream>
#include <sstream>

#include "broker/broker_config.hpp"
#include "common/curve_keys.hpp"
#include "web/security/host_check.hpp"

namespace po = boost::program_options;

namespace jobcast::broker {

bool is_loopback_host(std::string_view host) {
    return web::is_loopback_host(host);
}

bool zmq_endpoint_is_local(std::string_view endpoint) {
    auto scheme_end = endpoint.find("://");
    if (scheme_end == std::string_view::npos) return false;
    auto scheme = endpoint.substr(0, scheme_end);
    // Only these never leave the machine (ipc is a file, guarded by its mode).
    if (scheme == "ipc" || scheme == "inproc") return true;
    // tcp, ws, wss, udp, pgm, epgm, tipc, vmci, norm, ...: HOST:PORT[/path].
    auto address = endpoint.substr(scheme_end + 3);
    address = address.substr(0, address.find('/'));
    std::string_view host;
    if (!address.empty() && address.front() == '[') {
        host = address.substr(0, address.find(']') + 1);
    } else {
        host = address.substr(0, address.rfind(':'));
    }
    return is_loopback_host(host);
}

void add_security_options(po::options_description& desc, BrokerConfig& c, SecurityFlags& flags) {
    auto& jwt = c.security.jwt;
    auto& limits = c.security.limits;
    // clang-format off
    desc.add_options()
        ("jwt-secret", po::value(&jwt.hs256_secret),
            "turn on auth with HS256 bearer tokens signed with this secret (32+ bytes); "
            "the token's sub (and tenant) claim owns the jobs")
        ("jwt-secret-file", po::value(&flags.jwt_secret_file),
            "read the HS256 secret from this file (keeps it out of the process list)")
        ("jwt-public-key", po::value(&jwt.public_key_file),
            "turn on auth with RS256/ES256 tokens: a PEM public key file or a JWKS (JSON) file")
        ("job-token-secret", po::value(&c.security.job_token_secret),
            "the HS256 key (32+ bytes) of the per-job tokens this broker mints "
            "(POST /v1/jobs/{id}/tokens). Default: a key derived from the store's own random "
            "key, the same for every broker of one store and across restarts")
        ("token-admin", po::value(&c.security.token_admins)->composing(),
            "an owner (a token's sub, or tenant/sub) who may revoke the job tokens of any job "
            "and any owner; repeatable")
        ("jwt-issuer", po::value(&jwt.issuer), "when set, tokens must have this iss")
        ("jwt-audience", po::value(&jwt.audience), "when set, tokens' aud must name this")
        ("jwt-leeway", po::value(&jwt.leeway_seconds)->default_value(jwt.leeway_seconds),
            "clock skew allowed on exp and nbf, seconds")
        ("max-token-lifetime", po::value(&flags.max_token_lifetime)
            ->default_value(flags.max_token_lifetime),
            "the longest a token may live (exp - now, and exp - iat); tokens without exp are "
            "refused. 0: no maximum, exp optional")
        ("allowed-origin", po::value(&c.security.allowed_origins)->composing(),
            "a browser Origin (https://app.example.com) allowed to use WebSocket and, with "
            "CORS, REST/SSE; repeatable; '*' allows any. Default: same origin only")
        ("allowed-host", po::value(&c.security.allowed_hosts)->composing(),
            "a Host name (broker.internal) the broker answers to besides localhost, loopback "
            "addresses and the address it is bound to; repeatable; '*' answers to any. Checked "
            "when auth is off (DNS rebinding), and with auth whenever given")
        ("insecure-no-auth", po::bool_switch(&c.insecure_no_auth),
            "serve HTTP beyond loopback without auth (anyone who can connect sees every job)")
        ("max-connections-per-owner", po::value(&limits.connections_per_owner)
            ->default_value(limits.connections_per_owner),
            "open WebSocket, SSE and long-poll (wait>0) connections per owner; over it, 429 and "
            "the connection closes (auth on; 0: no limit)")
        ("max-connections-per-ip", po::value(&limits.connections_per_ip)
            ->default_value(limits.connections_per_ip),
            "open WebSocket, SSE and long-poll (wait>0) connections per client IP; over it, 429 "
            "and the connection closes (0: no limit)")
        ("max-sockets-per-ip", po::value(&limits.sockets_per_ip)
            ->default_value(limits.sockets_per_ip),
            "open HTTP connections of every kind (keep-alive, WebSocket, SSE, long-poll) from one "
            "client IP, counted at accept; over it a new one gets 429 and is closed. 0: half of "
            "--max-connections, so no one address can take them all")
        ("max-connections", po::value(&limits.max_connections)
            ->default_value(limits.max_connections),
            "open HTTP connections of every kind at once; over it a new one gets 503 and is "
            "closed. 0: the file descriptor limit (raised to its hard limit at start) minus the "
            "descriptors in use and a reserve; a larger value is lowered to that")
        ("max-submissions-per-second", po::value(&limits.submissions_per_second)
            ->default_value(limits.submissions_per_second),
            "job submissions per owner per second, refilled continuously (auth on; 0: no limit)")
        ("submission-burst", po::value(&limits.submissions_burst)
            ->default_value(limits.submissions_burst),
            "job submissions an owner may make at once before the rate applies")
        ("max-ws-ops-per-second", po::value(&limits.ws_ops_per_second)
            ->default_value(limits.ws_ops_per_second),
            "WebSocket ops per connection per second (0: no limit)")
        ("ws-ops-burst", po::value(&limits.ws_ops_burst)->default_value(limits.ws_ops_burst),
            "WebSocket ops a connection may send at once before the rate applies")
        ("curve-secret-key-file", po::value(&flags.curve_secret_key_file),
            "turn on ZeroMQ CURVE for workers with this broker secret key "
            "(jobcast keygen NAME writes NAME.key and NAME.pub)")
        ("curve-allow", po::value(&flags.curve_allow),
            "worker public keys allowed to connect: a directory of *.pub files, or a file with "
            "one key per line")
        ("tls-cert", po::value(&c.tls.cert_file),
            "serve HTTPS, wss:// and SSE over TLS on the --http port with this PEM certificate "
            "(chain: leaf first); plain HTTP there is refused. SIGHUP reloads it")
        ("tls-key", po::value(&c.tls.key_file), "the certificate's unencrypted PEM private key")
        ("tls-min-version", po::value(&c.tls.min_version)->default_value(c.tls.min_version),
            "oldest TLS version accepted: 1.2 or 1.3")
        ("insecure-no-curve", po::bool_switch(&c.insecure_no_curve),
            "accept workers beyond loopback without CURVE (anyone who reaches the port can "
            "take and forge jobs)");
    // clang-format on
}

namespace {

// The items of list flags that environment variables fill with one string
// ("a,b"): every value split at commas, empty items dropped.
std::vector<std::string> comma_separated(const std::vector<std::string>& values) {
    std::vector<std::string> out;
    for (const auto& value : values) {
        std::stringstream parts(value);
        std::string item;
        while (std::getline(parts, item, ','))
            if (!item.empty()) out.push_back(item);
    }
    return out;
}

}  // namespace

void finish_security_config(BrokerConfig& c, SecurityFlags& flags) {
    auto& jwt = c.security.jwt;
    if (!flags.jwt_secret_file.empty()) {
        if (!jwt.hs256_secret.empty()) {
            throw ConfigError("give --jwt-secret or --jwt-secret-file, not both");
        }
        std::ifstream in(flags.jwt_secret_file, std::ios::binary);
        if (!in)
            throw ConfigError("--jwt-secret-file: cannot read '" + flags.jwt_secret_file + "'");
        std::ostringstream text;
        text << in.rdbuf();
        jwt.hs256_secret = text.str();
        while (!jwt.hs256_secret.empty() &&
               (jwt.hs256_secret.back() == '\n' || jwt.hs256_secret.back() == '\r')) {
            jwt.hs256_secret.pop_back();
        }
    }
    if (!jwt.hs256_secret.empty() && jwt.hs256_secret.size() < 32) {
        throw ConfigError("--jwt-secret must be at least 32 bytes (e.g. openssl rand -hex 32)");
    }
    if (jwt.leeway_seconds < 0 || jwt.leeway_seconds > 3600) {
        throw ConfigError("--jwt-leeway must be between 0 and 3600 seconds");
    }
    auto lifetime = parse_duration(flags.max_token_lifetime, "max-token-lifetime");
    if (lifetime.count() > 0 && lifetime < std::chrono::seconds(1)) {
        throw ConfigError("--max-token-lifetime must be 0 (no maximum) or at least 1s");
    }
    jwt.max_lifetime_seconds = std::chrono::duration_cast<std::chrono::seconds>(lifetime).count();
    if (!c.security.job_token_secret.empty() && c.security.job_token_secret.size() < 32) {
        throw ConfigError(
            "--job-token-secret must be at least 32 bytes (e.g. openssl rand -hex 32)");
    }
    c.security.token_admins = comma_separated(c.security.token_admins);
    // Environment variables carry one string: JOBCAST_ALLOWED_ORIGIN=a,b.
    std::vector<std::string> origins;
    for (auto& origin : comma_separated(c.security.allowed_origins)) {
        if (origin != "*" && origin.find("://") == std::string::npos) {
            throw ConfigError("--allowed-origin must be scheme://host[:port] or '*', not '" +
                              origin + "'");
        }
        while (!origin.empty() && origin.back() == '/')
            origin.pop_back();
        origins.push_back(std::move(origin));
    }
    c.security.allowed_origins = std::move(origins);
    auto hosts = comma_separated(c.security.allowed_hosts);
    for (const auto& host : hosts) {
        bool ipv6 = host.find(':') != std::string::npos && web::is_ip_literal(host);
        if (host.find_first_of("/@ ") != std::string::npos ||
            (host.find(':') != std::string::npos && !ipv6)) {
            throw ConfigError(
                "--allowed-host takes a host name or address without scheme or "
                "port (broker.internal), or '*', not '" +
                host + "'");
        }
    }
    c.security.allowed_hosts = std::move(hosts);
    auto& limits = c.security.limits;
    if (limits.submissions_per_second < 0 || limits.ws_ops_per_second < 0) {
        throw ConfigError("rates must not be negative");
    }
    if ((limits.submissions_per_second > 0 && limits.submissions_burst < 1) ||
        (limits.ws_ops_per_second > 0 && limits.ws_ops_burst < 1)) {
        throw ConfigError("--submission-burst and --ws-ops-burst must be at least 1");
    }

    if (!flags.curve_secret_key_file.empty() || !flags.curve_allow.empty()) {
        if (flags.curve_secret_key_file.empty() || flags.curve_allow.empty()) {
            throw ConfigError("CURVE needs both --curve-secret-key-file and --curve-allow");
        }
        try {
            c.gateway.curve.secret_key = curve::read_key(flags.curve_secret_key_file);
            curve::public_key_of(c.gateway.curve.secret_key);  // a usable secret key
            c.gateway.curve.allowed = curve::read_allow_list(flags.curve_allow);
        } catch (const std::exception& e) {
            throw ConfigError(e.what());
        }
    }

    if (!c.tls.key_file.empty() && c.tls.cert_file.empty()) {
        throw ConfigError("--tls-key needs --tls-cert");
    }
    if (c.tls.enabled()) {
        try {
            web::TlsServer probe(c.tls);  // the broker loads it again at start
        } catch (const std::exception& e) {
            throw ConfigError(e.what());
        }
    }

    // Secure by default: an open broker only on loopback.
    std::string host = c.http.substr(0, c.http.rfind(':'));
    if (!jwt.enabled() && !c.insecure_no_auth && !is_loopback_host(host)) {
        throw ConfigError("refusing to serve --http " + c.http +
                          " without auth: anyone who can connect would see and cancel every "
                          "job. Set --jwt-secret or --jwt-public-key, bind 127.0.0.1, or pass "
                          "--insecure-no-auth if the network is trusted");
    }
    const auto& zmq = c.gateway.endpoint;
    if (!c.gateway.curve.enabled() && !c.insecure_no_curve && !zmq_endpoint_is_local(zmq)) {
        throw ConfigError("refusing to accept workers on --zmq " + zmq +
                          " without CURVE: anyone who reaches the port could take and forge "
                          "jobs. Set --curve-secret-key-file and --curve-allow, bind "
                          "127.0.0.1 or ipc://, or pass --insecure-no-curve if the network is "
                          "trusted");
    }
}

std::shared_ptr<web::JobTokens> make_job_tokens(
    const web::SecurityConfig& security, const std::string& store_key,
    std::unique_ptr<store::TokenRevocations> revocations) {
    web::JobTokenConfig config;
    config.key = security.job_token_secret.empty()
                     ? auth::derive_key(store_key, "jobcast job tokens v1")
                     : security.job_token_secret;
    if (security.jwt.max_lifetime_seconds > 0) {
        config.max_lifetime_seconds = security.jwt.max_lifetime_seconds;
    }
    config.leeway_seconds = security.jwt.leeway_seconds;
    return std::make_shared<web::JobTokens>(std::move(config), std::move(revocations));
}

}  // namespace jobcast::broker
