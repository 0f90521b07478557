#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "live/hub.hpp"

using namespace jobcast;
using namespace jobcast::live;

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

TEST_CASE("a coalesced WebSocket frame carries every event of its slices, in order", "[web][hub]") {
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

TEST_CASE("one event on its own is an `event` frame, as when it was not coalesced", "[web][hub]") {
    const auto a = events(1, 3), b = events(4, 4);
    const auto merged = websocket_frame("J1", std::vector<EventSlice>{{&a, 3}, {&b, 0}});
    CHECK(merged == websocket_frame("J1", b));
    CHECK(boost::json::parse(merged).at("type") == "event");
    CHECK(seqs(boost::json::parse(merged)) == std::vector<std::uint64_t>{4});
    // The one-batch form is the same function.
    CHECK(seqs(boost::json::parse(websocket_frame("J1", a, 1))) ==
          std::vector<std::uint64_t>{2, 3});
}
