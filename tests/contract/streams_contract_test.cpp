// Durable Streams created over HTTP (persistence/stream_log.hpp): the same op
// sequences through every store's StreamLog give the same answers — creation
// and its idempotent repeat, owner isolation, appends with idempotent
// producers, Stream-Seq and close, reads by bytes, TTL and Expires-At, delete
// and a new incarnation, forks (their reads along the chain of sources,
// sub-offsets, a deleted source kept for its forks, the depth bound). Ids differ from store to
// store; whether two answers name the same stream does not.
#include <catch2/catch.hpp>

#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "persistence/stream_log.hpp"
#include "store_under_test.hpp"

namespace jobcast::contract {
namespace {

using store::AppendToStream;
using store::CreateStream;
using store::StreamInfo;
using store::StreamLog;
using store::StreamWriteResult;

constexpr std::int64_t kNow = 1'700'000'000'000;
constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();

const char* write_name(store::StreamWrite status) {
    using store::StreamWrite;
    switch (status) {
        case StreamWrite::created:
            return "created";
        case StreamWrite::exists:
            return "exists";
        case StreamWrite::conflict:
            return "conflict";
        case StreamWrite::not_found:
            return "not_found";
        case StreamWrite::decided:
            return "decided";
        case StreamWrite::removed:
            return "removed";
        case StreamWrite::gone:
            return "gone";
        case StreamWrite::source_missing:
            return "source_missing";
        case StreamWrite::source_gone:
            return "source_gone";
        case StreamWrite::bad_fork_offset:
            return "bad_fork_offset";
        case StreamWrite::fork_too_deep:
            return "fork_too_deep";
    }
    return "?";
}

const char* verdict_name(domain::AppendVerdict verdict) {
    using domain::AppendVerdict;
    switch (verdict) {
        case AppendVerdict::append:
            return "append";
        case AppendVerdict::close_again:
            return "close_again";
        case AppendVerdict::duplicate:
            return "duplicate";
        case AppendVerdict::closed:
            return "closed";
        case AppendVerdict::content_type_mismatch:
            return "content_type_mismatch";
        case AppendVerdict::stale_epoch:
            return "stale_epoch";
        case AppendVerdict::invalid_epoch_seq:
            return "invalid_epoch_seq";
        case AppendVerdict::sequence_gap:
            return "sequence_gap";
        case AppendVerdict::stream_seq_conflict:
            return "stream_seq_conflict";
    }
    return "?";
}

// One store's answers, written down; stream ids as the order they were first seen in.
class StreamSession {
  public:
    explicit StreamSession(const StoreUnderTest& under_test) : store_(under_test.open({})) {
        log_ = store_->streams();
        REQUIRE(log_ != nullptr);
    }
    ~StreamSession() { store_->close(); }

    std::optional<StreamInfo> create(CreateStream op) {
        const std::string what = "create " + op.owner + "/" + op.name;
        auto result = log_->create(std::move(op));
        note(what + ": " + write_name(result.status) + " " + describe(result.stream));
        return result.stream;
    }

    std::optional<StreamInfo> append(AppendToStream op) {
        const std::string what = "append " + op.owner + "/" + op.name;
        auto result = log_->append(std::move(op));
        if (result.status != store::StreamWrite::decided) {
            note(what + ": " + write_name(result.status));
            return std::nullopt;
        }
        const auto& d = result.decision;
        std::string line = what + ": " + verdict_name(d.verdict);
        if (d.producer_next)
            line += " producer=" + std::to_string(d.producer_next->epoch) + "/" +
                    std::to_string(d.producer_next->seq);
        line += " producer_seq=" + std::to_string(d.producer_seq) +
                " epoch=" + std::to_string(d.current_epoch) +
                " expected=" + std::to_string(d.expected_seq) +
                " received=" + std::to_string(d.received_seq);
        note(line + " " + describe(result.stream));
        return result.stream;
    }

    std::optional<StreamInfo> get(const std::string& name, const std::string& owner,
                                  std::int64_t now) {
        auto stream = log_->get(name, owner, now);
        note("get " + owner + "/" + name + " at +" + std::to_string(now - kNow) + ": " +
             describe(stream));
        return stream;
    }

    void read(const StreamInfo& stream, std::uint64_t after, std::size_t max_bytes) {
        std::string line = "read " + stream.name + " after " + std::to_string(after) + ":";
        for (const auto& message : log_->read(stream.id, after, max_bytes))
            line += " " + std::to_string(message.seq) + "=" + message.data;
        note(line);
    }

