// The streaming wire format of Client API v1: WebSocket ops and frames, SSE
// text and the long-poll's events page, byte for byte where clients parse them.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "protocol/client_api.hpp"

using namespace jobcast;
using namespace jobcast::client_api;

namespace {

std::vector<Event> events(std::uint64_t first, std::uint64_t last) {
    std::vector<Event> out;
    for (auto seq = first; seq <= last; ++seq) {
        Event e;
        e.seq = seq;
        e.kind = EventKind::token;
        e.ts = 1'700'000'000'000'000 + static_cast<UnixUs>(seq);
        e.data = R"({"text":"t)" + std::to_string(seq) + R"("})";
        out.push_back(e);
    }
    return out;
}

std::vector<std::uint64_t> seqs(const boost::json::value& frame) {
    std::vector<std::uint64_t> out;
    const auto& object = frame.as_object();
    if (object.at("type") == "event") {
        out.push_back(object.at("seq").to_number<std::uint64_t>());
        return out;
    }
    for (const auto& e : object.at("events").as_array())
        out.push_back(e.at("seq").to_number<std::uint64_t>());
    return out;
}

}  // namespace

TEST_CASE("event_frame is exact", "[client_api]") {
    Event event;
    event.seq = 7;
    event.kind = EventKind::token;
    event.ts = 1700000000123456;
    event.data = R"({"text":"Hel"})";
    CHECK(event_frame("01HZY3J5KX8Q2V7R4M6N0P1S9T", event) ==
          R"({"type":"event","job":"01HZY3J5KX8Q2V7R4M6N0P1S9T","seq":7,"kind":"token",)"
          R"("ts":1700000000123456,"data":{"text":"Hel"}})");
}

TEST_CASE("a coalesced WebSocket frame carries every event of its slices, in order",
          "[client_api]") {
    const auto a = events(1, 3), b = events(4, 4), c = events(5, 8);
    const auto frame = websocket_frame("J1", std::vector<EventSlice>{{&a, 1}, {&b, 0}, {&c, 2}});
    const auto parsed = boost::json::parse(frame);
    CHECK(parsed.at("type") == "events");
    CHECK(parsed.at("job") == "J1");
    CHECK(seqs(parsed) == std::vector<std::uint64_t>{2, 3, 4, 7, 8});
    const auto& first = parsed.at("events").as_array().front();
    CHECK(first.at("kind") == "token");
    CHECK(first.at("data").at("text") == "t2");
    CHECK(first.at("ts").to_number<std::int64_t>() == a[1].ts);
}

TEST_CASE("one event on its own is an `event` frame, as when it was not coalesced",
          "[client_api]") {
    const auto a = events(1, 3), b = events(4, 4);
    const auto merged = websocket_frame("J1", std::vector<EventSlice>{{&a, 3}, {&b, 0}});
    CHECK(merged == websocket_frame("J1", b));
    CHECK(boost::json::parse(merged).at("type") == "event");
    CHECK(seqs(boost::json::parse(merged)) == std::vector<std::uint64_t>{4});
    // The one-batch form is the same function.
    CHECK(seqs(boost::json::parse(websocket_frame("J1", a, 1))) ==
          std::vector<std::uint64_t>{2, 3});
}

TEST_CASE("the server's control frames are exact", "[client_api]") {
    CHECK(error_frame("not_found", "no such job", "J1") ==
          R"({"type":"error","code":"not_found","message":"no such job","job":"J1"})");
    CHECK(error_frame("bad_json", "say \"hi\"") ==
          R"({"type":"error","code":"bad_json","message":"say \"hi\""})");
    CHECK(subscribed_frame("J1", 42) == R"({"type":"subscribed","job":"J1","last_seq":42})");
    CHECK(feed_subscribed_frame() == R"({"type":"subscribed","feed":"jobs"})");
    CHECK(pong_frame() == R"({"type":"pong"})");
    CHECK(authenticated_frame(std::nullopt) == R"({"type":"authenticated"})");
    CHECK(authenticated_frame(1700000000) == R"({"type":"authenticated","expires_at":1700000000})");
}

