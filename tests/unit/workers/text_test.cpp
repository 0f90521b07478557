#include <catch2/catch.hpp>

#include "workers/text.hpp"

using jobcast::worker::append_json_string;
using jobcast::worker::is_valid_utf8;
using jobcast::worker::sanitize_utf8;

TEST_CASE("sanitize_utf8 keeps valid text and replaces invalid bytes with U+FFFD") {
    CHECK(sanitize_utf8("plain ascii") == "plain ascii");
    CHECK(sanitize_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") ==
          "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    CHECK(sanitize_utf8("a\xFF"
                        "b") ==
          "a\xEF\xBF\xBD"
          "b");
    CHECK(sanitize_utf8("\xC3") == "\xEF\xBF\xBD");                                  // truncated
    CHECK(sanitize_utf8("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
    CHECK(sanitize_utf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
    CHECK(is_valid_utf8(sanitize_utf8("\x80\x81\xFE garbage \xF5\x80")));
    CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
}

TEST_CASE("append_json_string escapes quotes, backslashes and control characters") {
    std::string out;
    append_json_string(out, "say \"hi\"\\\n\t\x01");
    CHECK(out == R"("say \"hi\"\\\n\t\u0001")");
    out.clear();
    append_json_string(out, "bad \xFF byte");
    CHECK(out == R"("bad \ufffd byte")");  // U+FFFD, escaped
}
