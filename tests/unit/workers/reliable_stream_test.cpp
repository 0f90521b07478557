// The worker's reliable stream without sockets, threads or sleeps: wseq
// numbering per attempt, acks, the unacked bound, gap and reconnect re-sends,
// rejects for other attempts, and what hello.inflight lists.
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "protocol/codec.hpp"
#include "protocol/limits.hpp"
#include "workers/outbox.hpp"
#include "workers/reliable_stream.hpp"

using namespace jobcast;
using namespace jobcast::worker;
using namespace std::chrono_literals;
using Answer = ReliableStream::RejectAnswer;

namespace {

// What a handler thread does for one message: number it, then hand it over.
std::uint64_t emit(ReliableStream& stream, AttemptStream& attempt, std::string frame,
                   FrameKind kind = FrameKind::message) {
    const auto wseq = attempt.next_wseq();
    attempt.numbered(wseq);
    REQUIRE(stream.push(attempt, wseq, std::move(frame), kind));
    return wseq;
}

// Everything the stream has for the socket now, as a socket that takes all.
std::vector<std::string> drain(ReliableStream& stream) {
    std::vector<std::string> out;
    while (const auto* frame = stream.next_frame()) {
        out.push_back(*frame);
        stream.sent();
    }
    return out;
}

std::vector<std::string> frames(std::initializer_list<const char*> names) {
    return {names.begin(), names.end()};
}

}  // namespace

TEST_CASE("each attempt numbers its messages from 1") {
    ReliableStream stream;
    auto a = stream.open("a", 1);
    auto b = stream.open("b", 3);
    CHECK(a->next_wseq() == 1);
    CHECK(emit(stream, *a, "a1") == 1);
    CHECK(emit(stream, *a, "a2") == 2);
    CHECK(emit(stream, *b, "b1") == 1);
    CHECK(a->next_wseq() == 3);

    // The job assigned again: its new attempt starts over.
    stream.drop("a");
    auto again = stream.open("a", 2);
    CHECK(again->next_wseq() == 1);
    CHECK(stream.find("a") == again.get());
    CHECK(stream.find("a")->attempt() == 2);
}

TEST_CASE("a cumulative ack trims the buffer, and old, repeated or foreign acks change nothing") {
    ReliableStream stream;
    auto a = stream.open("a", 1);
    for (int i = 0; i < 5; ++i)
        emit(stream, *a, std::string(10, 'x'));
    CHECK(a->size() == 5);
    CHECK(a->bytes() == 50);

    auto acked = stream.ack("a", 1, 3);
    CHECK(acked.known);
    CHECK(acked.messages == 3);
    CHECK(acked.bytes == 30);
    CHECK_FALSE(acked.settled);
    CHECK(a->acked() == 3);
    CHECK(a->first_unacked() == 4);

    acked = stream.ack("a", 1, 2);  // older than the last one
    CHECK(acked.known);
    CHECK(acked.messages == 0);
    CHECK(acked.bytes == 0);
    CHECK(a->acked() == 3);
    CHECK(stream.ack("a", 1, 3).bytes == 0);   // repeated
    CHECK_FALSE(stream.ack("a", 2, 5).known);  // another attempt
    CHECK_FALSE(stream.ack("zzz", 1, 5).known);
    CHECK(a->size() == 2);

    // A message at or below the acknowledged wseq is committed already.
    CHECK_FALSE(stream.push(*a, 3, "late", FrameKind::message));
    CHECK(a->size() == 2);

    acked = stream.ack("a", 1, 5);
    CHECK(acked.bytes == 20);
    CHECK(a->size() == 0);
    CHECK(a->first_unacked() == 6);
    CHECK(stream.attempts() == 1);  // no done/fail yet: still ours
}

TEST_CASE("the attempt is forgotten once its done or fail is acknowledged") {
    ReliableStream stream;
    auto a = stream.open("a", 1);
    emit(stream, *a, "token");
    emit(stream, *a, "done", FrameKind::terminal);
    CHECK_FALSE(stream.ack("a", 1, 1).settled);
    CHECK(stream.ack("a", 1, 2).settled);
    CHECK(stream.find("a") == nullptr);
    CHECK(stream.inflight().empty());
}

