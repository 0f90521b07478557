#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <sstream>

#include "cli/renderer.hpp"

using namespace jobcast::cli;
namespace json = boost::json;

namespace {

StreamEvent event(std::uint64_t seq, std::string kind, std::string_view data) {
    return StreamEvent{seq, std::move(kind), 1700000000000000, json::parse(data).as_object()};
}

struct Screen {
    std::ostringstream out;
    std::ostringstream err;
    Renderer renderer;

    explicit Screen(RenderOptions options = {}) : renderer(std::move(options), out, err) {}
};

RenderOptions on_terminal(int columns = 80) {
    RenderOptions options;
    options.terminal = true;
    options.columns = columns;
    return options;
}

}  // namespace

TEST_CASE("tokens are written exactly as streamed", "[cli][render]") {
    Screen screen;
    screen.renderer.render(event(3, "token", R"({"text":"the"})"));
    screen.renderer.render(event(4, "token", R"({"text":" stream"})"));
    screen.renderer.render(event(5, "token", R"({"text":" of\ntokens"})"));
    screen.renderer.render(event(6, "result", R"({"text":"the stream of\ntokens","tokens":3})"));
    screen.renderer.render(event(7, "state", R"({"state":"succeeded","attempt":1})"));
    screen.renderer.finish();
    // Off a terminal nothing is added, not even a final newline: the output
    // is byte for byte the job's text.
    CHECK(screen.out.str() == "the stream of\ntokens");
    CHECK(screen.err.str() == "[succeeded]\n");
}

TEST_CASE("a terminal gets a final newline after text that ends mid-line", "[cli][render]") {
    Screen screen(on_terminal());
    screen.renderer.render(event(3, "token", R"({"text":"hello"})"));
    screen.renderer.finish();
    CHECK(screen.out.str() == "hello\n");
}

TEST_CASE("log lines go to stdout, error-level ones to stderr", "[cli][render]") {
    Screen screen;
    screen.renderer.render(event(3, "log", R"({"level":"info","message":"started sh pid=42"})"));
    screen.renderer.render(event(4, "log", R"({"level":"warn","message":"disk almost full"})"));
    screen.renderer.render(event(5, "log", R"({"level":"error","message":"no such file"})"));
    CHECK(screen.out.str() == "started sh pid=42\ndisk almost full\n");
    CHECK(screen.err.str() == "no such file\n");
}

TEST_CASE("a log line after streamed text starts on its own line", "[cli][render]") {
    Screen screen;
    screen.renderer.render(event(3, "token", R"({"text":"partial"})"));
    screen.renderer.render(event(4, "log", R"({"level":"info","message":"note"})"));
    CHECK(screen.out.str() == "partial\nnote\n");
}

TEST_CASE("progress off a terminal is one line per event", "[cli][render]") {
    Screen screen;
    screen.renderer.render(
        event(3, "progress", R"({"fraction":0,"stage":"plan","message":"stage 1 of 4: plan"})"));
    screen.renderer.render(event(4, "progress", R"({"fraction":0.5,"stage":"gather"})"));
    screen.renderer.render(event(5, "progress", R"({"fraction":0.29})"));
    screen.renderer.render(event(6, "progress", R"({"fraction":1,"stage":"read docs"})"));
    CHECK(screen.out.str() ==
          "progress 0% stage=plan\n"
          "progress 50% stage=gather\n"
          "progress 29%\n"
          "progress 100% stage=\"read docs\"\n");
}

TEST_CASE("progress on a terminal is a bar redrawn in place", "[cli][render]") {
    Screen screen(on_terminal(80));
    screen.renderer.render(event(3, "progress", R"({"fraction":0.25,"stage":"plan"})"));
    CHECK(screen.out.str() == "[######------------------]  25% plan");

    // A log line erases the bar, prints, and draws the bar again below it.
    screen.renderer.render(event(4, "log", R"({"level":"info","message":"reading"})"));
    CHECK(screen.out.str() ==
          "[######------------------]  25% plan"
          "\r\033[Kreading\n"
          "[######------------------]  25% plan");

    screen.renderer.render(event(5, "progress", R"({"fraction":0.5,"stage":"gather"})"));
    CHECK(screen.out.str().ends_with("\r\033[K[############------------]  50% gather"));

    // The end of the job removes the bar; the state line goes to stderr.
    screen.renderer.render(event(6, "state", R"({"state":"succeeded","attempt":1})"));
    screen.renderer.finish();
    CHECK(screen.out.str().ends_with("50% gather\r\033[K"));
    CHECK(screen.err.str() == "[succeeded]\n");
}

