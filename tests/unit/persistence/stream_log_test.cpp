// The SQLite StreamLog: streams created, appended, read and closed survive a
// reopen; names are per owner; a recreated name shows nothing of the old
// stream; producers' duplicates are stored once; expired streams are gone.
#include "persistence/stream_log.hpp"

#include <catch2/catch.hpp>

#include "store_test_support.hpp"

namespace jobcast::store {
namespace {

using testing::TempDir;
using testing::test_config;

constexpr std::int64_t kNow = 1'700'000'000'000;

CreateStream create_op(const std::string& name, const std::string& owner = "alice") {
    CreateStream op;
    op.name = name;
    op.owner = owner;
    op.content_type = "text/plain";
    op.now_ms = kNow;
    return op;
}

AppendToStream append_op(const std::string& name, std::vector<std::string> messages,
                         std::optional<domain::ProducerClaim> producer = std::nullopt) {
    AppendToStream op;
    op.name = name;
    op.owner = "alice";
    op.request.has_data = !messages.empty();
    op.request.content_type = "text/plain";
    op.request.producer = std::move(producer);
    op.messages = std::move(messages);
    op.now_ms = kNow;
    return op;
}

std::vector<std::string> data_of(const std::vector<StreamMessage>& messages) {
    std::vector<std::string> out;
    for (const auto& m : messages)
        out.push_back(m.data);
    return out;
}

TEST_CASE("a stream's messages and close survive a reopen") {
    TempDir dir;
    std::int64_t id = 0;
    {
        auto store = Store::open(test_config(dir));
        StreamLog& log = *store->streams();
        auto op = create_op("s");
        op.messages = {"a"};
        auto created = log.create(op);
        CHECK(created.status == StreamWrite::created);
        CHECK(log.create(create_op("s")).status == StreamWrite::exists);
        auto other = create_op("s");
        other.content_type = "application/json";
        CHECK(log.create(other).status == StreamWrite::conflict);

        auto appended = log.append(append_op("s", {"b", "c"}));
        CHECK(appended.decision.verdict == domain::AppendVerdict::append);
        REQUIRE(appended.stream);
        CHECK(appended.stream->last_seq == 3);
        auto close = append_op("s", {});
        close.request.close = true;
        CHECK(log.append(close).stream->closed);
        id = appended.stream->id;
    }
    auto store = Store::open(test_config(dir));
    StreamLog& log = *store->streams();
    auto stream = log.get("s", "alice", kNow);
    REQUIRE(stream);
    CHECK(stream->closed);
    CHECK(stream->last_seq == 3);
    CHECK(data_of(log.read(id, 0, 1 << 20)) == std::vector<std::string>{"a", "b", "c"});
    CHECK(data_of(log.read(id, 2, 1 << 20)) == std::vector<std::string>{"c"});
    CHECK(log.read(id, 0, 1).size() == 1);  // a byte bound still returns one message
}

TEST_CASE("names are per owner, and a recreated name starts empty") {
    TempDir dir;
    auto store = Store::open(test_config(dir));
    StreamLog& log = *store->streams();
    log.create(create_op("s"));
    log.append(append_op("s", {"old"}));
    CHECK_FALSE(log.get("s", "bob", kNow));
    CHECK(log.create(create_op("s", "bob")).status == StreamWrite::created);

    auto before = log.get("s", "alice", kNow);
    CHECK(log.remove("s", "alice"));
    CHECK_FALSE(log.remove("s", "alice"));
    log.create(create_op("s"));
    auto after = log.get("s", "alice", kNow);
    REQUIRE(after);
    CHECK(after->id != before->id);
    CHECK(after->last_seq == 0);
    CHECK(log.read(after->id, 0, 1 << 20).empty());
}

TEST_CASE("a producer's retry is stored once") {
    TempDir dir;
    auto store = Store::open(test_config(dir));
    StreamLog& log = *store->streams();
    log.create(create_op("s"));
    auto first = log.append(append_op("s", {"x"}, domain::ProducerClaim{"p", 0, 0}));
    CHECK(first.decision.verdict == domain::AppendVerdict::append);
    auto retry = log.append(append_op("s", {"x"}, domain::ProducerClaim{"p", 0, 0}));
    CHECK(retry.decision.verdict == domain::AppendVerdict::duplicate);
    auto gap = log.append(append_op("s", {"y"}, domain::ProducerClaim{"p", 0, 5}));
    CHECK(gap.decision.verdict == domain::AppendVerdict::sequence_gap);
    CHECK(log.get("s", "alice", kNow)->last_seq == 1);
}

TEST_CASE("expired streams are invisible, then deleted") {
    TempDir dir;
    auto store = Store::open(test_config(dir));
    StreamLog& log = *store->streams();
    auto op = create_op("ttl");
    op.ttl_seconds = 2;
    log.create(op);
    auto stream = log.get("ttl", "alice", kNow + 1'000);
    REQUIRE(stream);
    log.touch(stream->id, kNow + 1'500);  // a read keeps it alive
    CHECK(log.get("ttl", "alice", kNow + 3'000));
    CHECK_FALSE(log.get("ttl", "alice", kNow + 3'500));
    auto late = append_op("ttl", {"late"});
    late.now_ms = kNow + 3'500;
    CHECK(log.append(late).status == StreamWrite::not_found);
    CHECK(log.expire(kNow + 3'500) == 1);
    CHECK(log.create(create_op("ttl")).status == StreamWrite::created);
}

}  // namespace
}  // namespace jobcast::store