TEST_CASE("the unacked budget reports a full bound and an ack frees it") {
    ReliableStream stream;
    UnackedBudget budget(25);
    auto a = stream.open("a", 1);
    CHECK(budget.fits(100));  // nothing waits: one message always fits
    for (int i = 0; i < 2; ++i) {
        REQUIRE(budget.fits(10));
        budget.take(10);
        emit(stream, *a, std::string(10, 'x'));
    }
    CHECK(budget.used() == 20);
    CHECK_FALSE(budget.fits(10));  // emit would block here
    CHECK(budget.fits(5));

    budget.release(stream.ack("a", 1, 1).bytes);
    CHECK(budget.used() == 10);
    CHECK(budget.fits(10));

    budget.release(stream.drop("a").bytes);
    CHECK(budget.used() == 0);
}

TEST_CASE("frames go out once each, in order, only while connected") {
    ReliableStream stream;
    auto a = stream.open("a", 1);
    emit(stream, *a, "a1");
    CHECK_FALSE(stream.sending());
    CHECK(stream.next_frame() == nullptr);  // not connected yet

    CHECK(stream.reconnected() == 0);  // nothing had been sent
    CHECK(stream.sending());
    emit(stream, *a, "a2");
    CHECK(drain(stream) == frames({"a1", "a2"}));
    CHECK_FALSE(stream.sending());
    CHECK(drain(stream).empty());

    // A socket that takes nothing: the frame stays first in line.
    emit(stream, *a, "a3");
    REQUIRE(stream.next_frame() != nullptr);
    CHECK(*stream.next_frame() == "a3");
    stream.sent();
    CHECK(drain(stream).empty());
}

TEST_CASE("a gap reject re-sends from the oldest unacknowledged message, once per window") {
    ManualClock clock;
    ReliableStream stream;
    stream.reconnected();
    auto a = stream.open("a", 1);
    for (const char* frame : {"a1", "a2", "a3", "a4"})
        emit(stream, *a, frame);
    CHECK(drain(stream).size() == 4);
    stream.ack("a", 1, 1);

    auto rejected = stream.reject("a", 1, "gap", clock.steady(), 3s);
    CHECK(rejected.answer == Answer::resent);
    CHECK(rejected.from_wseq == 2);
    CHECK(rejected.resent == 3);
    CHECK(drain(stream) == frames({"a2", "a3", "a4"}));

    // Each frame after the lost one is rejected too: one re-send answers them all.
    clock.advance(1s);
    CHECK(stream.reject("a", 1, "gap", clock.steady(), 3s).answer == Answer::already_resending);
    CHECK(drain(stream).empty());

    // No ack within the window: re-send again.
    clock.advance(3s);
    rejected = stream.reject("a", 1, "gap", clock.steady(), 3s);
    CHECK(rejected.answer == Answer::resent);
    CHECK(drain(stream) == frames({"a2", "a3", "a4"}));

    // An ack covering the re-send ends it: the next gap re-sends at once.
    stream.ack("a", 1, 4);
    emit(stream, *a, "a5");
    emit(stream, *a, "a6");
    CHECK(drain(stream) == frames({"a5", "a6"}));
    rejected = stream.reject("a", 0, "gap", clock.steady(), 3s);  // 0: the attempt held
    CHECK(rejected.answer == Answer::resent);
    CHECK(rejected.from_wseq == 5);
    CHECK(drain(stream) == frames({"a5", "a6"}));
}

TEST_CASE("after a reconnect every attempt re-sends all it has unacknowledged, in order") {
    ReliableStream stream;
    stream.reconnected();
    auto a = stream.open("a", 1);
    auto b = stream.open("b", 2);
    for (const char* frame : {"a1", "a2", "a3"})
        emit(stream, *a, frame);
    emit(stream, *b, "b1");
    CHECK(drain(stream).size() == 4);
    stream.ack("a", 2, 3);  // another attempt's ack frees nothing
    stream.ack("a", 1, 1);

    stream.disconnected();
    emit(stream, *a, "a4");  // while disconnected: buffered, not sent
    CHECK(stream.next_frame() == nullptr);

    CHECK(stream.reconnected() == 3);  // a2, a3 and b1 go out again; a4 goes out first time
    auto sent = drain(stream);
    CHECK(sent.size() == 4);
    std::vector<std::string> of_a, of_b;
    for (const auto& frame : sent)
        (frame[0] == 'a' ? of_a : of_b).push_back(frame);
    CHECK(of_a == frames({"a2", "a3", "a4"}));
    CHECK(of_b == frames({"b1"}));

    // A broker restart (hello reject) while connected does the same.
    stream.ack("a", 1, 3);
    CHECK(stream.reconnected() == 2);  // a4 and b1
    sent = drain(stream);
    std::sort(sent.begin(), sent.end());
    CHECK(sent == frames({"a4", "b1"}));
}

