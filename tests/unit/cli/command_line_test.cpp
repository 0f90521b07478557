#include <catch2/catch.hpp>
#include <map>

#include "cli/command_line.hpp"
#include "cli/errors.hpp"
#include "cli/url.hpp"

using namespace jobcast::cli;
using std::chrono::milliseconds;

namespace {

Environment environment(std::map<std::string, std::string> variables = {}) {
    return [variables](const std::string& name) -> std::optional<std::string> {
        const auto it = variables.find(name);
        if (it == variables.end()) return std::nullopt;
        return it->second;
    };
}

Invocation parse(std::vector<std::string> arguments, const Environment& env = environment()) {
    return parse_command_line(arguments, env);
}

}  // namespace

TEST_CASE("submit takes a type, key=value params and options in any order", "[cli][args]") {
    const auto invocation = parse({"submit", "llm.generate", "prompt=hello world", "--follow",
                                   "max_tokens=50", "--priority", "3", "-q"});
    const auto& submit = std::get<SubmitCommand>(invocation.command);
    CHECK(submit.type == "llm.generate");
    CHECK(submit.params == std::vector<std::string>{"prompt=hello world", "max_tokens=50"});
    CHECK(submit.follow);
    CHECK(submit.priority == 3);
    CHECK_FALSE(submit.max_attempts);
    CHECK(submit.stream.quiet);
    CHECK(submit.stream.retry_for == milliseconds{60'000});
}

TEST_CASE("watch takes an id, --after and --retry-for", "[cli][args]") {
    const auto invocation = parse({"watch", "01ABC", "--after", "17", "--retry-for=90s", "--json"});
    const auto& watch = std::get<WatchCommand>(invocation.command);
    CHECK(watch.job == "01ABC");
    CHECK(watch.after == 17);
    CHECK(watch.stream.retry_for == milliseconds{90'000});
    CHECK(watch.stream.json);
}

TEST_CASE("get, cancel and list", "[cli][args]") {
    CHECK(std::get<GetCommand>(parse({"get", "J1"}).command).job == "J1");
    CHECK(std::get<CancelCommand>(parse({"cancel", "J2"}).command).job == "J2");
    CHECK(std::get<CancelCommand>(parse({"cancel", "J2"}).command).retry_for ==
          std::chrono::seconds(60));
    CHECK(std::get<CancelCommand>(parse({"cancel", "J2", "--retry-for", "0"}).command)
              .retry_for.count() == 0);
    const auto list = std::get<ListCommand>(
        parse({"list", "--state", "running", "--type=exec", "--limit", "5"}).command);
    CHECK(list.state == "running");
    CHECK(list.type == "exec");
    CHECK(list.limit == 5);
    CHECK_FALSE(list.json);
}

TEST_CASE(
    "the url and token come from --url/--token flags, else JOBCAST_URL/JOBCAST_TOKEN, else "
    "defaults",
    "[cli][args]") {
    const auto defaults = parse({"list"});
    CHECK(defaults.url.host == "127.0.0.1");
    CHECK(defaults.url.port == "8080");
    CHECK_FALSE(defaults.url.tls);
    CHECK(defaults.token.empty());

    const auto env = environment({{"JOBCAST_URL", "http://broker:9000"}, {"JOBCAST_TOKEN", "t0"}});
    const auto from_env = parse({"list"}, env);
    CHECK(from_env.url.host == "broker");
    CHECK(from_env.url.port == "9000");
    CHECK(from_env.token == "t0");

    // Flags win, before or after the command.
    const auto flags =
        parse({"--url", "https://jobs.example.com/api", "get", "J", "--token", "t1"}, env);
    CHECK(flags.url.tls);
    CHECK(flags.url.port == "443");
    CHECK(flags.url.path == "/api");
    CHECK(flags.token == "t1");
    CHECK(std::get<GetCommand>(flags.command).job == "J");
}

TEST_CASE("help and version are text to print", "[cli][args]") {
    CHECK_THAT(std::get<ShowText>(parse({"--help"}).command).text,
               Catch::Contains("submit TYPE [key=value...]"));
    CHECK_THAT(std::get<ShowText>(parse({"help"}).command).text, Catch::Contains("Exit codes"));
    const auto watch_help = std::get<ShowText>(parse({"watch", "--help"}).command).text;
    CHECK_THAT(watch_help, Catch::Contains("--after"));
    CHECK_THAT(watch_help, Catch::Contains("--retry-for"));
    CHECK_THAT(std::get<ShowText>(parse({"help", "list"}).command).text,
               Catch::Contains("--state"));
    CHECK_THAT(std::get<ShowText>(parse({"--version"}).command).text,
               Catch::StartsWith("jobcast "));
}

TEST_CASE("bad command lines are usage errors that say what is wrong", "[cli][args]") {
    CHECK_THROWS_WITH(parse({}), Catch::Contains("missing COMMAND"));
    CHECK_THROWS_WITH(parse({"frobnicate"}), Catch::Contains("unknown command 'frobnicate'"));
    CHECK_THROWS_WITH(parse({"watch"}), Catch::Contains("missing the job ID"));
    CHECK_THROWS_WITH(parse({"watch", "a", "b"}), Catch::Contains("too many arguments"));
    CHECK_THROWS_WITH(parse({"submit"}), Catch::Contains("missing the job TYPE"));
    CHECK_THROWS_AS(parse({"watch", "J", "--after", "soon"}), UsageError);
    CHECK_THROWS_AS(parse({"watch", "J", "--bogus"}), UsageError);
    CHECK_THROWS_AS(parse({"list", "--limit", "0"}), UsageError);
    CHECK_THROWS_WITH(parse({"--url", "ftp://x", "list"}), Catch::Contains("invalid URL"));
    CHECK_THROWS_AS(parse({"watch", "J", "--retry-for", "forever"}), UsageError);
}

TEST_CASE("durations", "[cli][args]") {
    CHECK(parse_duration("60") == milliseconds{60'000});
    CHECK(parse_duration("90s") == milliseconds{90'000});
    CHECK(parse_duration("500ms") == milliseconds{500});
    CHECK(parse_duration("2m") == milliseconds{120'000});
    CHECK(parse_duration("0") == milliseconds{0});
    CHECK_THROWS_AS(parse_duration(""), UsageError);
    CHECK_THROWS_AS(parse_duration("-1"), UsageError);
    CHECK_THROWS_AS(parse_duration("1h"), UsageError);
}

TEST_CASE("server URLs", "[cli][args]") {
    const auto url = parse_server_url("http://127.0.0.1:8080");
    REQUIRE(url);
    CHECK(url->authority() == "127.0.0.1:8080");
    CHECK(url->target("/v1/jobs") == "/v1/jobs");

    const auto proxied = parse_server_url("https://example.com/jobcast/");
    REQUIRE(proxied);
    CHECK(proxied->authority() == "example.com");
    CHECK(proxied->target("/v1/ws") == "/jobcast/v1/ws");

    const auto v6 = parse_server_url("http://[::1]:9000");
    REQUIRE(v6);
    CHECK(v6->host == "::1");
    CHECK(v6->authority() == "[::1]:9000");

    for (const auto* bad : {"127.0.0.1:8080", "ftp://x", "http://", "http://u@h", "http://h:0",
                            "http://h:99999", "http://h:80x", "http://h/?q=1"}) {
        INFO(bad);
        CHECK_FALSE(parse_server_url(bad));
    }
}

TEST_CASE("server URLs: IPv6 literals, user info and %-escapes", "[cli][args]") {
    const auto v6 = parse_server_url("http://[2001:db8::1]/jobcast");
    REQUIRE(v6);
    CHECK(v6->host == "2001:db8::1");
    CHECK(v6->port == "80");
    CHECK(v6->authority() == "[2001:db8::1]");
    CHECK(v6->target("/v1/ws") == "/jobcast/v1/ws");

    // An escaped host name is decoded; the path keeps its escapes.
    const auto escaped = parse_server_url("https://ex%61mple.com:8443/a%20b/");
    REQUIRE(escaped);
    CHECK(escaped->host == "example.com");
    CHECK(escaped->authority() == "example.com:8443");
    CHECK(escaped->target("/v1/jobs") == "/a%20b/v1/jobs");

    for (const auto* bad :
         {"http://[::1", "http://[not-an-address]:80", "http://[v1.x]/", "http://user:secret@h",
          "http://@h", "http://h%2Fevil", "http://h%0D%0AX-Injected:1", "http://h/%zz",
          "http://h/#top", "http://h:80x/p"}) {
        INFO(bad);
        CHECK_FALSE(parse_server_url(bad));
    }
}

TEST_CASE("ids and query values are %-escaped", "[cli][args]") {
    CHECK(percent_encode("01ABC-x_y.z~") == "01ABC-x_y.z~");
    CHECK(percent_encode("a/b c?&") == "a%2Fb%20c%3F%26");
    CHECK(query_string({{"state", "running"}, {"type", ""}, {"limit", "5"}}) ==
          "?state=running&limit=5");
    CHECK(query_string({{"type", ""}}).empty());
}

TEST_CASE("token takes --sub, a secret from a flag or JOBCAST_JWT_SECRET, and a ttl",
          "[cli][args]") {
    auto token = std::get<TokenCommand>(
        parse({"token", "--sub", "alice", "--secret", "s3", "--ttl", "12h", "--tenant", "acme"})
            .command);
    CHECK(token.subject == "alice");
    CHECK(token.secret == "s3");
    CHECK(token.tenant == "acme");
    CHECK(token.ttl == std::chrono::hours(12));
    auto from_env = std::get<TokenCommand>(
        parse({"token", "--sub", "bob"}, environment({{"JOBCAST_JWT_SECRET", "env"}})).command);
    CHECK(from_env.secret == "env");
    CHECK(from_env.ttl == std::chrono::hours(1));
    CHECK_THROWS_WITH(parse({"token", "--secret", "s"}), Catch::Contains("missing --sub"));
    CHECK_THROWS_WITH(parse({"token", "--sub", "a"}), Catch::Contains("missing --secret"));
    CHECK_THROWS_WITH(parse({"token", "--sub", "a", "--secret", "s", "--ttl", "soon"}),
                      Catch::Contains("invalid --ttl"));
}

TEST_CASE("keygen takes the name of the key files", "[cli][args]") {
    CHECK(std::get<KeygenCommand>(parse({"keygen", "keys/broker"}).command).prefix ==
          "keys/broker");
    CHECK_THROWS_WITH(parse({"keygen"}), Catch::Contains("missing NAME"));
}
