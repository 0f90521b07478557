#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "cli/errors.hpp"
#include "cli/params.hpp"

using namespace jobcast::cli;
namespace json = boost::json;

TEST_CASE("key=value arguments become the params object", "[cli][params]") {
    // As the shell hands them over: prompt="hello world" max_tokens=50 args='["-c","echo hi"]'
    const auto params =
        parse_params({"prompt=hello world", "max_tokens=50", R"(args=["-c","echo hi"])"});
    CHECK(params ==
          json::parse(R"({"prompt":"hello world","max_tokens":50,"args":["-c","echo hi"]})")
              .as_object());
}

TEST_CASE("values that are valid JSON keep their JSON type", "[cli][params]") {
    CHECK(parse_param_value("50") == json::value(50));
    CHECK(parse_param_value("-2.5") == json::value(-2.5));
    CHECK(parse_param_value("true") == json::value(true));
    CHECK(parse_param_value("false") == json::value(false));
    CHECK(parse_param_value("null").is_null());
    CHECK(parse_param_value(R"({"a":[1,2]})") == json::parse(R"({"a":[1,2]})"));
    // A JSON string literal is how a user passes text that looks like JSON.
    CHECK(parse_param_value(R"("true")") == json::value("true"));
    CHECK(parse_param_value(R"("50")") == json::value("50"));
}

TEST_CASE("anything else is taken as a plain string", "[cli][params]") {
    CHECK(parse_param_value("hello") == json::value("hello"));
    CHECK(parse_param_value("") == json::value(""));
    CHECK(parse_param_value("True") == json::value("True"));
    CHECK(parse_param_value("[1,2") == json::value("[1,2"));
    CHECK(parse_param_value("50 tokens") == json::value("50 tokens"));
    CHECK(parse_param_value("a=b") == json::value("a=b"));
    // Surrounding spaces are part of the text, not JSON whitespace.
    CHECK(parse_param_value(" 5") == json::value(" 5"));
    CHECK(parse_param_value("5 ") == json::value("5 "));
}

TEST_CASE("the value is everything after the first '='", "[cli][params]") {
    const auto params = parse_params({"equation=x=1", "empty="});
    CHECK(params.at("equation") == json::value("x=1"));
    CHECK(params.at("empty") == json::value(""));
}

TEST_CASE("malformed arguments are usage errors", "[cli][params]") {
    CHECK(parse_params({}).empty());
    CHECK_THROWS_AS(parse_params({"prompt"}), UsageError);
    CHECK_THROWS_WITH(parse_params({"prompt"}), Catch::Contains("key=value"));
    CHECK_THROWS_AS(parse_params({"=value"}), UsageError);
    CHECK_THROWS_WITH(parse_params({"a=1", "a=2"}), Catch::Contains("twice"));
}
