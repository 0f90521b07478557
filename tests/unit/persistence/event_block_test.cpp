#include "persistence/event_block.hpp"

#include <catch2/catch.hpp>

#include <random>

namespace jobcast::store {
namespace {

std::vector<Event> sample_events(std::uint64_t first_seq, std::size_t n) {
    std::vector<Event> events;
    for (std::size_t i = 0; i < n; ++i) {
        Event event;
        event.seq = first_seq + i;
        event.kind = static_cast<EventKind>(i % 6);
        event.ts = 1'700'000'000'000'000 + static_cast<UnixUs>(i * 37) - (i % 3 == 0 ? 500 : 0);
        event.data = "{\"i\":" + std::to_string(i) + std::string(i % 5 * 40, ' ') + "}";
        events.push_back(event);
    }
    return events;
}

void require_same(const std::vector<EventView>& got, const std::vector<Event>& want) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i].seq == want[i].seq);
        CHECK(got[i].kind == want[i].kind);
        CHECK(got[i].ts == want[i].ts);
        CHECK(got[i].data == want[i].data);
    }
}

// Encodes `events` into one block and decodes all of it back, reading at most `limit`.
void require_round_trip(const std::vector<Event>& events, std::size_t limit) {
    std::string body;
    encode_block(events, body);
    std::vector<EventView> decoded;
    REQUIRE_FALSE(decode_block(body, events.front().seq, events.back().seq, 0, limit, decoded));
    require_same(decoded, events);
}

}  // namespace

TEST_CASE("event block round-trips every field", "[event_block]") {
    require_round_trip(sample_events(41, 100), 1000);
}

TEST_CASE("event block keeps extreme timestamps and empty data", "[event_block]") {
    std::vector<Event> events(4);
    events[0].ts = INT64_MIN;
    events[1].ts = INT64_MAX;
    events[2].ts = 0;
    events[3].ts = -1;
    for (std::size_t i = 0; i < events.size(); ++i) {
        events[i].seq = i + 1;
        events[i].data.clear();
    }
    require_round_trip(events, 10);
}

TEST_CASE("event block decodes only what follows `after`, up to the limit", "[event_block]") {
    const auto events = sample_events(10, 20);  // seqs 10..29
    std::string body;
    encode_block(events, body);

    std::vector<EventView> decoded;
    REQUIRE_FALSE(decode_block(body, 10, 29, 14, 3, decoded));
    require_same(decoded, {events.begin() + 5, events.begin() + 8});  // 15, 16, 17

    decoded.clear();
    REQUIRE_FALSE(decode_block(body, 10, 29, 29, 10, decoded));
    CHECK(decoded.empty());

    // Appends after what `out` already holds.
    decoded.assign(1, EventView{});
    REQUIRE_FALSE(decode_block(body, 10, 29, 27, 10, decoded));
    REQUIRE(decoded.size() == 3);
    CHECK(decoded[1].seq == 28);
    CHECK(decoded[2].seq == 29);
}

TEST_CASE("corrupt event blocks are reported, never read past", "[event_block]") {
    const auto events = sample_events(1, 8);
    std::string body;
    encode_block(events, body);
    std::vector<EventView> out(2);  // must be left as it was

    SECTION("every truncation") {
        for (std::size_t size = 0; size < body.size(); ++size) {
            // A fresh copy so that ASan sees reads past the shortened buffer.
            const std::string truncated = body.substr(0, size);
            auto error = decode_block(truncated, 1, 8, 0, 100, out);
            REQUIRE(error);
            CHECK(out.size() == 2);
        }
    }
    SECTION("unknown format") {
        body[0] = 7;
        auto error = decode_block(body, 1, 8, 0, 100, out);
        REQUIRE(error);
        CHECK_THAT(*error, Catch::Contains("format"));
    }
    SECTION("unknown kind") {
        body[1] = 42;
        auto error = decode_block(body, 1, 8, 0, 100, out);
        REQUIRE(error);
        CHECK_THAT(*error, Catch::Contains("kind"));
    }
    SECTION("a length running past the end") {
        std::string crafted;
        crafted.push_back(1);                    // format
        crafted.push_back(2);                    // kind token
        crafted.push_back(0);                    // ts delta
        crafted.append("\xff\xff\xff\xff\x0f");  // length 2^32 - 1
        crafted.append("{}");
        auto error = decode_block(crafted, 1, 1, 0, 100, out);
        REQUIRE(error);
        CHECK_THAT(*error, Catch::Contains("past"));
    }
    SECTION("an overlong varint") {
        std::string crafted("\x01\x02", 2);
        crafted.append(11, '\xff');
        CHECK(decode_block(crafted, 1, 1, 0, 100, out));
    }
    SECTION("fewer events than the row's seq range") {
        CHECK(decode_block(body, 1, 9, 0, 100, out));
    }
    SECTION("more events than the row's seq range") {
        auto error = decode_block(body, 1, 7, 0, 100, out);
        REQUIRE(error);
        CHECK_THAT(*error, Catch::Contains("trailing"));
    }
    SECTION("a nonsense seq range") {
        CHECK(decode_block(body, 0, 7, 0, 100, out));
        CHECK(decode_block(body, 9, 8, 0, 100, out));
        CHECK(decode_block(body, 1, UINT64_MAX, 0, 100, out));
    }
    CHECK(out.size() == 2);
}

TEST_CASE("random corruption of event blocks never crashes", "[event_block]") {
    const auto events = sample_events(1, 16);
    std::string body;
    encode_block(events, body);
    std::mt19937 random(12345);
    std::vector<EventView> out;
    for (int round = 0; round < 3000; ++round) {
        std::string mutated = body;
        const int flips = 1 + static_cast<int>(random() % 4);
        for (int i = 0; i < flips; ++i) {
            mutated[random() % mutated.size()] = static_cast<char>(random());
        }
        if (random() % 4 == 0) mutated.resize(random() % mutated.size());
        out.clear();
        auto error = decode_block(mutated, 1, 16, random() % 8, 1 + random() % 20, out);
        if (error) CHECK(out.empty());
        for (const EventView& event : out)
            CHECK(event.data.size() <= mutated.size());
    }
}

}  // namespace jobcast::store