TEST_CASE("the progress bar fits the terminal's width", "[cli][render]") {
    const auto bar = Renderer::progress_bar(0.5, "gather", "a long message about the stage", 40);
    CHECK(bar.size() == 39);
    CHECK(bar.starts_with("[############------------]  50% gather"));
    // Never cut inside a UTF-8 sequence.
    const auto utf8 = Renderer::progress_bar(0, "é", "ééééééééééééééééééééé", 40);
    CHECK(utf8.size() <= 39);
    CHECK((static_cast<unsigned char>(utf8.back()) & 0xC0) != 0xC0);
}

TEST_CASE("state events are short lines on stderr", "[cli][render]") {
    const auto line = [](std::string_view data) {
        return Renderer::state_line(json::parse(data).as_object());
    };
    CHECK(line(R"({"state":"queued","attempt":0})") == "[queued]");
    CHECK(line(R"({"state":"running","attempt":1,"worker":"worker-x"})") ==
          "[running attempt 1 on worker-x]");
    CHECK(line(R"({"state":"running","attempt":2,"worker":"w","resume_seq":41})") ==
          "[running attempt 2 on w, resuming after seq 41]");
    CHECK(line(R"({"state":"queued","attempt":1,"reason":"worker w1 lost its lease"})") ==
          "[queued: worker w1 lost its lease]");
    CHECK(line(R"({"state":"cancelled","attempt":1})") == "[cancelled]");
    CHECK(line(R"({})").empty());
}

TEST_CASE("a failure's reason is not repeated after its error event", "[cli][render]") {
    Screen screen;
    screen.renderer.render(event(3, "error", R"({"message":"command 'rm' is not allowed"})"));
    screen.renderer.render(event(
        4, "state", R"({"state":"failed","attempt":1,"reason":"command 'rm' is not allowed"})"));
    CHECK(screen.err.str() == "error: command 'rm' is not allowed\n[failed]\n");
    CHECK(screen.out.str().empty());
}

TEST_CASE("quiet drops state lines and notices but not errors", "[cli][render]") {
    RenderOptions quiet;
    quiet.quiet = true;
    Screen screen(quiet);
    screen.renderer.render(event(1, "state", R"({"state":"queued","attempt":0})"));
    screen.renderer.notice("[connection lost]");
    screen.renderer.render(event(2, "error", R"({"message":"boom"})"));
    CHECK(screen.err.str() == "error: boom\n");
}

TEST_CASE("json mode prints every event as one JSON line", "[cli][render]") {
    RenderOptions json_lines;
    json_lines.json = true;
    json_lines.job = "J1";
    Screen screen(json_lines);
    screen.renderer.render(event(3, "token", R"({"text":"a"})"));
    screen.renderer.render(event(4, "result", R"({"text":"a","tokens":1})"));
    screen.renderer.finish();
    std::istringstream lines(screen.out.str());
    std::string first, second;
    std::getline(lines, first);
    std::getline(lines, second);
    CHECK(json::parse(first) ==
          json::parse(
              R"({"job":"J1","seq":3,"kind":"token","ts":1700000000000000,"data":{"text":"a"}})"));
    CHECK(json::parse(second).at("kind") == "result");
    CHECK(screen.err.str().empty());
}

TEST_CASE("unknown event kinds are skipped", "[cli][render]") {
    Screen screen;
    screen.renderer.render(event(3, "telemetry", R"({"x":1})"));
    CHECK(screen.out.str().empty());
    CHECK(screen.err.str().empty());
}
