// format=ui-message: a job's log as the AI SDK's UI message stream, chunk by
// chunk, and the ids that let any cut of the stream resume exactly.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <map>

#include "protocol/client_api.hpp"
#include "protocol/job_fold.hpp"

using namespace jobcast;
using namespace jobcast::client_api;

namespace {

Event event(std::uint64_t seq, EventKind kind, std::string data) {
    Event e;
    e.seq = seq;
    e.kind = kind;
    e.ts = 1'700'000'000'000'000;
    e.data = std::move(data);
    return e;
}

Event state(std::uint64_t seq, std::string_view s, int attempt, std::string_view reason = {}) {
    std::string data =
        R"({"state":")" + std::string(s) + R"(","attempt":)" + std::to_string(attempt);
    if (!reason.empty()) data += R"(,"reason":")" + std::string(reason) + '"';
    return event(seq, EventKind::state, data + "}");
}

Event token(std::uint64_t seq, std::string_view json_text) {
    return event(seq, EventKind::token, R"({"text":)" + std::string(json_text) + "}");
}

// A job that streams, reports progress and a log line, and succeeds.
std::vector<Event> succeeded_job() {
    return {state(1, "queued", 0),
            state(2, "running", 1),
            token(3, R"("Hel")"),
            token(4, R"("lo \"q\"\n\u0001 \\ é")"),
            event(5, EventKind::progress, R"({"fraction":0.5,"stage":"write"})"),
            event(6, EventKind::log, R"({"level":"info","message":"half"})"),
            token(7, R"("!")"),
            event(8, EventKind::result, R"({"text":"done"})"),
            state(9, "succeeded", 1)};
}

// What a client reading the stream ends up with (the AI SDK's rules for the
// chunks used here; a text-delta outside an open part is an error).
struct Reader {
    std::string text;
    std::map<std::string, bool> open;
    std::vector<std::string> types;
    std::uint64_t last_id = 0;
    bool done = false;

    void read(const std::string& sse) {
        std::size_t at = 0;
        while (at < sse.size()) {
            auto end = sse.find("\n\n", at);
            REQUIRE(end != std::string::npos);
            std::string block = sse.substr(at, end - at);
            at = end + 2;
            REQUIRE(block.rfind("id: ", 0) == 0);  // every event has an id
            auto nl = block.find('\n');
            std::uint64_t id = std::stoull(block.substr(4, nl - 4));
            REQUIRE(block.compare(nl + 1, 6, "data: ") == 0);
            std::string data = block.substr(nl + 7);
            REQUIRE(data.find('\n') == std::string::npos);
            REQUIRE_FALSE(done);
            if (data == "[DONE]") {
                done = true;
            } else {
                apply(boost::json::parse(data).as_object());
            }
            CHECK(id >= last_id);
            last_id = id;
        }
    }

    void apply(const boost::json::object& chunk) {
        std::string type(chunk.at("type").as_string());
        types.push_back(type);
        if (type == "text-start") open[std::string(chunk.at("id").as_string())] = true;
        if (type == "text-delta") {
            REQUIRE(open.count(std::string(chunk.at("id").as_string())));
            text += chunk.at("delta").as_string();
        }
        if (type == "text-end") {
            REQUIRE(open.erase(std::string(chunk.at("id").as_string())) == 1);
        }
    }
};

// Everything a stream writes for `all`, each restatement given the job's text
// with `all` folded up to the `running` event that waits for it, as the SSE
// session reads it from the store.
std::string format_all(UiMessageStream& stream, const std::vector<Event>& all) {
    std::string out = stream.format(all);
    while (const auto through = stream.restating()) {
        JobFold fold;
        for (const Event& event : all) {
            if (event.seq <= through) fold_event(fold, event, read_event_data(event), 0);
        }
        out += stream.restate(fold.text);
        out += stream.format(all);
    }
    return out;
}