TEST_CASE("a reject for another attempt is ignored, and any other reason ends the attempt") {
    ManualClock clock;
    ReliableStream stream;
    stream.reconnected();
    auto a = stream.open("a", 2);
    emit(stream, *a, "a1");
    drain(stream);

    CHECK(stream.reject("a", 1, "lease", clock.steady(), 3s).answer == Answer::not_ours);
    CHECK(stream.reject("a", 1, "gap", clock.steady(), 3s).answer == Answer::not_ours);
    CHECK(drain(stream).empty());
    CHECK(stream.reject("other", 0, "lease", clock.steady(), 3s).answer == Answer::not_ours);
    CHECK(stream.find("a") != nullptr);

    CHECK(stream.reject("a", 2, "lease", clock.steady(), 3s).answer == Answer::drop);
    const auto freed = stream.drop("a");
    CHECK(freed.messages == 1);
    CHECK(freed.bytes == 2);
    CHECK(stream.find("a") == nullptr);
    // Output of the dropped attempt still on its way is not kept.
    CHECK_FALSE(stream.push(*a, 2, "a2", FrameKind::message));
    CHECK(drain(stream).empty());
}

TEST_CASE("inflight lists each attempt held with the wseq of its next message") {
    ReliableStream stream;
    CHECK(stream.inflight().empty());
    auto a = stream.open("a", 1);
    auto b = stream.open("b", 4);
    emit(stream, *a, "a1");
    emit(stream, *a, "a2");
    // Numbered but not handed over yet (an emit blocked on the bound) counts.
    b->numbered(b->next_wseq());

    auto inflight = stream.inflight();
    std::sort(inflight.begin(), inflight.end(),
              [](const auto& x, const auto& y) { return x.job < y.job; });
    REQUIRE(inflight.size() == 2);
    CHECK(inflight[0] == proto::InflightJob{"a", 1, 3});
    CHECK(inflight[1] == proto::InflightJob{"b", 4, 2});

    stream.drop("b");
    CHECK(stream.inflight() == std::vector<proto::InflightJob>{{"a", 1, 3}});
}

namespace {

// A token chunk of `text`, as a handler thread encodes it.
std::uint64_t emit_token(ReliableStream& stream, AttemptStream& attempt, const std::string& text) {
    const proto::Chunk chunk{attempt.job(),
                             attempt.attempt(),
                             attempt.next_wseq(),
                             EventKind::token,
                             R"({"text":")" + text + R"("})",
                             7};
    return emit(stream, attempt, proto::encode(proto::WorkerMessage{chunk}), FrameKind::chunk);
}

// The messages in one frame the stream sends.
proto::WorkerMessage decoded(const std::string& frame) {
    auto result = proto::decode_worker_message(frame);
    REQUIRE(std::holds_alternative<proto::WorkerMessage>(result));
    return std::get<proto::WorkerMessage>(std::move(result));
}

}  // namespace

TEST_CASE("chunks go out one by one, the bytes encode(Chunk) made, until batching is on") {
    ReliableStream stream;
    stream.reconnected();
    auto a = stream.open("a", 2);
    emit_token(stream, *a, "x");
    emit_token(stream, *a, "y");
    const auto sent = drain(stream);
    REQUIRE(sent.size() == 2);
    CHECK(sent[0] == proto::encode(proto::WorkerMessage{
                         proto::Chunk{"a", 2, 1, EventKind::token, R"({"text":"x"})", 7}}));
    CHECK(std::get<proto::Chunk>(decoded(sent[1])).wseq == 2);
}

