// The Durable Streams append rules as pure calls: idempotent producers
// (duplicate, gap, stale epoch, a new epoch), Stream-Seq, closing, expiry.
#include "domain/stream_rules.hpp"

#include <catch2/catch.hpp>

namespace jobcast::domain {
namespace {

StreamRecord open_stream() {
    StreamRecord record;
    record.content_type = "text/plain";
    return record;
}

StreamAppendRequest with_producer(std::uint64_t epoch, std::uint64_t seq) {
    StreamAppendRequest request;
    request.has_data = true;
    request.content_type = "text/plain";
    request.producer = ProducerClaim{"p", epoch, seq};
    return request;
}

TEST_CASE("a new producer starts at seq 0, the next seq follows the last") {
    auto first = decide_append(open_stream(), std::nullopt, with_producer(0, 0));
    CHECK(first.verdict == AppendVerdict::append);
    REQUIRE(first.producer_next);
    CHECK(first.producer_next->seq == 0);

    auto gap_first = decide_append(open_stream(), std::nullopt, with_producer(0, 3));
    CHECK(gap_first.verdict == AppendVerdict::sequence_gap);
    CHECK(gap_first.expected_seq == 0);
    CHECK(gap_first.received_seq == 3);

    auto next = decide_append(open_stream(), ProducerState{0, 4}, with_producer(0, 5));
    CHECK(next.verdict == AppendVerdict::append);
    CHECK(next.producer_next->seq == 5);
}

TEST_CASE("a retry is a duplicate that names the highest committed seq") {
    auto retry = decide_append(open_stream(), ProducerState{0, 4}, with_producer(0, 2));
    CHECK(retry.verdict == AppendVerdict::duplicate);
    CHECK(retry.producer_seq == 4);
    CHECK_FALSE(retry.producer_next);
}

TEST_CASE("a gap is refused with the seq expected") {
    auto gap = decide_append(open_stream(), ProducerState{0, 4}, with_producer(0, 7));
    CHECK(gap.verdict == AppendVerdict::sequence_gap);
    CHECK(gap.expected_seq == 5);
    CHECK(gap.received_seq == 7);
}

TEST_CASE("an older epoch is fenced, a newer one starts over at seq 0") {
    auto zombie = decide_append(open_stream(), ProducerState{2, 9}, with_producer(1, 10));
    CHECK(zombie.verdict == AppendVerdict::stale_epoch);
    CHECK(zombie.current_epoch == 2);

    auto takeover = decide_append(open_stream(), ProducerState{2, 9}, with_producer(3, 0));
    CHECK(takeover.verdict == AppendVerdict::append);
    CHECK(takeover.producer_next->epoch == 3);

    auto bad_start = decide_append(open_stream(), ProducerState{2, 9}, with_producer(3, 1));
    CHECK(bad_start.verdict == AppendVerdict::invalid_epoch_seq);
}

TEST_CASE("Stream-Seq must grow as a string, a producer's retry wins over it") {
    StreamRecord stream = open_stream();
    stream.stream_seq = "2";
    StreamAppendRequest request;
    request.has_data = true;
    request.content_type = "text/plain";
    request.stream_seq = "10";  // "10" < "2" as strings
    CHECK(decide_append(stream, std::nullopt, request).verdict ==
          AppendVerdict::stream_seq_conflict);
    request.stream_seq = "3";
    CHECK(decide_append(stream, std::nullopt, request).verdict == AppendVerdict::append);

    auto retry = with_producer(0, 1);
    retry.stream_seq = "2";
    CHECK(decide_append(stream, ProducerState{0, 1}, retry).verdict == AppendVerdict::duplicate);
}

TEST_CASE("a closed stream takes nothing, but its closing retry succeeds again") {
    StreamRecord stream = open_stream();
    stream.closed = true;
    stream.closed_by = producer_tuple(ProducerClaim{"p", 0, 3});

    CHECK(decide_append(stream, ProducerState{0, 3}, with_producer(0, 3)).verdict ==
          AppendVerdict::duplicate);
    CHECK(decide_append(stream, ProducerState{0, 3}, with_producer(0, 4)).verdict ==
          AppendVerdict::closed);
    CHECK(decide_append(stream, ProducerState{1, 0}, with_producer(0, 4)).verdict ==
          AppendVerdict::stale_epoch);

    StreamAppendRequest close_only;
    close_only.close = true;
    CHECK(decide_append(stream, std::nullopt, close_only).verdict == AppendVerdict::close_again);
    StreamAppendRequest data;
    data.has_data = true;
    data.content_type = "text/plain";
    CHECK(decide_append(stream, std::nullopt, data).verdict == AppendVerdict::closed);
}

TEST_CASE("the content type of an append must be the stream's") {
    StreamAppendRequest request;
    request.has_data = true;
    request.content_type = "application/json";
    CHECK(decide_append(open_stream(), std::nullopt, request).verdict ==
          AppendVerdict::content_type_mismatch);
    CHECK(normalize_content_type(" Application/JSON; charset=utf-8") == "application/json");
}

TEST_CASE("a TTL slides from the last access, Expires-At does not move") {
    StreamRecord stream = open_stream();
    stream.ttl_seconds = 2;
    stream.accessed_at_ms = 10'000;
    CHECK_FALSE(stream_expired(stream, 11'999));
    CHECK(stream_expired(stream, 12'000));

    StreamRecord dated = open_stream();
    dated.expires_at_ms = 5'000;
    CHECK_FALSE(stream_expired(dated, 4'999));
    CHECK(stream_expired(dated, 5'000));
    CHECK_FALSE(stream_expired(open_stream(), 1'000'000'000));
}

}  // namespace
}  // namespace jobcast::domain
