#include <catch2/catch.hpp>

#include <msgpack.hpp>

#include "cluster/live_message.hpp"

using jobcast::Event;
using jobcast::EventKind;
using jobcast::cluster::decode_live_message;
using jobcast::cluster::encode_live_message;

TEST_CASE("a live message carries a job's committed events unchanged") {
    jobcast::store::JobEvents batch{
        "J1",
        "alice",
        {Event{7, EventKind::token, 1700000000000001, R"({"text":"hé \"x\""})"},
         Event{8, EventKind::state, 1700000000000002, R"({"state":"succeeded"})"}}};
    const auto decoded = decode_live_message(encode_live_message(batch));
    REQUIRE(decoded);
    CHECK(decoded->job == "J1");
    CHECK(decoded->owner == "alice");
    REQUIRE(decoded->events.size() == 2);
    CHECK(decoded->events[0].seq == 7);
    CHECK(decoded->events[0].kind == EventKind::token);
    CHECK(decoded->events[0].ts == 1700000000000001);
    CHECK(decoded->events[0].data == batch.events[0].data);
    CHECK(decoded->events[1].kind == EventKind::state);
}

namespace {
std::string pack_events(std::uint64_t seq1, std::uint64_t seq2, const char* kind) {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pack(buffer);
    pack.pack_array(3);
    pack.pack(std::string("J"));
    pack.pack(std::string("o"));
    pack.pack_array(2);
    for (auto seq : {seq1, seq2}) {
        pack.pack_array(4);
        pack.pack(seq);
        pack.pack(std::string(kind));
        pack.pack(1);
        pack.pack(std::string("{}"));
    }
    return {buffer.data(), buffer.size()};
}
}  // namespace

TEST_CASE("a live message that is not what a broker publishes is refused") {
    CHECK_FALSE(decode_live_message(""));
    CHECK_FALSE(decode_live_message("\xc1"));            // never-used msgpack byte
    CHECK_FALSE(decode_live_message("\x93\xa1J\xa1o"));  // truncated
    CHECK(decode_live_message(pack_events(1, 2, "token")));
    CHECK_FALSE(decode_live_message(pack_events(2, 2, "token")));  // seq not increasing
    CHECK_FALSE(decode_live_message(pack_events(0, 1, "token")));  // seq 0 does not exist
    CHECK_FALSE(decode_live_message(pack_events(1, 2, "shout")));  // unknown kind
    msgpack::sbuffer buffer;
    msgpack::pack(buffer, std::vector<int>{1, 2, 3});
    CHECK_FALSE(decode_live_message({buffer.data(), buffer.size()}));
}
