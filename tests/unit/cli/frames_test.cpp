#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "cli/frames.hpp"

using namespace jobcast::cli;
namespace json = boost::json;

TEST_CASE("server frames of Client API v1 are recognized", "[cli][frames]") {
    SECTION("subscribed") {
        const auto frame = parse_server_frame(R"({"type":"subscribed","job":"J","last_seq":7})");
        const auto& subscribed = std::get<SubscribedFrame>(frame);
        CHECK(subscribed.job == "J");
        CHECK(subscribed.last_seq == 7);
    }
    SECTION("one event") {
        const auto frame = parse_server_frame(
            R"({"type":"event","job":"J","seq":3,"kind":"token","ts":5,"data":{"text":"hi"}})");
        const auto& events = std::get<EventsFrame>(frame);
        CHECK(events.job == "J");
        REQUIRE(events.events.size() == 1);
        CHECK(events.events[0].seq == 3);
        CHECK(events.events[0].kind == "token");
        CHECK(events.events[0].ts == 5);
        CHECK(events.events[0].data.at("text") == "hi");
    }
    SECTION("a batch of events") {
        const auto frame =
            parse_server_frame(R"({"type":"events","job":"J","events":[)"
                               R"({"seq":4,"kind":"token","ts":1,"data":{"text":"a"}},)"
                               R"({"seq":5,"kind":"state","ts":2,"data":{"state":"succeeded"}}]})");
        const auto& events = std::get<EventsFrame>(frame);
        REQUIRE(events.events.size() == 2);
        CHECK(events.events[1].seq == 5);
        REQUIRE(terminal_outcome(events.events[1]));
        CHECK(*terminal_outcome(events.events[1]) == Outcome::succeeded);
    }
    SECTION("error") {
        const auto frame = parse_server_frame(
            R"({"type":"error","code":"not_found","message":"no such job","job":"J"})");
        const auto& error = std::get<ErrorFrame>(frame);
        CHECK(error.code == "not_found");
        CHECK(error.message == "no such job");
        CHECK(error.job == "J");
    }
    SECTION("pong, feed subscriptions and future types are ignored") {
        CHECK(std::holds_alternative<IgnoredFrame>(parse_server_frame(R"({"type":"pong"})")));
        CHECK(std::holds_alternative<IgnoredFrame>(
            parse_server_frame(R"({"type":"subscribed","feed":"jobs"})")));
        CHECK(std::holds_alternative<IgnoredFrame>(parse_server_frame(R"({"type":"hello"})")));
    }
}

TEST_CASE("frames that are not v1 are reported as malformed", "[cli][frames]") {
    for (const auto* text :
         {"not json", "[1,2]", R"({"no":"type"})", R"({"type":"event","job":"J","kind":"token"})",
          R"({"type":"event","job":"J","seq":0,"kind":"token"})",
          R"({"type":"events","job":"J","events":[{"seq":1}]})",
          R"({"type":"subscribed","job":"J"})"}) {
        INFO(text);
        CHECK(std::holds_alternative<MalformedFrame>(parse_server_frame(text)));
    }
}

TEST_CASE("only a terminal state event ends a job", "[cli][frames]") {
    const auto state = [](const char* s) {
        return StreamEvent{1, "state", 0, json::object{{"state", s}}};
    };
    CHECK(!terminal_outcome(state("queued")));
    CHECK(!terminal_outcome(state("running")));
    CHECK(*terminal_outcome(state("succeeded")) == Outcome::succeeded);
    CHECK(*terminal_outcome(state("failed")) == Outcome::failed);
    CHECK(*terminal_outcome(state("cancelled")) == Outcome::cancelled);
    CHECK(!terminal_outcome(StreamEvent{1, "result", 0, json::object{{"state", "failed"}}}));

    CHECK(exit_code(Outcome::succeeded) == ExitCode::succeeded);
    CHECK(to_int(exit_code(Outcome::failed)) == 1);
    CHECK(to_int(exit_code(Outcome::cancelled)) == 3);
}

TEST_CASE("the subscribe op names the job and the seq to resume after", "[cli][frames]") {
    CHECK(json::parse(subscribe_op("01J\"x", 42)) ==
          json::parse(R"({"op":"subscribe","job":"01J\"x","after":42})"));
}