// A job whose attempt 1 is requeued after a token its checkpoint (seq 4)
// does not cover; attempt 2 resumes from the checkpoint.
std::vector<Event> resumed_job() {
    return {state(1, "queued", 0),
            state(2, "running", 1),
            token(3, R"("one ")"),
            token(4, R"("two ")"),  // the checkpoint covers seq 4
            token(5, R"("thr")"),
            state(6, "queued", 1, "lease lost"),
            event(7, EventKind::state, R"({"state":"running","attempt":2,"resume_seq":4})"),
            token(8, R"("three")"),
            event(9, EventKind::result, R"({"text":"one two three"})"),
            state(10, "succeeded", 2)};
}

// The text of each part, in order: the message's last one is the job's text.
std::vector<std::string> parts_of(const std::string& sse) {
    std::vector<std::string> parts;
    std::size_t at = 0;
    while ((at = sse.find("data: {", at)) != std::string::npos) {
        const auto end = sse.find('\n', at);
        auto chunk = boost::json::parse(sse.substr(at + 6, end - at - 6)).as_object();
        if (chunk.at("type") == "text-start") parts.emplace_back();
        if (chunk.at("type") == "text-delta") parts.back() += chunk.at("delta").as_string();
        at = end;
    }
    return parts;
}

}  // namespace

TEST_CASE("ui-message: a succeeded job, chunk by chunk", "[ui_message]") {
    UiMessageStream stream("J1", 0, 0);
    auto all = succeeded_job();
    std::string out = stream.format(all);
    CHECK(out ==
          "id: 0\ndata: {\"type\":\"start\",\"messageId\":\"J1\"}\n\n"
          "id: 1\ndata: {\"type\":\"data-state\",\"data\":{\"state\":\"queued\",\"attempt\":0},"
          "\"transient\":true}\n\n"
          "id: 2\ndata: {\"type\":\"data-state\",\"data\":{\"state\":\"running\",\"attempt\":1},"
          "\"transient\":true}\n\n"
          "id: 2\ndata: {\"type\":\"text-start\",\"id\":\"J1-1\"}\n\n"
          "id: 3\ndata: {\"type\":\"text-delta\",\"id\":\"J1-1\",\"delta\":\"Hel\"}\n\n"
          "id: 4\ndata: {\"type\":\"text-delta\",\"id\":\"J1-1\","
          "\"delta\":\"lo \\\"q\\\"\\n\\u0001 \\\\ é\"}\n\n"
          "id: 5\ndata: {\"type\":\"data-progress\",\"data\":{\"fraction\":0.5,\"stage\":"
          "\"write\"},\"transient\":true}\n\n"
          "id: 6\ndata: {\"type\":\"data-log\",\"data\":{\"level\":\"info\",\"message\":"
          "\"half\"},\"transient\":true}\n\n"
          "id: 7\ndata: {\"type\":\"text-delta\",\"id\":\"J1-1\",\"delta\":\"!\"}\n\n"
          "id: 7\ndata: {\"type\":\"text-end\",\"id\":\"J1-1\"}\n\n"
          "id: 8\ndata: {\"type\":\"data-result\",\"data\":{\"text\":\"done\"},"
          "\"transient\":true}\n\n"
          "id: 8\ndata: {\"type\":\"data-state\",\"data\":{\"state\":\"succeeded\","
          "\"attempt\":1},\"transient\":true}\n\n"
          "id: 9\ndata: {\"type\":\"finish\",\"finishReason\":\"stop\"}\n\n"
          "id: 9\ndata: [DONE]\n\n");
    Reader reader;
    reader.read(out);
    CHECK(reader.text == "Hello \"q\"\n\x01 \\ é!");
    CHECK(reader.done);
    CHECK(stream.format(all).empty());  // nothing twice
}

TEST_CASE("ui-message: a resumed stream re-opens the part it resumes in", "[ui_message]") {
    auto all = succeeded_job();
    UiMessageStream stream("J1", 3, 1);
    std::string out = stream.format(all);
    CHECK(out.rfind("id: 3\ndata: {\"type\":\"text-start\",\"id\":\"J1-1\"}\n\n"
                    "id: 4\ndata: {\"type\":\"text-delta\"",
                    0) == 0);
    CHECK(out.find("\"start\"") == std::string::npos);  // `start` is seq 1's only
    Reader reader;
    reader.read(out);
    CHECK(reader.text == "lo \"q\"\n\x01 \\ é!");
}