TEST_CASE("client ops parse, and malformed ones say what is wrong", "[client_api]") {
    auto op = [](std::string_view text) { return std::get<ClientOp>(parse_client_op(text)); };
    auto error = [](std::string_view text) { return std::get<OpError>(parse_client_op(text)); };

    const auto subscribe = std::get<SubscribeOp>(op(R"({"op":"subscribe","job":"J1","after":5})"));
    CHECK(subscribe.job == "J1");
    CHECK(subscribe.after == 5);
    CHECK(std::get<SubscribeFeedOp>(op(R"({"op":"subscribe","feed":"jobs"})")).feed == "jobs");
    CHECK(std::get<UnsubscribeOp>(op(R"({"op":"unsubscribe","job":"J1"})")).job == "J1");
    CHECK(std::get<CancelOp>(op(R"({"op":"cancel","job":"J1"})")).job == "J1");
    CHECK(std::holds_alternative<PingOp>(op(R"({"op":"ping"})")));
    CHECK(std::get<AuthOp>(op(R"({"op":"auth","token":"t"})")).token == "t");

    CHECK(error("{").code == "bad_json");
    CHECK(error("[]").code == "bad_json");
    CHECK(error(R"({"op":"dance"})").code == "unknown_op");
    const auto after = error(R"({"op":"subscribe","job":"J1","after":-1})");
    CHECK(after.code == "bad_request");
    CHECK(after.message == "'after' must be a non-negative integer");
    CHECK(after.job == "J1");
    CHECK(error(R"({"op":"cancel","job":"a b"})").message ==
          "'job' has characters a job id never has");
}

TEST_CASE("SSE text: one id/event/data block per event, comments and retry", "[client_api]") {
    const auto a = events(1, 2);
    CHECK(sse_text("J1", a) ==
          "id: 1\nevent: token\ndata: "
          R"({"seq":1,"kind":"token","ts":1700000000000001,"data":{"text":"t1"}})"
          "\n\n"
          "id: 2\nevent: token\ndata: "
          R"({"seq":2,"kind":"token","ts":1700000000000002,"data":{"text":"t2"}})"
          "\n\n");
    CHECK(sse_text("J1", a, 1).rfind("id: 2\n", 0) == 0);
    CHECK(sse_text("J1", a, 2).empty());
    CHECK(sse_comment("keepalive") == ": keepalive\n\n");
    CHECK(sse_retry(1000) == "retry: 1000\n\n");
}

TEST_CASE("a page framed event by event is the frame of its events", "[client_api]") {
    const auto page = events(1, 3);
    for (auto format : {PageFramer::Format::websocket, PageFramer::Format::sse}) {
        PageFramer framer(format, "J1");
        CHECK(framer.take().empty());
        for (std::size_t n = 1; n <= page.size(); ++n) {
            for (std::size_t i = 0; i < n; ++i)
                framer.add(view_of(page[i]));
            CHECK(framer.events() == n);
            const std::vector<Event> first(page.begin(), page.begin() + n);
            CHECK(framer.take() == (format == PageFramer::Format::websocket
                                        ? websocket_frame("J1", first)
                                        : sse_text("J1", first)));
            CHECK(framer.events() == 0);  // taken: empty again
        }
    }
    PageFramer objects(PageFramer::Format::objects, "J1");
    objects.add(view_of(page[0]));
    objects.add(view_of(page[1]));
    CHECK(objects.take() ==
          R"({"seq":1,"kind":"token","ts":1700000000000001,"data":{"text":"t1"}},)"
          R"({"seq":2,"kind":"token","ts":1700000000000002,"data":{"text":"t2"}})");
}

TEST_CASE("the long-poll's events page is exact", "[client_api]") {
    CHECK(events_page({}, 0, false) == R"({"events":[],"last_seq":0,"done":false})");
    PageFramer objects(PageFramer::Format::objects, "J1");
    for (const Event& event : events(3, 4))
        objects.add(view_of(event));
    CHECK(events_page(objects.take(), 4, true) ==
          R"({"events":[{"seq":3,"kind":"token","ts":1700000000000003,"data":{"text":"t3"}},)"
          R"({"seq":4,"kind":"token","ts":1700000000000004,"data":{"text":"t4"}}],)"
          R"("last_seq":4,"done":true})");
}