    void touch(const StreamInfo& stream, std::int64_t now) { log_->touch(stream.id, now); }

    void remove(const std::string& name, const std::string& owner, std::int64_t now) {
        note("remove " + owner + "/" + name + ": " + write_name(log_->remove(name, owner, now)));
    }

    const std::vector<std::string>& transcript() const { return lines_; }

  private:
    void note(std::string line) { lines_.push_back(std::move(line)); }

    std::string describe(const std::optional<StreamInfo>& s) {
        if (!s) return "none";
        auto [it, fresh] = ids_.try_emplace(s->id, ids_.size() + 1);
        return "#" + std::to_string(it->second) + " " + s->owner + "/" + s->name + " " +
               s->content_type + " ttl=" + std::to_string(s->ttl_seconds) +
               " expires=" + s->expires_at + "/" + std::to_string(s->expires_at_ms) +
               " closed=" + (s->closed ? "1" : "0") + " last=" + std::to_string(s->last_seq) +
               " created=" + std::to_string(s->created_at_ms - kNow) +
               (s->deleted ? " deleted" : "");
    }

    std::unique_ptr<store::Store> store_;
    StreamLog* log_ = nullptr;
    std::map<std::int64_t, std::size_t> ids_;
    std::vector<std::string> lines_;
};

CreateStream creation(const std::string& name, const std::string& owner = "alice",
                      const std::string& type = "text/plain",
                      std::vector<std::string> messages = {}, std::int64_t at = kNow) {
    CreateStream op;
    op.name = name;
    op.owner = owner;
    op.content_type = type;
    op.messages = std::move(messages);
    op.now_ms = at;
    return op;
}

AppendToStream appending(const std::string& name, std::vector<std::string> messages,
                         std::int64_t at = kNow, const std::string& type = "text/plain") {
    AppendToStream op;
    op.name = name;
    op.owner = "alice";
    op.request.has_data = !messages.empty();
    op.request.content_type = type;
    op.messages = std::move(messages);
    op.now_ms = at;
    return op;
}

AppendToStream producing(const std::string& name, std::string data, std::uint64_t epoch,
                         std::uint64_t seq) {
    AppendToStream op = appending(name, {std::move(data)});
    op.request.producer = domain::ProducerClaim{"writer", epoch, seq};
    return op;
}

CreateStream forking(const std::string& name, const std::string& source,
                     std::optional<std::uint64_t> offset = std::nullopt,
                     std::uint64_t sub_offset = 0) {
    CreateStream op = creation(name, "alice", "");  // the source's content type
    op.fork = store::ForkFrom{source, offset, sub_offset};
    return op;
}

// Runs `scenario` through every store; each must write down what the first did.
template <class Scenario>
void for_each_stream_log(Scenario scenario) {
    std::optional<std::vector<std::string>> reference;
    for (const StoreUnderTest& under_test : stores_under_test()) {
        INFO("store " << under_test.name);
        StreamSession session(under_test);
        scenario(session);
        if (!reference) {
            reference = session.transcript();
            continue;
        }
        const auto& got = session.transcript();
        for (std::size_t i = 0; i < std::max(got.size(), reference->size()); ++i) {
            INFO("line " << i);
            CHECK((i < got.size() ? got[i] : "<missing>") ==
                  (i < reference->size() ? (*reference)[i] : "<missing>"));
        }
    }
}

TEST_CASE("streams: create is idempotent, names are per owner, delete ends an incarnation") {
    for_each_stream_log([](StreamSession& s) {
        auto first = s.create(creation("a", "alice", "text/plain", {"one", "two"}));
        REQUIRE(first);
        s.create(creation("a"));  // the same settings (messages are not settings): exists
        s.create(creation("a", "alice", "application/json"));
        s.get("a", "bob", kNow);
        s.create(creation("a", "bob", "text/plain", {"bob's"}));
        s.read(*first, 0, kAll);
        s.read(*first, 1, kAll);
        s.read(*first, 0, 1);  // at least one message, stopping at the byte limit
        s.remove("a", "alice", kNow);
        s.get("a", "alice", kNow);
        s.remove("a", "alice", kNow);
        s.get("a", "bob", kNow);
        auto again = s.create(creation("a", "alice", "text/plain", {"new"}, kNow + 1000));
        REQUIRE(again);
        CHECK(again->id != first->id);
        s.read(*again, 0, kAll);
        auto closed = creation("done", "alice", "text/plain", {"last"});
        closed.closed = true;
        s.create(closed);
        s.create(closed);  // the same settings, closed included
        s.append(appending("done", {"more"}));
    });
}

TEST_CASE("streams: idempotent producers, Stream-Seq and close") {
    for_each_stream_log([](StreamSession& s) {
        s.create(creation("p"));
        s.append(appending("p", {"plain"}));
        s.append(appending("p", {"{}"}, kNow, "application/json"));
        s.append(producing("p", "w0", 0, 0));
        s.append(producing("p", "w0 again", 0, 0));  // a retry: duplicate
        s.append(producing("p", "gap", 0, 2));
        s.append(producing("p", "epoch 1", 1, 0));
        s.append(producing("p", "zombie", 0, 1));
        s.append(producing("p", "bad start", 2, 1));
        auto ordered = appending("p", {"seq a"});
        ordered.request.stream_seq = "a";
        s.append(ordered);
        s.append(ordered);  // not after the last Stream-Seq
        ordered.request.stream_seq = "b";
        ordered.messages = {"seq b"};
        s.append(ordered);
        s.append(appending("p", {"x", "y", "z"}));
        auto closing = producing("p", "the end", 1, 1);
        closing.request.close = true;
        s.append(closing);
        s.append(closing);  // the retry of the append that closed it
        s.append(appending("p", {"after close"}));
        auto close_only = appending("p", {});
        close_only.request.close = true;
        s.append(close_only);
        s.append(producing("p", "zombie after close", 0, 5));
        auto stream = s.get("p", "alice", kNow);
        REQUIRE(stream);
        s.read(*stream, 0, kAll);
        s.append(appending("missing", {"x"}));
    });
}

TEST_CASE("streams: a TTL counts from the last read or write, Expires-At is absolute") {
    for_each_stream_log([](StreamSession& s) {
        auto ttl = creation("t");
        ttl.ttl_seconds = 10;
        auto stream = s.create(ttl);
        REQUIRE(stream);
        s.get("t", "alice", kNow + 5'000);
        s.touch(*stream, kNow + 5'000);
        s.get("t", "alice", kNow + 14'999);
        s.append(appending("t", {"kept alive"}, kNow + 14'999));
        s.get("t", "alice", kNow + 24'998);
        s.get("t", "alice", kNow + 24'999);
        s.append(appending("t", {"too late"}, kNow + 25'000));

        auto until = creation("e");
        until.expires_at = "2023-11-14T22:14:20Z";
        until.expires_at_ms = kNow + 60'000;
        s.create(until);
        s.get("e", "alice", kNow + 59'999);
        s.get("e", "alice", kNow + 60'000);

        ttl.now_ms = kNow + 60'000;
        s.create(ttl);  // the expired stream's name is free again
    });
}

TEST_CASE("streams: a fork reads its source up to the fork point, then its own messages") {
    for_each_stream_log([](StreamSession& s) {
        auto src = creation("src", "alice", "text/plain", {"a", "b", "c"});
        src.ttl_seconds = 60;
        s.create(src);
        auto fork = s.create(forking("f", "src", 2));  // the source's type and TTL
        REQUIRE(fork);
        s.append(appending("f", {"x"}));
        s.append(appending("src", {"d"}));
        auto f = s.get("f", "alice", kNow);
        auto source = s.get("src", "alice", kNow);
        REQUIRE(f);
        REQUIRE(source);
        s.read(*f, 0, kAll);
        s.read(*source, 0, kAll);
        s.read(*f, 1, kAll);
        s.read(*f, 0, 1);
        // A fork of the fork, at its tail: three levels.
        s.create(forking("ff", "f"));
        s.append(appending("ff", {"y"}));
        auto ff = s.get("ff", "alice", kNow);
        REQUIRE(ff);
        s.read(*ff, 0, kAll);
        s.read(*ff, 2, kAll);
        // Asked again: the same fork is there; another fork point is not it.
        s.create(forking("f", "src", 2));
        s.create(forking("f", "src", 1));
        s.create(creation("f"));  // not a fork: another stream than the fork
        auto json = forking("g", "src");
        json.content_type = "application/json";
        s.create(json);
        s.create(forking("g", "src", 9));
        s.create(forking("g", "nothing"));
        s.create(forking("g", "src", 0));  // at the start: none of the source's messages
        s.get("g", "alice", kNow);
        auto closed = forking("h", "src", 1);
        closed.closed = true;
        closed.messages = {"own"};
        auto h = s.create(closed);
        REQUIRE(h);
        s.read(*h, 0, kAll);
        s.append(appending("h", {"more"}));
        auto bob = creation("src", "bob", "text/plain", {"bob's"});
        bob.fork = store::ForkFrom{"f", std::nullopt, 0};
        s.create(bob);  // another owner's stream is no source
    });
}

TEST_CASE("streams: a sub-offset forks inside a binary message or among JSON messages") {
    for_each_stream_log([](StreamSession& s) {
        s.create(creation("text", "alice", "text/plain", {"first", "second"}));
        auto mid = forking("mid", "text", 1, 3);
        mid.messages = {"XY"};
        auto created = s.create(mid);
        REQUIRE(created);
        s.read(*created, 0, kAll);
        s.create(forking("over", "text", 1, 7));
        s.create(forking("past", "text", std::nullopt, 1));
        // Chained: the fork's own first message is sliced again.
        auto again = s.create(forking("again", "mid", 1, 2));
        REQUIRE(again);
        s.read(*again, 0, kAll);

        s.create(creation("json", "alice", "application/json", {"1", "2", "3"}));
        auto two = s.create(forking("two", "json", 0, 2));
        REQUIRE(two);
        s.read(*two, 0, kAll);
        s.create(forking("four", "json", 0, 4));
    });
}

TEST_CASE("streams: a deleted source stays for its forks, and goes with the last of them") {
    for_each_stream_log([](StreamSession& s) {
        s.create(creation("l0", "alice", "text/plain", {"A", "unshared"}));
        s.create(forking("l1", "l0", 1));
        s.append(appending("l1", {"B"}));
        s.create(forking("l2", "l1"));
        s.append(appending("l2", {"C"}));

        s.remove("l1", "alice", kNow);
        s.get("l1", "alice", kNow);
        s.remove("l1", "alice", kNow);
        s.append(appending("l1", {"no"}));
        s.create(creation("l1"));
        s.create(forking("other", "l1"));
        auto l2 = s.get("l2", "alice", kNow);
        REQUIRE(l2);
        s.read(*l2, 0, kAll);

        s.remove("l0", "alice", kNow);
        auto l0 = s.get("l0", "alice", kNow);
        REQUIRE(l0);
        s.read(*l0, 0, kAll);  // kept with only what its fork reads
        s.read(*l2, 0, kAll);
        // The last fork goes: l1, then l0, go with it. (Another stream stays,
        // so that what follows does not hang on whether a store hands out the
        // id of the last stream again.)
        s.create(creation("other"));
        s.remove("l2", "alice", kNow);
        s.get("l2", "alice", kNow);
        s.get("l1", "alice", kNow);
        s.get("l0", "alice", kNow);
        s.create(creation("l0"));

        // A source whose forks all went is a stream like any other.
        s.create(creation("keep", "alice", "text/plain", {"k"}));
        s.create(forking("k1", "keep"));
        s.remove("k1", "alice", kNow);
        auto keep = s.get("keep", "alice", kNow);
        REQUIRE(keep);
        s.read(*keep, 0, kAll);
        s.remove("keep", "alice", kNow);
        s.get("keep", "alice", kNow);
    });
}

TEST_CASE("streams: an expired source with forks is kept for them") {
    for_each_stream_log([](StreamSession& s) {
        auto src = creation("src", "alice", "text/plain", {"data"});
        src.ttl_seconds = 1;
        s.create(src);
        auto fork = forking("f", "src");
        fork.ttl_seconds = 60;
        auto f = s.create(fork);
        REQUIRE(f);
        s.get("src", "alice", kNow + 2'000);
        s.append(appending("src", {"late"}, kNow + 2'000));
        auto late = forking("g", "src");
        late.now_ms = kNow + 2'000;
        s.create(late);
        s.read(*f, 0, kAll);
    });
}

TEST_CASE("streams: forks of forks go at most kMaxForkDepth deep") {
    for_each_stream_log([](StreamSession& s) {
        s.create(creation("d0", "alice", "text/plain", {"root"}));
        for (std::uint32_t depth = 1; depth <= domain::kMaxForkDepth + 1; ++depth) {
            auto fork = forking("d" + std::to_string(depth), "d" + std::to_string(depth - 1));
            fork.messages = {"level " + std::to_string(depth)};
            s.create(fork);
        }
        auto deepest = s.get("d" + std::to_string(domain::kMaxForkDepth), "alice", kNow);
        REQUIRE(deepest);
        s.read(*deepest, 0, kAll);
        s.create(forking("side", "d3", 2));  // a shallower source still forks
    });
}

}  // namespace
}  // namespace jobcast::contract