TEST_CASE("with batching, consecutive events of an attempt share one chunks frame") {
    ReliableStream stream;
    stream.reconnected();
    stream.batch_chunks(true);
    auto a = stream.open("a", 1);
    auto b = stream.open("b", 1);
    for (int i = 1; i <= 3; ++i)
        emit_token(stream, *a, "a" + std::to_string(i));
    emit(stream, *a, "checkpoint", FrameKind::message);  // not an event: a frame of its own
    emit_token(stream, *a, "a5");
    emit_token(stream, *b, "b1");

    const auto* frame = stream.next_frame();
    REQUIRE(frame != nullptr);
    CHECK(stream.frame_messages() == 3);
    const auto first = std::get<proto::Chunks>(decoded(*frame));
    CHECK(first.job == "a");
    CHECK(first.wseq == 1);
    REQUIRE(first.events.size() == 3);
    CHECK(first.events[2].data == R"({"text":"a3"})");
    CHECK(first.events[2].ts == 7);
    stream.sent();
    CHECK(a->acked() == 0);

    // a5 waits for the ack of what `a` has in flight; b1 does not.
    const auto rest = drain(stream);
    REQUIRE(rest.size() == 2);
    CHECK(rest[0] == "checkpoint");
    CHECK(std::get<proto::Chunk>(decoded(rest[1])).job == "b");
    stream.ack("a", 1, 2);
    CHECK(drain(stream).empty());
    stream.ack("a", 1, 4);
    const auto held = drain(stream);
    REQUIRE(held.size() == 1);
    CHECK(std::get<proto::Chunk>(decoded(held[0])).wseq == 5);  // one event: a plain chunk

    // A reconnect re-sends everything unacknowledged once, batched again
    // only once the new broker's welcome says so.
    emit_token(stream, *a, "a6");
    CHECK(stream.reconnected() == 2);  // a5 and b1 again, then a6: one chunk each
    const auto again_all = drain(stream);
    REQUIRE(again_all.size() == 3);
    for (const auto& f : again_all)
        CHECK(std::holds_alternative<proto::Chunk>(decoded(f)));
    stream.ack("a", 1, 6);
    stream.ack("b", 1, 1);
    stream.reconnected();
    stream.batch_chunks(true);
    for (int i = 7; i <= 10; ++i)
        emit_token(stream, *a, "a" + std::to_string(i));
    const auto again = drain(stream);
    REQUIRE(again.size() == 1);
    const auto batch = std::get<proto::Chunks>(decoded(again[0]));
    CHECK(batch.wseq == 7);
    CHECK(batch.events.size() == 4);
}

TEST_CASE("a batch stops at kMaxChunksEvents, and a gap re-send is batched from the oldest") {
    ManualClock clock;
    ReliableStream stream;
    stream.reconnected();
    stream.batch_chunks(true);
    auto a = stream.open("a", 1);
    const auto total = proto::kMaxChunksEvents + 50;
    for (std::size_t i = 0; i < total; ++i)
        emit_token(stream, *a, "t");
    // A full batch goes; the 50 after it wait for its ack.
    const auto sent = drain(stream);
    REQUIRE(sent.size() == 1);
    CHECK(std::get<proto::Chunks>(decoded(sent[0])).events.size() == proto::kMaxChunksEvents);
    stream.release_holds();  // a heartbeat: nothing waits longer
    const auto tail_frames = drain(stream);
    REQUIRE(tail_frames.size() == 1);
    const auto tail = std::get<proto::Chunks>(decoded(tail_frames[0]));
    CHECK(tail.wseq == proto::kMaxChunksEvents + 1);
    CHECK(tail.events.size() == 50);

    stream.ack("a", 1, 10);
    const auto rejected = stream.reject("a", 1, "gap", clock.steady(), 1s);
    CHECK(rejected.answer == Answer::resent);
    CHECK(rejected.from_wseq == 11);
    const auto resent = drain(stream);
    REQUIRE(resent.size() == 1);
    CHECK(std::get<proto::Chunks>(decoded(resent[0])).wseq == 11);
    stream.ack("a", 1, 10 + proto::kMaxChunksEvents);
    const auto resent_tail = drain(stream);
    REQUIRE(resent_tail.size() == 1);
    CHECK(std::get<proto::Chunks>(decoded(resent_tail[0])).wseq == 11 + proto::kMaxChunksEvents);
    CHECK(std::get<proto::Chunks>(decoded(resent_tail[0])).events.size() ==
          total - 10 - proto::kMaxChunksEvents);
}

