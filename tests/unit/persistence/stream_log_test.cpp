// The SQLite StreamLog: streams created, appended, read and closed survive a
// reopen; names are per owner; a recreated name shows nothing of the old
// stream, and no id comes back; producers' duplicates are stored once;
// expired streams are gone; forks share their source's messages, and a
// deleted source stays for its forks until the last one goes.
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
    CHECK(log.remove("s", "alice", kNow) == StreamWrite::removed);
    CHECK(log.remove("s", "alice", kNow) == StreamWrite::not_found);
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

TEST_CASE("a deleted or expired stream's id never comes back, not even after a reopen") {
    TempDir dir;
    std::vector<std::int64_t> ids;
    {
        auto store = Store::open(test_config(dir));
        StreamLog& log = *store->streams();
        // Each time the newest stream goes, and its name is created again.
        ids.push_back(log.create(create_op("s")).stream->id);
        REQUIRE(log.remove("s", "alice", kNow) == StreamWrite::removed);
        auto ttl = create_op("s");
        ttl.ttl_seconds = 1;
        ids.push_back(log.create(ttl).stream->id);
        auto later = create_op("s");  // the expired one's name is free
        later.now_ms = kNow + 2'000;
        ids.push_back(log.create(later).stream->id);
        ttl.now_ms = kNow + 2'000;
        REQUIRE(log.remove("s", "alice", kNow + 2'000) == StreamWrite::removed);
        ttl.name = "t";
        ids.push_back(log.create(ttl).stream->id);
        REQUIRE(log.expire(kNow + 4'000) == 1);
    }
    auto store = Store::open(test_config(dir));
    ids.push_back(store->streams()->create(create_op("s")).stream->id);
    for (std::size_t i = 1; i < ids.size(); ++i) {
        CAPTURE(ids);
        CHECK(ids[i] > ids[i - 1]);
    }
}

CreateStream fork_op(const std::string& name, const std::string& source,
                     std::optional<std::uint64_t> offset = std::nullopt,
                     std::uint64_t sub_offset = 0) {
    CreateStream op = create_op(name);
    op.content_type.clear();  // the source's
    op.fork = ForkFrom{source, offset, sub_offset};
    return op;
}

std::vector<std::string> all_of(StreamLog& log, const std::string& name) {
    auto stream = log.get(name, "alice", kNow);
    REQUIRE(stream);
    return data_of(log.read(stream->id, 0, 1 << 20));
}

TEST_CASE("a fork reads its source up to the fork point, then its own messages") {
    TempDir dir;
    auto store = Store::open(test_config(dir));
    StreamLog& log = *store->streams();
    auto op = create_op("src");
    op.messages = {"a", "b", "c"};
    op.ttl_seconds = 60;
    log.create(op);
    auto fork = log.create(fork_op("f", "src", 2));
    REQUIRE(fork.status == StreamWrite::created);
    CHECK(fork.stream->last_seq == 2);
    CHECK(fork.stream->content_type == "text/plain");
    CHECK(fork.stream->ttl_seconds == 60);  // inherited
    log.append(append_op("f", {"x"}));
    log.append(append_op("src", {"d"}));
    CHECK(all_of(log, "f") == std::vector<std::string>{"a", "b", "x"});
    CHECK(all_of(log, "src") == std::vector<std::string>{"a", "b", "c", "d"});
    auto f = log.get("f", "alice", kNow);
    CHECK(data_of(log.read(f->id, 1, 1 << 20)) == std::vector<std::string>{"b", "x"});
    CHECK(log.read(f->id, 0, 1).size() == 1);

    // A fork of the fork, at its tail: three levels.
    CHECK(log.create(fork_op("ff", "f")).status == StreamWrite::created);
    log.append(append_op("ff", {"y"}));
    CHECK(all_of(log, "ff") == std::vector<std::string>{"a", "b", "x", "y"});

    // Asked again: the same fork is there; another fork point is not it.
    CHECK(log.create(fork_op("f", "src", 2)).status == StreamWrite::exists);
    CHECK(log.create(fork_op("f", "src", 1)).status == StreamWrite::conflict);
    auto json = fork_op("g", "src");
    json.content_type = "application/json";
    CHECK(log.create(json).status == StreamWrite::conflict);
    CHECK(log.create(fork_op("g", "src", 9)).status == StreamWrite::bad_fork_offset);
    CHECK(log.create(fork_op("g", "nothing")).status == StreamWrite::source_missing);
    CHECK_FALSE(log.get("g", "alice", kNow));
}

TEST_CASE("a sub-offset forks inside a binary message or among JSON messages") {
    TempDir dir;
    auto store = Store::open(test_config(dir));
    StreamLog& log = *store->streams();
    auto text = create_op("text");
    text.messages = {"first", "second"};
    log.create(text);
    auto mid = fork_op("mid", "text", 1, 3);
    mid.messages = {"XY"};
    auto created = log.create(mid);
    REQUIRE(created.status == StreamWrite::created);
    CHECK(created.stream->last_seq == 3);
    CHECK(all_of(log, "mid") == std::vector<std::string>{"first", "sec", "XY"});
    CHECK(log.create(fork_op("over", "text", 1, 7)).status == StreamWrite::bad_fork_offset);
    CHECK(log.create(fork_op("past", "text", std::nullopt, 1)).status ==
          StreamWrite::bad_fork_offset);
    // Chained: the fork's own first message is sliced again.
    CHECK(log.create(fork_op("again", "mid", 1, 2)).status == StreamWrite::created);
    CHECK(all_of(log, "again") == std::vector<std::string>{"first", "se"});

    auto json = create_op("json");
    json.content_type = "application/json";
    json.messages = {"1", "2", "3"};
    log.create(json);
    CHECK(log.create(fork_op("two", "json", 0, 2)).status == StreamWrite::created);
    CHECK(all_of(log, "two") == std::vector<std::string>{"1", "2"});
    CHECK(log.create(fork_op("four", "json", 0, 4)).status == StreamWrite::bad_fork_offset);
}

TEST_CASE("a deleted source stays for its forks, and goes with the last of them") {
    TempDir dir;
    auto store = Store::open(test_config(dir));
    StreamLog& log = *store->streams();
    auto op = create_op("l0");
    op.messages = {"A", "unshared"};
    log.create(op);
    log.create(fork_op("l1", "l0", 1));
    log.append(append_op("l1", {"B"}));
    log.create(fork_op("l2", "l1"));
    log.append(append_op("l2", {"C"}));

    CHECK(log.remove("l1", "alice", kNow) == StreamWrite::removed);
    auto l1 = log.get("l1", "alice", kNow);
    REQUIRE(l1);
    CHECK(l1->deleted);
    CHECK(log.remove("l1", "alice", kNow) == StreamWrite::gone);
    CHECK(log.append(append_op("l1", {"no"})).status == StreamWrite::gone);
    CHECK(log.create(create_op("l1")).status == StreamWrite::conflict);
    CHECK(log.create(fork_op("other", "l1")).status == StreamWrite::source_gone);
    CHECK(all_of(log, "l2") == std::vector<std::string>{"A", "B", "C"});

    CHECK(log.remove("l0", "alice", kNow) == StreamWrite::removed);
    auto l0 = log.get("l0", "alice", kNow);
    CHECK(l0->deleted);
    // Kept with only what its fork reads.
    CHECK(data_of(log.read(l0->id, 0, 1 << 20)) == std::vector<std::string>{"A"});
    CHECK(all_of(log, "l2") == std::vector<std::string>{"A", "B", "C"});
    // The last fork goes: l1, then l0, go with it.
    CHECK(log.remove("l2", "alice", kNow) == StreamWrite::removed);
    CHECK_FALSE(log.get("l2", "alice", kNow));
    CHECK_FALSE(log.get("l1", "alice", kNow));
    CHECK_FALSE(log.get("l0", "alice", kNow));
    CHECK(log.create(create_op("l0")).status == StreamWrite::created);
}

TEST_CASE("an expired source with forks is kept for them") {
    TempDir dir;
    auto store = Store::open(test_config(dir));
    StreamLog& log = *store->streams();
    auto op = create_op("src");
    op.ttl_seconds = 1;
    op.messages = {"data"};
    log.create(op);
    auto fork = fork_op("f", "src");
    fork.ttl_seconds = 60;
    log.create(fork);
    CHECK_FALSE(log.get("src", "alice", kNow + 2'000));
    CHECK(log.expire(kNow + 2'000) == 1);
    CHECK(log.get("src", "alice", kNow + 2'000)->deleted);
    CHECK(all_of(log, "f") == std::vector<std::string>{"data"});
    CHECK(log.expire(kNow + 61'000) == 1);  // the fork, and its source with it
    CHECK_FALSE(log.get("src", "alice", kNow + 61'000));
}

}  // namespace
}  // namespace jobcast::store
