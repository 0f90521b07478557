#include "web/security/security.hpp"

#include <algorithm>
#include <catch2/catch.hpp>

#include "../auth/mint_options.hpp"

using namespace jobcast::web;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "unit-test-secret-0123456789abcdef";
constexpr std::int64_t kNow = 1'800'000'000;

HttpRequest request(std::string target, HeaderMap headers = {}) {
    HttpRequest r;
    r.method = "GET";
    r.target = std::move(target);
    r.headers = std::move(headers);
    r.remote = "10.1.2.3:4567";
    return r;
}

SecurityContext auth_context(SecurityConfig config = {}) {
    config.jwt.hs256_secret = kSecret;
    return SecurityContext(std::move(config), [] { return kNow; });
}

std::string token(const std::string& sub, std::int64_t ttl = 600) {
    return jobcast::auth::mint_hs256(kSecret, mint_options(sub, "", "", "", kNow, ttl));
}

}  // namespace

TEST_CASE("a token bucket allows its burst, then its rate") {
    auto t0 = TokenBucket::Clock::now();
    TokenBucket bucket(2.0, 3.0, t0);
    CHECK(bucket.take(t0));
    CHECK(bucket.take(t0));
    CHECK(bucket.take(t0));
    CHECK_FALSE(bucket.take(t0));
    CHECK_FALSE(bucket.take(t0 + 400ms));  // 0.8 tokens
    CHECK(bucket.take(t0 + 500ms));        // 1 token
    CHECK_FALSE(bucket.full(t0 + 500ms));
    CHECK(bucket.full(t0 + 2s));
    // A long pause refills to the burst, not beyond.
    auto later = t0 + 60s;
    for (int i = 0; i < 3; ++i)
        CHECK(bucket.take(later));
    CHECK_FALSE(bucket.take(later));
}

TEST_CASE("owner rate limits are per owner") {
    OwnerRateLimiter limiter(1.0, 2.0);
    auto now = TokenBucket::Clock::now();
    CHECK(limiter.admit("alice", now));
    CHECK(limiter.admit("alice", now));
    CHECK_FALSE(limiter.admit("alice", now));
    CHECK(limiter.admit("bob", now));
}

TEST_CASE("connection slots count per owner and per IP, whatever the kind, and come back") {
    ConnectionLimiter limiter(2, 3);
    auto a1 = limiter.acquire("alice", "10.0.0.1:1", "websocket");
    auto a2 = limiter.acquire("alice", "10.0.0.1:2", "long_poll");
    REQUIRE(a1.slot);
    REQUIRE(a2.slot);
    auto a3 = limiter.acquire("alice", "10.0.0.2:1", "sse");
    CHECK_FALSE(a3.slot);
    CHECK(a3.limit == Limit::connections_per_owner);
    auto b1 = limiter.acquire("bob", "10.0.0.1:3", "long_poll");
    REQUIRE(b1.slot);
    auto c1 = limiter.acquire("carol", "10.0.0.1:4", "long_poll");
    CHECK_FALSE(c1.slot);
    CHECK(c1.limit == Limit::connections_per_ip);
    a1.slot.reset();
    CHECK(limiter.acquire("carol", "10.0.0.1:5", "long_poll").slot);
}

TEST_CASE("a refused stream or long-poll is told why and its connection closes") {
    for (auto limit : {Limit::connections_per_owner, Limit::connections_per_ip}) {
        auto response = too_many_connections(limit);
        CHECK(response.status == 429);
        CHECK(response.body.find("\"too_many_connections\"") != std::string::npos);
        using Header = std::pair<std::string, std::string>;
        CHECK(std::find(response.headers.begin(), response.headers.end(),
                        Header{"Connection", "close"}) != response.headers.end());
    }
}

TEST_CASE("accepted connections count in all and per IP, and come back when closed (M3)") {
    AcceptLimiter limiter(4, 2);
    auto a1 = limiter.admit("10.0.0.1");
    auto a2 = limiter.admit("10.0.0.1");
    REQUIRE(a1.ticket);
    REQUIRE(a2.ticket);
    auto a3 = limiter.admit("10.0.0.1");
    CHECK_FALSE(a3.ticket);
    CHECK(a3.limit == Limit::sockets_per_ip);
    auto b1 = limiter.admit("10.0.0.2");
    auto c1 = limiter.admit("10.0.0.3");
    REQUIRE(b1.ticket);
    REQUIRE(c1.ticket);
    CHECK(limiter.open() == 4);
    auto d1 = limiter.admit("10.0.0.4");  // a fresh address, but the port is full
    CHECK_FALSE(d1.ticket);
    CHECK(d1.limit == Limit::connections);
    a1.ticket.reset();
    CHECK(limiter.open() == 3);
    CHECK(limiter.admit("10.0.0.4").ticket);
    // 0 is no limit.
    AcceptLimiter open(0, 0);
    std::vector<std::shared_ptr<void>> held;
    for (int i = 0; i < 1000; ++i)
        held.push_back(open.admit("10.0.0.1").ticket);
    CHECK(std::all_of(held.begin(), held.end(), [](const auto& t) { return t != nullptr; }));
}