TEST_CASE(
    "a burst behind a message in flight goes out in one chunks on its ack; a lone event at once") {
    ReliableStream stream;
    stream.reconnected();
    stream.batch_chunks(true);
    auto a = stream.open("a", 1);
    auto b = stream.open("b", 1);

    // Nothing in flight: a lone event goes at once, and its ack is due.
    CHECK_FALSE(a->ack_due());
    emit_token(stream, *a, "t1");
    const auto lone = drain(stream);
    REQUIRE(lone.size() == 1);
    CHECK(std::get<proto::Chunk>(decoded(lone[0])).wseq == 1);
    CHECK(a->ack_due());

    // A burst while t1 waits for its ack: held, and another attempt is not.
    for (int i = 2; i <= 6; ++i)
        emit_token(stream, *a, "t" + std::to_string(i));
    emit_token(stream, *b, "b1");
    const auto others = drain(stream);
    REQUIRE(others.size() == 1);
    CHECK(std::get<proto::Chunk>(decoded(others[0])).job == "b");
    CHECK_FALSE(stream.sending());

    // The ack: the burst goes as one message, wseqs 2..6 in order, each once.
    stream.ack("a", 1, 1);
    CHECK_FALSE(a->ack_due());
    const auto burst = drain(stream);
    REQUIRE(burst.size() == 1);
    const auto chunks = std::get<proto::Chunks>(decoded(burst[0]));
    CHECK(chunks.wseq == 2);
    REQUIRE(chunks.events.size() == 5);
    for (std::size_t i = 0; i < chunks.events.size(); ++i)
        CHECK(chunks.events[i].data == R"({"text":"t)" + std::to_string(i + 2) + R"("})");
    CHECK(a->ack_due());
    CHECK(drain(stream).empty());

    // A checkpoint (or done/fail) waits for nothing, nor do the chunks before it.
    emit_token(stream, *a, "t7");
    emit(stream, *a, "checkpoint");
    const auto flushed = drain(stream);
    REQUIRE(flushed.size() == 2);
    CHECK(std::get<proto::Chunk>(decoded(flushed[0])).wseq == 7);
    CHECK(flushed[1] == "checkpoint");

    // All acknowledged: the next lone event goes at once again.
    stream.ack("a", 1, 8);
    CHECK_FALSE(a->ack_due());
    emit_token(stream, *a, "t9");
    const auto again = drain(stream);
    REQUIRE(again.size() == 1);
    CHECK(std::get<proto::Chunk>(decoded(again[0])).wseq == 9);

    // Past kMaxHeldBytes of unacknowledged output nothing waits.
    const std::string big(kMaxHeldBytes, 'x');
    emit_token(stream, *a, big);
    emit_token(stream, *a, "t11");
    const auto unheld = drain(stream);
    REQUIRE(unheld.size() == 1);
    const auto both = std::get<proto::Chunks>(decoded(unheld[0]));
    CHECK(both.wseq == 10);
    CHECK(both.events.size() == 2);
}

TEST_CASE("without chunks nothing waits for an ack, and a lost connection ends the wait") {
    ReliableStream stream;
    stream.reconnected();
    auto a = stream.open("a", 1);
    emit_token(stream, *a, "t1");
    emit_token(stream, *a, "t2");
    CHECK(drain(stream).size() == 2);
    emit_token(stream, *a, "t3");
    CHECK(drain(stream).size() == 1);
    CHECK_FALSE(a->ack_due());

    stream.ack("a", 1, 3);
    stream.batch_chunks(true);
    emit_token(stream, *a, "t4");
    CHECK(drain(stream).size() == 1);
    CHECK(a->ack_due());
    emit_token(stream, *a, "t5");
    CHECK(drain(stream).empty());
    stream.disconnected();
    CHECK_FALSE(a->ack_due());
    CHECK(stream.reconnected() == 1);  // t4 again, then t5: one each until welcomed
    CHECK(drain(stream).size() == 2);
}

namespace {

// The outbox's eventfd was written since the last look (and is reset).
bool woken(Outbox& outbox) {
    pollfd item{outbox.fd(), POLLIN, 0};
    const bool readable = ::poll(&item, 1, 0) == 1;
    if (readable) outbox.clear_wake();
    return readable;
}

}  // namespace