TEST_CASE("ui-message: a resumed stream never ends a part it did not open", "[ui_message]") {
    std::vector<Event> all = {state(1, "queued", 0), state(2, "running", 1), token(3, R"("a")"),
                              event(4, EventKind::result, "{}"), state(5, "succeeded", 1)};
    UiMessageStream stream("J", 3, 1);
    Reader reader;
    reader.read(stream.format(all));
    CHECK(reader.types == std::vector<std::string>{"data-result", "data-state", "finish"});
    CHECK(reader.done);
}

TEST_CASE("ui-message: any cut resumes exactly from its last id", "[ui_message]") {
    std::vector<Event> all = {state(1, "queued", 0),
                              state(2, "running", 1),
                              token(3, R"("one ")"),
                              token(4, R"("two ")"),
                              event(5, EventKind::error, R"({"message":"lost"})"),
                              state(6, "queued", 1, "retry: lost"),
                              state(7, "running", 2),
                              token(8, R"("three ")"),
                              event(9, EventKind::log, R"({"level":"info","message":"x"})"),
                              token(10, R"("four")"),
                              event(11, EventKind::result, R"({})"),
                              state(12, "succeeded", 2)};
    std::string full = UiMessageStream("J", 0, 0).format(all);
    Reader whole;
    whole.read(full);
    CHECK(whole.text == "one two three four");
    CHECK(whole.open.empty());
    // Cut after each SSE event; the next connection resumes after its id.
    std::size_t at = 0;
    int cuts = 0;
    while ((at = full.find("\n\n", at)) != std::string::npos) {
        at += 2;
        Reader first;
        first.read(full.substr(0, at));
        if (first.done) break;
        if (first.last_id == all.back().seq) {
            // Cut between `finish` and `[DONE]`: the broker answers 204.
            CHECK(first.text == whole.text);
            continue;
        }
        Reader second;
        second.read(UiMessageStream("J", first.last_id, 2).format(all));
        CHECK(first.text + second.text == whole.text);
        CHECK(second.done);
        ++cuts;
    }
    CHECK(cuts > 15);
}

TEST_CASE("ui-message: a requeue ends the part, the next attempt opens its own", "[ui_message]") {
    std::vector<Event> all = {state(1, "queued", 0),  state(2, "running", 1),
                              token(3, R"("a")"),     state(4, "queued", 1, "lease lost"),
                              state(5, "running", 2), token(6, R"("b")")};
    Reader reader;
    reader.read(UiMessageStream("J", 0, 0).format(all));
    CHECK(reader.types == std::vector<std::string>{
                              "start", "data-state", "data-state", "text-start", "text-delta",
                              "text-end", "data-state", "data-state", "text-start", "text-delta"});
    CHECK(reader.open.count("J-2"));
    CHECK_FALSE(reader.done);
}

TEST_CASE("ui-message: a resumed attempt's part restates the text up to its checkpoint",
          "[ui_message]") {
    const auto all = resumed_job();
    UiMessageStream whole("J", 0, 0);
    CHECK(parts_of(format_all(whole, all)) ==
          std::vector<std::string>{"one two thr", "one two three"});

    // Resumed after the failed attempt's last token, past the checkpoint: the
    // restatement still has the text from before where the stream started.
    UiMessageStream resumed("J", 5, 1);
    CHECK(parts_of(format_all(resumed, all)) == std::vector<std::string>{"one two three"});
}

