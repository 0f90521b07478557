// `jobcast token --ttl`: capped at 3650 days (a longer one once minted tokens
// that aborted the broker, audit C1), and a warning for a token without exp,
// which brokers refuse by default (--max-token-lifetime, audit L3).
#include <catch2/catch.hpp>
#include <sstream>

#include "auth/jwt.hpp"
#include "cli/command_line.hpp"
#include "cli/commands.hpp"
#include "cli/errors.hpp"

using namespace jobcast::cli;

namespace {

Invocation parse(std::vector<std::string> arguments) {
    return parse_command_line(
        arguments, [](const std::string&) -> std::optional<std::string> { return std::nullopt; });
}

std::vector<std::string> token_args(const std::string& ttl) {
    return {"token", "--sub", "alice", "--secret", "0123456789abcdef0123456789abcdef",
            "--ttl", ttl};
}

}  // namespace

TEST_CASE("token --ttl is capped at 3650 days with a usage error past it", "[cli][args]") {
    CHECK(std::get<TokenCommand>(parse(token_args("3650d")).command).ttl ==
          std::chrono::hours(24 * 3650));
    CHECK(std::get<TokenCommand>(parse(token_args("87600h")).command).ttl == kMaxTokenTtl);
    for (std::string ttl : {"3651d", "200000d", "999999999d", "87601h", "315360001"}) {
        CAPTURE(ttl);
        CHECK_THROWS_AS(parse(token_args(ttl)), UsageError);
        CHECK_THROWS_WITH(parse(token_args(ttl)), Catch::Contains("maximum of 3650d"));
    }
    CHECK(std::get<TokenCommand>(parse(token_args("0")).command).ttl.count() == 0);
}

TEST_CASE("token --ttl 0 mints a token without exp and warns that brokers refuse it",
          "[cli][token]") {
    std::ostringstream out, err;
    Console console{out, err};
    CHECK(run_command(parse(token_args("0")), console) == ExitCode::succeeded);
    CHECK(err.str().find("warning: --ttl 0 mints a token without exp") != std::string::npos);
    CHECK(err.str().find("--max-token-lifetime 0") != std::string::npos);
    auto token = out.str();
    auto payload = jobcast::auth::base64url_decode(
        token.substr(token.find('.') + 1, token.rfind('.') - token.find('.') - 1));
    REQUIRE(payload);
    CHECK(payload->find("\"exp\"") == std::string::npos);

    std::ostringstream out2, err2;
    Console console2{out2, err2};
    CHECK(run_command(parse(token_args("1h")), console2) == ExitCode::succeeded);
    CHECK(err2.str().empty());
}