TEST_CASE("an emit wakes the I/O thread once per batch, and not while the attempt's ack is due") {
    Outbox outbox(1 << 20);
    ReliableStream stream;
    stream.reconnected();
    stream.batch_chunks(true);
    auto a = stream.open("a", 1);
    auto b = stream.open("b", 1);
    const std::atomic<bool> open{false};
    std::vector<Outbox::Message> batch;
    auto submit = [&](const std::shared_ptr<AttemptStream>& attempt, FrameKind kind) {
        const auto wseq = attempt->next_wseq();
        attempt->numbered(wseq);
        std::string frame =
            kind == FrameKind::chunk
                ? proto::encode(proto::WorkerMessage{proto::Chunk{
                      attempt->job(), attempt->attempt(), wseq, EventKind::token, "{}", 7}})
                : "checkpoint";
        outbox.submit(attempt, wseq, frame, kind, open);
        CHECK(frame.empty());
    };
    // What the I/O thread does when it wakes: take, buffer, send.
    auto turn = [&] {
        outbox.take(batch);
        for (auto& m : batch)
            REQUIRE(stream.push(*m.attempt, m.wseq, std::move(m.frame), m.kind));
        const auto n = batch.size();
        batch.clear();
        drain(stream);
        return n;
    };

    // A lone event wakes it; a second before it took the first does not again.
    submit(a, FrameKind::chunk);
    submit(a, FrameKind::chunk);
    CHECK(woken(outbox));
    CHECK(turn() == 2);
    CHECK(a->ack_due());

    // While a's ack is due its chunks wait unannounced; the ack's turn takes them.
    submit(a, FrameKind::chunk);
    submit(a, FrameKind::chunk);
    CHECK_FALSE(woken(outbox));
    // Another attempt's event, or a's checkpoint, wakes it at once.
    submit(b, FrameKind::chunk);
    CHECK(woken(outbox));
    CHECK(turn() == 3);
    submit(a, FrameKind::message);
    CHECK(woken(outbox));
    CHECK(turn() == 1);

    // A full batch queued wakes it too.
    stream.ack("a", 1, 1);
    CHECK(turn() == 0);
    REQUIRE(a->ack_due());
    for (std::size_t i = 1; i < kMaxHeldChunks; ++i)
        submit(a, FrameKind::chunk);
    CHECK_FALSE(woken(outbox));
    submit(a, FrameKind::chunk);
    CHECK(woken(outbox));
}

TEST_CASE("with acks read lazily nothing is ack_due, and chunks wait only behind a full flight") {
    ReliableStream stream;
    stream.reconnected();
    stream.batch_chunks(true);
    auto a = stream.open("a", 1);
    emit_token(stream, *a, "t1");
    REQUIRE(drain(stream).size() == 1);
    REQUIRE(a->ack_due());

    // Not watched: no producer leaves its chunk for an ack, and the next
    // events go at once (each its own message) up to kMaxInFlightUnwatched.
    stream.watch_acks(false);
    CHECK_FALSE(a->ack_due());
    for (std::uint64_t i = 2; i <= kMaxInFlightUnwatched; ++i) {
        emit_token(stream, *a, "t" + std::to_string(i));
        const auto sent = drain(stream);
        REQUIRE(sent.size() == 1);
        CHECK(std::get<proto::Chunk>(decoded(sent[0])).wseq == i);
        CHECK_FALSE(a->ack_due());
        CHECK_FALSE(stream.holding());
    }
    // A full flight: the next waits (holding says so, for the worker to watch
    // for the ack again), and goes with the ones after it on the ack.
    emit_token(stream, *a, "held1");
    emit_token(stream, *a, "held2");
    CHECK(drain(stream).empty());
    CHECK(stream.holding());
    stream.watch_acks(true);
    CHECK(a->ack_due());
    stream.ack("a", 1, kMaxInFlightUnwatched);
    CHECK_FALSE(stream.holding());
    const auto burst = drain(stream);
    REQUIRE(burst.size() == 1);
    const auto chunks = std::get<proto::Chunks>(decoded(burst[0]));
    CHECK(chunks.wseq == kMaxInFlightUnwatched + 1);
    REQUIRE(chunks.events.size() == 2);
    CHECK(chunks.events[1].data == R"({"text":"held2"})");
    CHECK(a->ack_due());
}

TEST_CASE("a submit that the producer delivers itself does not wake the I/O thread") {
    Outbox outbox(1 << 20);
    auto a = std::make_shared<AttemptStream>("a", 1);
    const std::atomic<bool> open{false};
    std::vector<Outbox::Message> batch;
    bool deliver_takes = true;
    int delivered = 0;
    outbox.set_deliver([&] {
        if (!deliver_takes) return false;
        outbox.take(batch);  // what the worker's delivery does first
        delivered += static_cast<int>(batch.size());
        batch.clear();
        return true;
    });
    auto submit = [&] {
        const auto wseq = a->next_wseq();
        a->numbered(wseq);
        std::string frame = "chunk";
        outbox.submit(a, wseq, frame, FrameKind::chunk, open);
    };

    submit();
    CHECK(delivered == 1);
    CHECK_FALSE(woken(outbox));
    CHECK_FALSE(outbox.pending());

    // The I/O thread is busy (the delivery cannot take its lock): woken as before.
    deliver_takes = false;
    submit();
    CHECK(woken(outbox));
    CHECK(outbox.pending());
    submit();  // already woken, not taken yet: no second wake-up
    CHECK_FALSE(woken(outbox));
    outbox.take(batch);
    CHECK(batch.size() == 2);
}
