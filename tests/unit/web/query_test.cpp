// Request-target parsing and the route table: what a client's URL means.
#include <catch2/catch.hpp>

#include "web/http/query.hpp"
#include "web/http/routes.hpp"

using namespace jobcast::web;

TEST_CASE("percent_decode decodes escapes and rejects malformed ones", "[web][query]") {
    CHECK(percent_decode("llm%2Egenerate", false) == "llm.generate");
    CHECK(percent_decode("a%2fb%2Fc", false) == "a/b/c");
    CHECK(percent_decode("%E2%9C%93", false) == "\xE2\x9C\x93");
    CHECK(percent_decode("a+b", true) == "a b");
    CHECK(percent_decode("a+b", false) == "a+b");
    CHECK(percent_decode("100%25", true) == "100%");
    CHECK(percent_decode("", true) == "");
    CHECK_FALSE(percent_decode("%", true));
    CHECK_FALSE(percent_decode("%4", true));
    CHECK_FALSE(percent_decode("abc%", true));
    CHECK_FALSE(percent_decode("%zz", true));
    CHECK_FALSE(percent_decode("%g1", true));
}

TEST_CASE("split_target separates path and query and drops a fragment", "[web][query]") {
    auto parts = split_target("/v1/jobs?state=queued&limit=5");
    CHECK(parts.path == "/v1/jobs");
    CHECK(parts.query == "state=queued&limit=5");
    parts = split_target("/v1/jobs");
    CHECK(parts.path == "/v1/jobs");
    CHECK(parts.query.empty());
    parts = split_target("/v1/jobs?a=1#frag?x=2");
    CHECK(parts.path == "/v1/jobs");
    CHECK(parts.query == "a=1");
    parts = split_target("/v1/jobs?");
    CHECK(parts.query.empty());
}

TEST_CASE("QueryParams decodes names and values, first value wins", "[web][query]") {
    auto query = QueryParams::parse("type=llm%2Egenerate&cursor=a+b%26c&&flag&empty=&type=other");
    REQUIRE(query);
    CHECK(query->get("type") == "llm.generate");
    CHECK(query->get("cursor") == "a b&c");
    CHECK(query->get("flag") == "");
    CHECK(query->get("empty") == "");
    CHECK_FALSE(query->get("missing"));
    CHECK(query->all().size() == 5);

    auto encoded_name = QueryParams::parse("%6Cimit=5");
    REQUIRE(encoded_name);
    CHECK(encoded_name->get("limit") == "5");

    CHECK_FALSE(QueryParams::parse("after=%zz"));
    CHECK_FALSE(QueryParams::parse("a%=1"));
    auto empty = QueryParams::parse("");
    REQUIRE(empty);
    CHECK(empty->all().empty());
}

TEST_CASE("match_route knows every v1 route and nothing else", "[web][routes]") {
    auto match = match_route("/v1/jobs/01HZX/events");
    REQUIRE(match);
    CHECK(match->route == Route::job_events);
    CHECK(match->job_id == "01HZX");

    match = match_route("/v1/jobs/01HZX");
    REQUIRE(match);
    CHECK(match->route == Route::job);

    match = match_route("/v1/jobs/a%2Fb/cancel");
    REQUIRE(match);
    CHECK(match->route == Route::job_cancel);
    CHECK(match->job_id == "a/b");  // decoded after splitting: %2F stays inside the id

    match = match_route("/v1/jobs/01HZX/snapshot");
    REQUIRE(match);
    CHECK(match->route == Route::job_snapshot);
    CHECK(route_template(Route::job_snapshot) == "/v1/jobs/{id}/snapshot");

    CHECK(match_route("/v1/jobs")->route == Route::jobs);
    CHECK(match_route("/healthz")->route == Route::healthz);
    CHECK(match_route("/readyz")->route == Route::readyz);

    CHECK_FALSE(match_route("/"));
    CHECK_FALSE(match_route("/v1/jobs/"));
    CHECK_FALSE(match_route("/v1/jobsx"));
    CHECK_FALSE(match_route("/v1/jobs//events"));
    CHECK_FALSE(match_route("/v1/jobs/x/events/"));
    CHECK_FALSE(match_route("/v1/jobs/x/unknown"));
    CHECK_FALSE(match_route("/v2/jobs"));
}

TEST_CASE("route labels are templates, never raw ids", "[web][routes]") {
    CHECK(route_label("/v1/jobs/01HZX?after=3") == "/v1/jobs/{id}");
    CHECK(route_label("/v1/jobs/01HZX/events?after=3") == "/v1/jobs/{id}/events");
    CHECK(route_label("/v1/jobs?limit=3") == "/v1/jobs");
    CHECK(route_label("/nope/01HZX") == "unmatched");
    CHECK(route_label("/metrics") == "/metrics");
    CHECK(allowed_methods(Route::jobs) == "GET, POST");
    CHECK(method_allowed(Route::job_cancel, "POST"));
    CHECK_FALSE(method_allowed(Route::job_cancel, "GET"));
}