TEST_CASE("refusals at accept are counted every time, per limit") {
    SecurityConfig config;
    config.limits.max_connections = 1;
    SecurityContext security(config);
    auto held = security.admit_connection("10.0.0.1");
    REQUIRE(held.ticket);
    for (int i = 0; i < 5; ++i)
        CHECK_FALSE(security.admit_connection("10.0.0.2").ticket);
    CHECK(security.stats.limit_hits[static_cast<std::size_t>(Limit::connections)].load() == 5);
    CHECK(security.open_connections() == 1);
}

TEST_CASE("one address may hold half the connections unless told otherwise") {
    SecurityLimits limits;
    CHECK(sockets_per_ip(limits) == 0);  // no cap at all
    limits.max_connections = 100;
    CHECK(sockets_per_ip(limits) == 50);
    limits.max_connections = 1;
    CHECK(sockets_per_ip(limits) == 1);
    limits.sockets_per_ip = 7;
    CHECK(sockets_per_ip(limits) == 7);

    SecurityConfig config;
    config.limits.max_connections = 4;
    SecurityContext security(config);
    auto a = security.admit_connection("10.0.0.1");
    auto b = security.admit_connection("10.0.0.1");
    auto c = security.admit_connection("10.0.0.1");
    CHECK(a.ticket);
    CHECK(b.ticket);
    CHECK_FALSE(c.ticket);
    CHECK(c.limit == Limit::sockets_per_ip);
    CHECK(security.admit_connection("10.0.0.2").ticket);  // others still get in
}

TEST_CASE("remote_ip strips the port of IPv4 and IPv6 peers") {
    CHECK(remote_ip("127.0.0.1:80") == "127.0.0.1");
    CHECK(remote_ip("[::1]:8080") == "::1");
    CHECK(remote_ip("unknown") == "unknown");
}

TEST_CASE("the bearer token comes from Authorization, else from access_token") {
    CHECK(bearer_token(request("/v1/jobs", {{"Authorization", "Bearer abc.def.ghi"}})) ==
          "abc.def.ghi");
    CHECK(bearer_token(request("/v1/jobs", {{"authorization", "bearer  x "}})) == "x");
    CHECK(bearer_token(request("/v1/ws?a=1&access_token=t%2Bk")) == "t+k");
    CHECK(bearer_token(request("/v1/jobs", {{"Authorization", "Basic dXNlcg=="}})).empty());
    CHECK(bearer_token(request("/v1/jobs")).empty());
}

TEST_CASE("with auth on, /v1/ needs a valid token and the token names the owner") {
    auto security = auth_context();
    auto ok = request("/v1/jobs", {{"Authorization", "Bearer " + token("alice")}});
    CHECK_FALSE(security.authenticate(ok));
    CHECK(ok.owner == "alice");
    CHECK(ok.auth_valid_until == kNow + 600 + 30);

    auto missing = request("/v1/jobs");
    auto refused = security.authenticate(missing);
    REQUIRE(refused);
    CHECK(refused->status == 401);
    CHECK(refused->body.find("unauthorized") != std::string::npos);
    CHECK(security.stats.auth_failures[0].load() == 1);  // missing

    auto old =
        jobcast::auth::mint_hs256(kSecret, mint_options("alice", "", "", "", kNow - 7200, 3600));
    auto expired = request("/v1/jobs?access_token=" + old);
    REQUIRE(security.authenticate(expired));
    CHECK(security.stats.auth_failures[4].load() == 1);  // expired

    auto health = request("/healthz");
    CHECK_FALSE(security.authenticate(health));
    CHECK(health.owner == std::string(kAnonymousOwner));
}

TEST_CASE("with auth off every request is anonymous and the per-owner limits are off") {
    SecurityContext security(SecurityConfig{}, [] { return kNow; });
    auto r = request("/v1/jobs");
    CHECK_FALSE(security.authenticate(r));
    CHECK(r.owner == std::string(kAnonymousOwner));
    for (int i = 0; i < 1000; ++i)
        REQUIRE(security.admit_submission("anonymous", "127.0.0.1:1"));
}

