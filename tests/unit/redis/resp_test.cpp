// The RESP codec: commands encode as arrays of bulk strings; every RESP2 reply
// type decodes, whole or cut anywhere; bytes that are not RESP are an error.
#include <catch2/catch.hpp>

#include <system_error>

#include "redis/error.hpp"
#include "redis/resp.hpp"

namespace jobcast::redis {

using namespace std::literals;

namespace {

std::vector<Reply> read_all(RespReader& reader, std::string_view bytes) {
    reader.feed(bytes.data(), bytes.size());
    std::vector<Reply> replies;
    while (auto reply = reader.next())
        replies.push_back(std::move(*reply));
    return replies;
}

}  // namespace

TEST_CASE("a command encodes as an array of bulk strings, binary-safe", "[resp]") {
    CHECK(encode_command({"SET", "k", "v"}) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    CHECK(encode_command({"SET", "k", std::string("a\0\r\nb", 5)}) ==
          "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\0\r\nb\r\n"s);
    CHECK(encode_command({"PING", ""}) == "*2\r\n$4\r\nPING\r\n$0\r\n\r\n");
}

TEST_CASE("every RESP2 reply type decodes", "[resp]") {
    RespReader reader;
    auto replies = read_all(reader,
                            "+OK\r\n-MOVED 3999 127.0.0.1:6381\r\n:-42\r\n$5\r\nhe\0lo\r\n$-1\r\n"
                            "*-1\r\n*0\r\n*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n"sv);
    REQUIRE(replies.size() == 8);
    CHECK(replies[0] == Reply::of_status("OK"));
    CHECK(replies[1] == Reply::of_error("MOVED 3999 127.0.0.1:6381"));
    CHECK(replies[1].error_code() == "MOVED");
    CHECK(replies[2] == Reply::of_integer(-42));
    CHECK(replies[3] == Reply::of_string(std::string("he\0lo", 5)));
    CHECK(replies[4].is_nil());
    CHECK(replies[5].is_nil());
    CHECK(replies[6] == Reply::of_array({}));
    CHECK(replies[7] == Reply::of_array({Reply::of_integer(1),
                                         Reply::of_array({Reply::of_string("a"), Reply::nil()}),
                                         Reply::of_status("x")}));
}

TEST_CASE("a reply cut at every byte decodes the same", "[resp]") {
    const std::string bytes = "*2\r\n$5\r\nhello\r\n*2\r\n:7\r\n-ERR no\r\n+PONG\r\n";
    for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
        RespReader reader;
        auto first = read_all(reader, std::string_view(bytes).substr(0, cut));
        auto rest = read_all(reader, std::string_view(bytes).substr(cut));
        first.insert(first.end(), rest.begin(), rest.end());
        INFO("cut at " << cut);
        REQUIRE(first.size() == 2);
        CHECK(first[0] == Reply::of_array({Reply::of_string("hello"),
                                           Reply::of_array({Reply::of_integer(7),
                                                            Reply::of_error("ERR no")})}));
        CHECK(first[1] == Reply::of_status("PONG"));
    }
}

TEST_CASE("bytes that are not RESP are a protocol error", "[resp]") {
    // The last ones inside an array half built: what was built is freed.
    for (std::string_view garbage : {"hello\r\n"sv, "@1\r\n"sv, "$abc\r\n"sv, ":12x\r\n"sv,
                                     "*2\r\n$1\r\na\r\n@1\r\n"sv, "*2\r\n*1\r\n:1\r\n:x\r\n"sv}) {
        RespReader reader;
        INFO(garbage);
        try {
            read_all(reader, garbage);
            FAIL("no error");
        } catch (const std::system_error& e) {
            CHECK(e.code() == Errc::protocol_error);
        }
    }
}

}  // namespace jobcast::redis