TEST_CASE("ui-message: the stream waits at a resumed attempt for the text it restates",
          "[ui_message]") {
    const auto all = resumed_job();
    UiMessageStream stream("J", 5, 1);
    // Up to the requeue; then nothing, however often it is fed, until restate().
    CHECK(stream.format(all) ==
          "id: 6\ndata: {\"type\":\"data-state\",\"data\":{\"state\":\"queued\",\"attempt\":1,"
          "\"reason\":\"lease lost\"},\"transient\":true}\n\n");
    CHECK(stream.restating() == 7);
    CHECK(stream.format(all).empty());
    CHECK(stream.format(all, 7).empty());
    CHECK(stream.restate("one two ") ==
          "id: 6\ndata: {\"type\":\"data-state\",\"data\":{\"state\":\"running\",\"attempt\":2,"
          "\"resume_seq\":4},\"transient\":true}\n\n"
          "id: 6\ndata: {\"type\":\"text-start\",\"id\":\"J-2\"}\n\n"
          "id: 7\ndata: {\"type\":\"text-delta\",\"id\":\"J-2\",\"delta\":\"one two \"}\n\n");
    CHECK(stream.restating() == 0);
    CHECK(stream.restate("again").empty());  // nothing waits
    CHECK(stream.format(all).rfind("id: 8\ndata: {\"type\":\"text-delta\",\"id\":\"J-2\"", 0) == 0);

    // A checkpoint before any text: the attempt's part opens with its first token.
    UiMessageStream empty("J", 6, 1);
    CHECK(empty.format(all).empty());
    CHECK(empty.restate("") ==
          "id: 7\ndata: {\"type\":\"data-state\",\"data\":{\"state\":\"running\",\"attempt\":2,"
          "\"resume_seq\":4},\"transient\":true}\n\n");
}

TEST_CASE("ui-message: a retried job's stream resumes exactly from any cut", "[ui_message]") {
    const auto all = resumed_job();
    UiMessageStream from_start("J", 0, 0);
    const std::string full = format_all(from_start, all);
    Reader whole;
    whole.read(full);
    CHECK(whole.text ==
          "one two thr"
          "one two three");
    std::size_t at = 0;
    int cuts = 0;
    while ((at = full.find("\n\n", at)) != std::string::npos) {
        at += 2;
        Reader first;
        first.read(full.substr(0, at));
        if (first.done || first.last_id == all.back().seq) continue;
        // The job's attempt when the client reconnects: 2 (it has finished).
        UiMessageStream resumed("J", first.last_id, 2);
        Reader second;
        second.read(format_all(resumed, all));
        CHECK(first.text + second.text == whole.text);
        CHECK(second.done);
        ++cuts;
    }
    CHECK(cuts > 10);
}

TEST_CASE("ui-message: failed and cancelled jobs", "[ui_message]") {
    SECTION("failed: error with the reason, finish, [DONE]") {
        std::vector<Event> all = {state(1, "queued", 0), state(2, "running", 1), token(3, R"("a")"),
                                  event(4, EventKind::error, R"({"message":"boom \"x\""})"),
                                  state(5, "failed", 1, "boom")};
        std::string out = UiMessageStream("J", 0, 0).format(all);
        CHECK(out.find("id: 4\ndata: {\"type\":\"data-error\",\"data\":{\"message\":"
                       "\"boom \\\"x\\\"\"},\"transient\":true}\n\n") != std::string::npos);
        CHECK(out.find("id: 4\ndata: {\"type\":\"error\",\"errorText\":\"boom\"}\n\n"
                       "id: 5\ndata: {\"type\":\"finish\",\"finishReason\":\"error\"}\n\n"
                       "id: 5\ndata: [DONE]\n\n") != std::string::npos);
        Reader reader;
        reader.read(out);
        CHECK(reader.open.empty());
    }
    SECTION("cancelled: the part ends, then abort and [DONE]") {
        std::vector<Event> all = {state(1, "queued", 0), state(2, "running", 1), token(3, R"("a")"),
                                  state(4, "cancelled", 1, "cancelled")};
        Reader reader;
        reader.read(UiMessageStream("J", 0, 0).format(all));
        CHECK(reader.types == std::vector<std::string>{"start", "data-state", "data-state",
                                                       "text-start", "text-delta", "text-end",
                                                       "data-state", "abort"});
        CHECK(reader.done);
    }
}

TEST_CASE("ui-message: batches in any split give the same stream", "[ui_message]") {
    auto all = succeeded_job();
    std::string whole = UiMessageStream("J1", 0, 0).format(all);
    for (std::size_t split = 0; split <= all.size(); ++split) {
        UiMessageStream stream("J1", 0, 0);
        std::vector<Event> head(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(split));
        std::string out = stream.format(head);
        out += stream.format(all, split == 0 ? 0 : split - 1);  // overlap is skipped
        CHECK(out == whole);
    }
}
