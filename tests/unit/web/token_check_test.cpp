// Tokens as every transport checks them (SecurityContext::check_token, used by
// REST, SSE, the WebSocket upgrade and the WebSocket auth op), and the expiry
// timer set from them: audit findings C1, C2, H2 and L2.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <catch2/catch.hpp>

#include "auth/jwt.hpp"
#include "web/security/security.hpp"
#include "web/stream/stream_session.hpp"

#include "../auth/mint_options.hpp"

using namespace jobcast::web;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "unit-test-secret-0123456789abcdef";
constexpr std::int64_t kNow = 1'800'000'000;
constexpr auto kTenYears = std::chrono::seconds(3650LL * 86'400);

std::size_t reason(jobcast::auth::JwtFailure failure) {
    return static_cast<std::size_t>(failure);
}

SecurityContext auth_context(std::int64_t max_lifetime) {
    SecurityConfig config;
    config.jwt.hs256_secret = kSecret;
    config.jwt.max_lifetime_seconds = max_lifetime;
    return SecurityContext(std::move(config), [] { return kNow; });
}

// A token signed here with claims given as JSON text, so any number can be written.
std::string signed_token(const std::string& claims) {
    std::string input = jobcast::auth::base64url_encode(R"({"alg":"HS256"})") + "." +
                        jobcast::auth::base64url_encode(claims);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return input + "." +
           jobcast::auth::base64url_encode(std::string_view(reinterpret_cast<char*>(mac), len));
}

std::string mint(const std::string& sub, const std::string& tenant = "", std::int64_t ttl = 600) {
    return jobcast::auth::mint_hs256(kSecret, mint_options(sub, tenant, "", "", kNow, ttl));
}

}  // namespace

TEST_CASE("C2: an exp near or past INT64_MAX is refused, and valid_until cannot overflow") {
    auto security = auth_context(0);
    for (std::string exp : {"9223372036854775807", "9223372036854775777", "18446744073709551615",
                            "-9223372036854775808", "1e300"}) {
        CAPTURE(exp);
        auto check = security.check_token(signed_token(R"({"sub":"alice","exp":)" + exp + "}"),
                                          "1.2.3.4:5", "http");
        CHECK_FALSE(check.owner);
        CHECK(check.reason == reason(jobcast::auth::JwtFailure::malformed));
        CHECK(check.message.find("exp must be a number of seconds") != std::string::npos);
    }
    CHECK(security.stats.auth_failures[reason(jobcast::auth::JwtFailure::malformed)].load() == 5);

    // The latest exp there is, plus the leeway.
    auto last = security.check_token(signed_token(R"({"sub":"alice","exp":253402300799})"),
                                     "1.2.3.4:5", "http");
    REQUIRE(last.owner);
    CHECK(last.valid_until == 253'402'300'799 + 30);
}

TEST_CASE("C1: the token expiry timer is capped and defined for any exp") {
    CHECK(seconds_until(INT64_MAX) == kTenYears);
    CHECK(seconds_until(9'999'999'999) == kTenYears);   // the "never" sentinel, year 2286
    CHECK(seconds_until(18'446'744'074) == kTenYears);  // wrapped to 1970 before
    CHECK(seconds_until(253'402'300'799 + 30) == kTenYears);
    CHECK(seconds_until(INT64_MIN) == 0s);
    CHECK(seconds_until(0) == 0s);
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    auto soon = seconds_until(now + 100);
    CHECK(soon > 98s);
    CHECK(soon <= 100s);
}

TEST_CASE(
    "L3: tokens without exp or beyond the maximum lifetime are refused, counted as "
    "lifetime") {
    auto security = auth_context(30 * 86'400);
    auto no_exp = security.check_token(mint("alice", "", 0), "1.2.3.4:5", "websocket");
    CHECK_FALSE(no_exp.owner);
    CHECK(no_exp.reason == reason(jobcast::auth::JwtFailure::lifetime));
    CHECK(kAuthFailureReasons[no_exp.reason] == "lifetime");
    CHECK(no_exp.message ==
          "token has no exp; this broker requires one (--max-token-lifetime 30d)");
    auto never = security.check_token(signed_token(R"({"sub":"alice","exp":9999999999})"),
                                      "1.2.3.4:5", "sse");
    CHECK(never.reason == reason(jobcast::auth::JwtFailure::lifetime));
    CHECK(security.stats.auth_failures[reason(jobcast::auth::JwtFailure::lifetime)].load() == 2);
    CHECK(kAuthFailureReasons[kOwnerMismatch] == "owner_mismatch");

    // With no maximum, a token without exp is valid and never expires.
    auto unlimited = auth_context(0).check_token(mint("alice", "", 0), "1.2.3.4:5", "http");
    REQUIRE(unlimited.owner);
    CHECK(unlimited.valid_until == 0);
}

TEST_CASE("H2: a tenant-less sub with '/' is not a tenant's owner") {
    auto security = auth_context(0);
    auto scoped = security.check_token(mint("alice", "acme"), "1.2.3.4:5", "http");
    auto slashed = security.check_token(mint("acme/alice"), "1.2.3.4:5", "http");
    REQUIRE(scoped.owner);
    REQUIRE(slashed.owner);
    CHECK(*scoped.owner == "acme/alice");
    CHECK(*slashed.owner == "acme%2Falice");
}

TEST_CASE("L2: sub 'anonymous' without a tenant is reserved for open mode") {
    auto security = auth_context(0);
    auto check = security.check_token(mint("anonymous"), "1.2.3.4:5", "http");
    CHECK_FALSE(check.owner);
    CHECK(check.reason == reason(jobcast::auth::JwtFailure::subject));
    CHECK(check.message == "sub 'anonymous' is reserved");
    CHECK(security.stats.auth_failures[reason(jobcast::auth::JwtFailure::subject)].load() == 1);

    HttpRequest request;
    request.method = "GET";
    request.target = "/v1/jobs";
    request.headers = {{"Authorization", "Bearer " + mint("anonymous")}};
    auto refused = security.authenticate(request);
    REQUIRE(refused);
    CHECK(refused->status == 401);
    CHECK(refused->body.find("reserved") != std::string::npos);

    // In a tenant, the name is an ordinary one.
    auto scoped = security.check_token(mint("anonymous", "acme"), "1.2.3.4:5", "http");
    REQUIRE(scoped.owner);
    CHECK(*scoped.owner == "acme/anonymous");
}
