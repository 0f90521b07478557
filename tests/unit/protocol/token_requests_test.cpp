// The bodies of the per-job token endpoints: every number a ttl may be
// written as, the shapes of a revocation.
#include <catch2/catch.hpp>

#include "protocol/token_requests.hpp"

using namespace jobcast::json;

namespace {

std::optional<std::int64_t> ttl(const std::string& body) {
    auto parsed = parse_token_request(body);
    if (std::holds_alternative<RequestError>(parsed)) return std::nullopt;
    return std::get<TokenRequest>(parsed).ttl_seconds.value_or(-1);
}

bool refused(const std::string& body) {
    return std::holds_alternative<RequestError>(parse_revoke_request(body));
}

}  // namespace

TEST_CASE("token request: ttl is whole seconds in [1, ten years]") {
    CHECK(ttl("") == -1);  // empty body: defaults
    CHECK(ttl("{}") == -1);
    CHECK(ttl(R"({"ttl":1})") == 1);
    CHECK(ttl(R"({"ttl":315360000})") == kMaxTokenTtlSeconds);
    for (const char* bad :
         {R"({"ttl":0})", R"({"ttl":-1})", R"({"ttl":315360001})", R"({"ttl":1.5})",
          R"({"ttl":60.0})", R"({"ttl":1e3})", R"({"ttl":1e308})", R"({"ttl":-1e308})",
          R"({"ttl":9223372036854775807})", R"({"ttl":9223372036854775808})",
          R"({"ttl":18446744073709551615})", R"({"ttl":18446744073709551616})",
          R"({"ttl":-9223372036854775808})", R"({"ttl":"60"})", R"({"ttl":null})",
          R"({"ttl":true})", R"({"ttl":[60]})"}) {
        CAPTURE(bad);
        CHECK_FALSE(ttl(bad));
    }
}

TEST_CASE("token request: cancel is a bool, nothing else is accepted") {
    auto parsed = parse_token_request(R"({"ttl":60,"cancel":true})");
    REQUIRE(std::holds_alternative<TokenRequest>(parsed));
    CHECK(std::get<TokenRequest>(parsed).cancel);
    for (const char* bad : {R"({"cancel":1})", R"({"cancel":"true"})", R"({"job":"x"})", "[]", "60",
                            "{", R"({"ttl":60}x)", "[[[[[[[[[[]]]]]]]]]]"}) {
        CAPTURE(bad);
        CHECK(std::holds_alternative<RequestError>(parse_token_request(bad)));
    }
}

TEST_CASE("revoke request: exactly one non-empty string of token_id, job, owner") {
    auto parsed = parse_revoke_request(R"({"job":"01J"})");
    REQUIRE(std::holds_alternative<RevokeRequest>(parsed));
    CHECK(std::get<RevokeRequest>(parsed).kind == RevokeRequest::Kind::job);
    CHECK(std::get<RevokeRequest>(parsed).key == "01J");
    CHECK(std::get<RevokeRequest>(parse_revoke_request(R"({"token_id":"ab.cd"})")).kind ==
          RevokeRequest::Kind::token);
    CHECK(std::get<RevokeRequest>(parse_revoke_request(R"({"owner":"t/a"})")).kind ==
          RevokeRequest::Kind::owner);
    CHECK(refused(""));
    CHECK(refused("{}"));
    CHECK(refused(R"({"job":"a","owner":"b"})"));
    CHECK(refused(R"({"job":""})"));
    CHECK(refused(R"({"job":7})"));
    CHECK(refused(R"({"all":true})"));
    CHECK(refused(R"({"owner":")" + std::string(kMaxRevokeKeyBytes + 1, 'a') + "\"}"));
    CHECK_FALSE(refused(R"({"owner":")" + std::string(kMaxRevokeKeyBytes, 'a') + "\"}"));
}