TEST_CASE("origins: none, the same origin and listed ones pass, others do not") {
    SecurityConfig config;
    config.allowed_origins = {"https://app.example"};
    SecurityContext security(config);
    CHECK(security.origin_allowed(request("/v1/ws")));
    CHECK(security.origin_allowed(
        request("/v1/ws", {{"Origin", "https://app.example"}, {"Host", "broker:8080"}})));
    CHECK(security.origin_allowed(
        request("/v1/ws", {{"Origin", "http://broker:8080"}, {"Host", "broker:8080"}})));
    CHECK_FALSE(security.origin_allowed(
        request("/v1/ws", {{"Origin", "https://evil.example"}, {"Host", "broker:8080"}})));
    CHECK_FALSE(security.origin_allowed(request("/v1/ws", {{"Origin", "null"}})));

    auto preflight = security.preflight(request("/v1/jobs", {{"Origin", "https://app.example"}}));
    CHECK(preflight.status == 204);
    auto refused = security.preflight(request("/v1/jobs", {{"Origin", "https://evil.example"}}));
    CHECK(refused.status == 403);

    SecurityConfig any;
    any.allowed_origins = {"*"};
    CHECK(SecurityContext(any).origin_allowed(request("/", {{"Origin", "https://x.example"}})));
}

TEST_CASE("host parts of Host headers and listen addresses") {
    CHECK(host_part("127.0.0.1:8080") == "127.0.0.1");
    CHECK(host_part("localhost") == "localhost");
    CHECK(host_part("[::1]:80") == "::1");
    CHECK(host_part("[::1]") == "::1");
    CHECK(host_part("Broker.Example:1") == "Broker.Example");
    for (const char* bad : {"", ":80", "[::1", "[::1]x", "[::1]:", "a:b", "a:", "::1", "a:80:1"}) {
        INFO(bad);
        CHECK_FALSE(host_part(bad));
    }
}

TEST_CASE("only loopback literals, localhost, the bound address and listed names are served (H3)") {
    HostAllowList hosts({"broker.internal", "10.9.8.7"});
    hosts.add_bound_address("192.168.1.5");
    for (const char* host : {"127.0.0.1:8080", "127.0.0.1", "127.3.2.1:1", "[::1]:8080", "[::1]",
                             "localhost:8080", "LocalHost", "localhost.:9", "192.168.1.5:8080",
                             "broker.internal:80", "BROKER.INTERNAL", "10.9.8.7:5"}) {
        INFO(host);
        CHECK(hosts.allows(std::string_view(host)));
    }
    for (const char* host :
         {"rebind.attacker.example:8080", "attacker.example", "127.0.0.1.nip.io:8080",
          "127.example.com", "localhost.attacker.example", "192.168.1.6:8080",
          "sub.broker.internal", "", "x", "127.0.0.1:80, evil.example", "evil@127.0.0.1",
          "[::1]junk", "0x7f000001:80"}) {
        INFO(host);
        CHECK_FALSE(hosts.allows(std::string_view(host)));
    }
    CHECK_FALSE(hosts.allows(std::nullopt));  // no Host at all

    HostAllowList any({"*"});
    CHECK(any.allows(std::string_view("anything.example")));
    CHECK(any.allows(std::nullopt));

    // Bound to every address: any IP literal names this broker; names still do not.
    HostAllowList wildcard;
    wildcard.add_bound_address("0.0.0.0");
    CHECK(wildcard.allows(std::string_view("10.1.2.3:8080")));
    CHECK(wildcard.allows(std::string_view("[2001:db8::1]:8080")));
    CHECK_FALSE(wildcard.allows(std::string_view("rebind.attacker.example:8080")));
}

TEST_CASE("with auth off every route checks Host, with auth on only when hosts are listed") {
    SecurityContext open(SecurityConfig{});
    open.note_bound_address("127.0.0.1");
    auto rebinding = request("/v1/jobs?access_token=secret-token",
                             {{"Host", "rebind.attacker.example:8080"},
                              {"Origin", "http://rebind.attacker.example:8080"}});
    auto refused = open.check_host(rebinding);
    REQUIRE(refused);
    CHECK(refused->status == 403);
    CHECK(refused->body.find("\"host_not_allowed\"") != std::string::npos);
    CHECK(open.stats.refused_requests[static_cast<std::size_t>(Refusal::host)].load() == 1);
    // /healthz and the UI too.
    CHECK(open.check_host(request("/healthz", {{"Host", "attacker.example"}})));
    CHECK(open.check_host(request("/", {{"Host", "attacker.example"}})));
    CHECK_FALSE(open.check_host(request("/v1/jobs", {{"Host", "127.0.0.1:8080"}})));
    CHECK_FALSE(open.check_host(request("/v1/jobs", {{"Host", "localhost:8080"}})));

    auto auth = auth_context();
    CHECK_FALSE(auth.check_host(rebinding));  // tokens are the boundary

    SecurityConfig listed;
    listed.allowed_hosts = {"jobs.example.com"};
    auto strict = auth_context(listed);
    CHECK(strict.check_host(rebinding));
    CHECK_FALSE(strict.check_host(request("/v1/jobs", {{"Host", "jobs.example.com"}})));

    SecurityConfig star;
    star.allowed_hosts = {"*"};
    CHECK_FALSE(SecurityContext(star).check_host(rebinding));
}
