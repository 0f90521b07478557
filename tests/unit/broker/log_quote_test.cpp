// Log injection (audit M2): a peer- or client-supplied value printed through
// log_quote, and any message through the text and JSON log formats, can never
// end the line, forge a field or carry control characters.
#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include "common/log_quote.hpp"
#include "common/logging.hpp"

using jobcast::log_quote;

TEST_CASE("log_quote quotes and escapes quotes and backslashes") {
    CHECK(log_quote("") == R"("")");
    CHECK(log_quote("w-1") == R"("w-1")");
    CHECK(log_quote("a b") == R"("a b")");
    CHECK(log_quote(R"(say "hi")") == R"("say \"hi\"")");
    CHECK(log_quote(R"(C:\tmp)") == R"("C:\\tmp")");
    // A value cannot close its quotes and add a field.
    CHECK(log_quote(R"(x" owner="bob)") == R"("x\" owner=\"bob")");
}

TEST_CASE("log_quote escapes every control character, so a value stays on its line") {
    CHECK(log_quote("a\nb") == R"("a\nb")");
    CHECK(log_quote("a\r\nb") == R"("a\r\nb")");
    CHECK(log_quote("a\tb") == R"("a\tb")");
    CHECK(log_quote(std::string("a\0b", 3)) == R"("a\x00b")");
    CHECK(log_quote("\x1b[31mred") == R"("\x1b[31mred")");  // terminal escape sequence
    CHECK(log_quote("del\x7f") == R"("del\x7f")");
    CHECK(log_quote("nel\xc2\x85") == R"("nel\u0085")");  // C1: NEL breaks lines for some readers
    CHECK(log_quote("ls\xe2\x80\xa8ps\xe2\x80\xa9") == R"("ls\u2028ps\u2029")");
    for (int c = 0; c < 0x20; ++c) {
        const std::string quoted = log_quote(std::string(1, static_cast<char>(c)));
        INFO("byte " << c);
        for (char q : quoted)
            CHECK(static_cast<unsigned char>(q) >= 0x20);
    }
}

TEST_CASE("log_quote keeps valid UTF-8 and escapes invalid bytes") {
    CHECK(log_quote("naïve – 東京 🚀") == "\"naïve – 東京 🚀\"");
    CHECK(log_quote("\xff") == R"("\xff")");
    CHECK(log_quote("a\xc3") == R"("a\xc3")");                // truncated sequence
    CHECK(log_quote("\xc0\xaf") == R"("\xc0\xaf")");          // overlong '/'
    CHECK(log_quote("\xed\xa0\x80") == R"("\xed\xa0\x80")");  // a UTF-16 surrogate
    CHECK(log_quote("\x80x") == R"("\x80x")");                // stray continuation byte
}

TEST_CASE("log_quote cuts long values on a character boundary and says so") {
    const std::string long_value(1000, 'a');
    const std::string quoted = log_quote(long_value);
    CHECK(quoted == "\"" + std::string(256, 'a') + "\xe2\x80\xa6[+744 bytes]\"");
    CHECK(log_quote("abcdef", 3) == "\"abc\xe2\x80\xa6[+3 bytes]\"");
    // Never half a character: "é" is two bytes.
    CHECK(log_quote("aé", 2) == "\"a\xe2\x80\xa6[+2 bytes]\"");
    CHECK(log_quote("abc", 3) == R"("abc")");
}

namespace {

// Logs `message` through a logger formatted as configure_logging sets it up.
std::string formatted(const std::string& format, const std::string& message) {
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    auto logger = std::make_shared<spdlog::logger>("log_quote_test", sink);
    spdlog::register_logger(logger);
    jobcast::configure_logging("info", format);
    logger->info("{}", message);
    logger->flush();
    spdlog::drop("log_quote_test");
    return out.str();
}

}  // namespace

TEST_CASE("the text log format keeps each record on one line whatever was logged") {
    // What a call site that forgot log_quote would print (audit repro 07).
    const std::string forged =
        "reason=unknown type 'x\n2030-01-01T00:00:00.000 info audit event=cancel owner=\"bob\"'";
    const std::string line = formatted("text", forged);
    REQUIRE(!line.empty());
    CHECK(line.find('\n') == line.size() - 1);  // the record's own end only
    CHECK(line.find("x\\n2030-01-01T00:00:00.000 info audit") != std::string::npos);
    CHECK(line.find("owner=\"bob\"") != std::string::npos);  // quotes left as they were
    const std::string more = formatted("text",
                                       "a\rb\xe2\x80\xa8"
                                       "c\x1b[2Jd\xff");
    CHECK(more.find("a\\rb\\u2028c\\x1b[2Jd\\xff") != std::string::npos);
    CHECK(more.find('\r') == std::string::npos);
}

TEST_CASE("the json log format escapes the message into a valid JSON string") {
    const std::string line = formatted("json",
                                       "a\"b\\c\nd\x01"
                                       "e\x7f\xe2\x80\xa8"
                                       "f\xff");
    REQUIRE(!line.empty());
    CHECK(line.find('\n') == line.size() - 1);
    CHECK(line.find(R"("msg":"a\"b\\c\nd\u0001e\u007f\u2028f\\xff")") != std::string::npos);
    jobcast::configure_logging("info", "text");  // leave the default format for other tests
}
