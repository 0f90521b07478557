#include "web/stream/subscription.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <random>

using namespace jobcast;
using namespace jobcast::live;
using namespace jobcast::web;

namespace {

Event event(std::uint64_t seq, bool terminal = false) {
    Event e;
    e.seq = seq;
    e.kind = terminal ? EventKind::state : EventKind::token;
    e.data = terminal ? R"({"state":"succeeded","attempt":1})" : R"({"text":"x"})";
    return e;
}

PublishedPtr batch(std::uint64_t first, std::uint64_t last, bool terminal = false) {
    auto p = std::make_shared<Published>();
    p->job = "J";
    for (auto s = first; s <= last; ++s)
        p->events.push_back(event(s, terminal && s == last));
    p->terminal = terminal;
    p->bytes = 100 * (last - first + 1);
    return p;
}

// The seqs a client would receive from deliveries.
void collect(std::vector<std::uint64_t>& out, const std::vector<Delivery>& deliveries) {
    for (const auto& d : deliveries) {
        for (std::size_t i = d.skip; i < d.published->events.size(); ++i) {
            out.push_back(d.published->events[i].seq);
        }
    }
}

std::vector<Event> store_read(std::uint64_t after, std::uint64_t last, std::size_t limit) {
    std::vector<Event> out;
    for (auto s = after + 1; s <= last && out.size() < limit; ++s)
        out.push_back(event(s));
    return out;
}

// A store read as the session hands it to the subscription: its seqs.
Subscription::StorePage page_of(const std::vector<Event>& events) {
    Subscription::StorePage page;
    if (events.empty()) return page;
    page.first = events.front().seq;
    page.last = events.back().seq;
    page.count = events.size();
    page.terminal = is_terminal_event(events.back());
    return page;
}

// The seqs a client would receive from a page the subscription sent.
void collect(std::vector<std::uint64_t>& out, const Subscription::StorePage& page,
             const Subscription::PageResult& result) {
    for (std::size_t i = 0; i < result.events; ++i)
        out.push_back(page.first + i);
}

}  // namespace

TEST_CASE("terminal state events are recognised") {
    Event e = event(1, true);
    CHECK(is_terminal_event(e));
    e.data = R"({"state":"running","attempt":1})";
    CHECK_FALSE(is_terminal_event(e));
    e.kind = EventKind::log;
    e.data = R"({"state":"failed"})";
    CHECK_FALSE(is_terminal_event(e));
}

TEST_CASE("live events during the replay are buffered and deduplicated at the switch") {
    Subscription sub("J", 3);
    std::vector<std::uint64_t> got;
    // Subscribed while events 1..10 are committed; 9..12 arrive live during the read.
    CHECK(sub.on_live(batch(9, 10)).empty());
    CHECK(sub.on_live(batch(11, 12)).empty());
    REQUIRE(sub.wants_read());
    sub.read_started();
    CHECK_FALSE(sub.wants_read());
    const auto page_read = page_of(store_read(3, 10, 100));
    auto page = sub.on_page(page_read, false);
    collect(got, page_read, page);
    collect(got, page.live);
    CHECK(sub.mode() == Subscription::Mode::live);
    collect(got, sub.on_live(batch(12, 13)));  // overlap with the buffer
    collect(got, sub.on_live(batch(14, 14)));
    std::vector<std::uint64_t> want;
    for (std::uint64_t s = 4; s <= 14; ++s)
        want.push_back(s);
    CHECK(got == want);
}

TEST_CASE("a slow subscriber catches up from the store and rejoins live") {
    Subscription sub("J", 0, 250);  // room for two live events while replaying
    std::vector<std::uint64_t> got;
    const auto page_read = page_of(store_read(0, 2, 100));
    auto page = sub.on_page(page_read, false);
    collect(got, page_read, page);
    REQUIRE(sub.mode() == Subscription::Mode::live);
    collect(got, sub.on_live(batch(3, 3)));

    sub.fall_behind();  // its connection's queue is full
    CHECK(sub.mode() == Subscription::Mode::replay);
    std::uint64_t committed = 3;
    for (int i = 0; i < 50; ++i) {  // live traffic keeps coming while it catches up
        ++committed;
        CHECK(sub.on_live(batch(committed, committed)).empty());
        if (i % 7 == 0 && sub.wants_read()) {
            sub.read_started();
            const auto p_read = page_of(store_read(sub.cursor(), committed, 4));
            auto p = sub.on_page(p_read, true);
            collect(got, p_read, p);
        }
    }
    CHECK(sub.buffered_bytes() <= 250);  // memory stays bounded while behind
    // Now it reads to the end: first pass finds the buffer dropped, second switches.
    for (int pass = 0; pass < 20 && sub.mode() == Subscription::Mode::replay; ++pass) {
        sub.read_started();
        const auto p_read = page_of(store_read(sub.cursor(), committed, 1000));
        auto p = sub.on_page(p_read, false);
        collect(got, p_read, p);
        collect(got, p.live);
        ++committed;  // one more event is published between reads
        auto live = sub.on_live(batch(committed, committed));
        collect(got, live);
    }
    CHECK(sub.mode() == Subscription::Mode::live);
    std::vector<std::uint64_t> want;
    for (std::uint64_t s = 1; s <= committed; ++s)
        want.push_back(s);
    CHECK(got == want);
}

TEST_CASE("the terminal event ends the subscription, from replay or live") {
    Subscription replayed("J", 0);
    std::vector<Event> log = store_read(0, 4, 10);
    log.push_back(event(5, true));
    auto page = replayed.on_page(page_of(log), false);
    CHECK(page.ended);
    CHECK(page.events == 5);
    CHECK(replayed.mode() == Subscription::Mode::ended);
    CHECK(replayed.on_live(batch(6, 6)).empty());

    Subscription live("J", 0);
    live.on_page({}, false);
    REQUIRE(live.mode() == Subscription::Mode::live);
    CHECK(live.on_live(batch(1, 3, true)).size() == 1);
    CHECK(live.mode() == Subscription::Mode::ended);
}

TEST_CASE("a hole in live traffic sends the subscriber back to the store") {
    Subscription sub("J", 0);
    sub.on_page({}, false);
    std::vector<std::uint64_t> got;
    collect(got, sub.on_live(batch(1, 2)));
    CHECK(sub.on_live(batch(5, 6)).empty());  // 3 and 4 never came live
    CHECK(sub.mode() == Subscription::Mode::replay);
    CHECK(sub.cursor() == 2);
}

TEST_CASE(
    "a job written past what this broker shows: refused, ended or read that far (cluster mode)") {
    Job job;
    job.state = JobState::running;
    job.last_seq = 10;
    CHECK_FALSE(stream_already_ended(job, 10, 0));
    const std::uint64_t written = 12;                 // 11 and 12 not confirmed here yet
    CHECK_FALSE(after_beyond_log(job, 12, written));  // shown by another broker
    CHECK(after_beyond_log(job, 13, written));        // past anything written: refused
    job.state = JobState::succeeded;
    CHECK_FALSE(stream_already_ended(job, 11, written));
    CHECK(stream_already_ended(job, 12, written));  // it has the terminal event
    CHECK_FALSE(after_beyond_log(job, 12, written));
    CHECK(after_beyond_log(job, 13, written));
    CHECK(stream_already_ended(job, 10, 0));
    CHECK(after_beyond_log(job, 11, 0));  // one node: refused as ever
}

TEST_CASE("a subscription reads as far as the log was written before it goes live or ends") {
    // Events 11 and 12 were written (and published) by another broker before
    // this subscription began; this broker shows up to 10 for now.
    const bool finished = GENERATE(false, true);
    const std::uint64_t after = GENERATE(5, 11);
    Subscription sub("J", after);
    sub.reach(12);
    std::vector<std::uint64_t> got;
    if (!finished) CHECK(sub.on_live(batch(13, 13)).empty());  // buffered: the replay is not done
    for (int pass = 0; pass < 2; ++pass) {
        REQUIRE(sub.wants_read());
        sub.read_started();
        const auto page_read = page_of(store_read(sub.cursor(), 10, 100));
        auto page = sub.on_page(page_read, false);
        collect(got, page_read, page);
        // Neither live (nothing would bring 11 and 12 then) nor ended: read again later.
        CHECK(page.read_later);
        CHECK(page.live.empty());
        CHECK(sub.mode() == Subscription::Mode::replay);
        CHECK(sub.reads_later() == pass + (after == 5 ? 0 : 1));
        sub.on_page({}, true);  // the caller's retry
    }
    REQUIRE(sub.wants_read());
    sub.read_started();
    auto log = store_read(sub.cursor(), 11, 100);
    log.push_back(event(12, finished));
    const auto page_read = page_of(log);
    auto page = sub.on_page(page_read, false);
    collect(got, page_read, page);
    collect(got, page.live);
    CHECK_FALSE(page.read_later);
    CHECK(page.ended == finished);
    CHECK(sub.mode() == (finished ? Subscription::Mode::ended : Subscription::Mode::live));
    std::vector<std::uint64_t> want;
    for (std::uint64_t s = after + 1; s <= (finished ? 12 : 13); ++s)
        want.push_back(s);
    CHECK(got == want);

    // One node: nothing to reach; an empty read goes live at once.
    Subscription one("J", 10);
    one.reach(0);
    CHECK_FALSE(one.on_page({}, false).read_later);
    CHECK(one.mode() == Subscription::Mode::live);
}

TEST_CASE("live events let go of are read from the store before going live again") {
    Subscription sub("J", 0);
    sub.on_page({}, false);
    std::vector<std::uint64_t> got;
    collect(got, sub.on_live(batch(1, 2)));
    CHECK(sub.on_live(batch(5, 6, true)).empty());  // a hole: 3..6 come from the store
    REQUIRE(sub.wants_read());
    // The store gives up to 4 only (cluster mode: this broker cannot confirm
    // 5 and 6 yet): the subscription neither goes live nor ends, it reads again.
    for (int pass = 0; pass < 2; ++pass) {
        sub.read_started();
        const auto page_read = page_of(store_read(sub.cursor(), 4, 100));
        auto page = sub.on_page(page_read, false);
        collect(got, page_read, page);
        CHECK(page.read_later == (pass == 1));
    }
    CHECK(sub.mode() == Subscription::Mode::replay);
    CHECK_FALSE(sub.wants_read());  // until the caller's retry
    sub.on_page({}, true);
    REQUIRE(sub.wants_read());
    sub.read_started();
    auto log = store_read(4, 5, 100);
    log.push_back(event(6, true));
    const auto page_read = page_of(log);
    auto page = sub.on_page(page_read, false);
    collect(got, page_read, page);
    CHECK(page.ended);
    CHECK(got == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("randomised interleavings of live and replay never gap or duplicate") {
    std::mt19937 rng(GENERATE(1, 2, 3, 4, 5, 6, 7, 8));
    std::uint64_t committed = rng() % 20;
    std::uint64_t after = committed ? rng() % committed : 0;
    Subscription sub("J", after, 100 * (1 + rng() % 8));
    std::vector<std::uint64_t> got;
    for (int step = 0; step < 400; ++step) {
        switch (rng() % 4) {
            case 0:
            case 1: {  // a commit publishes 1..3 events
                std::uint64_t n = 1 + rng() % 3;
                auto p = batch(committed + 1, committed + n);
                committed += n;
                collect(got, sub.on_live(p));
                break;
            }
            case 2:
                if (sub.wants_read()) {
                    sub.read_started();
                    std::size_t limit = 1 + rng() % 6;
                    auto events = store_read(sub.cursor(), committed, limit);
                    bool full = events.size() == limit;
                    const auto p_read = page_of(events);
                    auto p = sub.on_page(p_read, full);
                    collect(got, p_read, p);
                    collect(got, p.live);
                }
                break;
            case 3:
                if (rng() % 5 == 0) sub.fall_behind();
                break;
        }
    }
    // Drain: read until live.
    for (int i = 0; i < 100 && sub.mode() == Subscription::Mode::replay; ++i) {
        sub.read_started();
        const auto p_read = page_of(store_read(sub.cursor(), committed, 1000));
        auto p = sub.on_page(p_read, false);
        collect(got, p_read, p);
        collect(got, p.live);
    }
    REQUIRE(sub.mode() == Subscription::Mode::live);
    std::vector<std::uint64_t> want;
    for (std::uint64_t s = after + 1; s <= committed; ++s)
        want.push_back(s);
    CHECK(got == want);
}

TEST_CASE("a connection's live buffers share one budget across its subscriptions (L5)") {
    LiveBufferBudget budget(250);  // room for two 100-byte batches on the whole connection
    {
        Subscription a("J", 0, 1 << 20, &budget);
        Subscription b("J", 0, 1 << 20, &budget);
        CHECK(a.on_live(batch(1, 1)).empty());
        CHECK(a.on_live(batch(2, 2)).empty());
        CHECK(budget.used() == 200);
        // b's first batch does not fit: b keeps nothing and will read it from the store.
        CHECK(b.on_live(batch(1, 1)).empty());
        CHECK(b.buffered_bytes() == 0);
        CHECK(budget.used() == 200);
        // a third batch for a goes past the budget too: a drops its buffer and gives it back.
        CHECK(a.on_live(batch(3, 3)).empty());
        CHECK(a.buffered_bytes() == 0);
        CHECK(budget.used() == 0);
        CHECK(budget.used() <= budget.limit());
    }
    CHECK(budget.used() == 0);
}

TEST_CASE("many subscriptions over a small connection budget lose and repeat nothing (L5)") {
    std::mt19937 rng(GENERATE(11, 12, 13, 14));
    LiveBufferBudget budget(300);
    constexpr int kSubs = 6;
    std::vector<std::unique_ptr<Subscription>> subs;
    std::vector<std::vector<std::uint64_t>> got(kSubs);
    for (int i = 0; i < kSubs; ++i)
        subs.push_back(std::make_unique<Subscription>("J", 0, 1 << 20, &budget));
    std::uint64_t committed = 0;
    for (int step = 0; step < 600; ++step) {
        if (rng() % 2 == 0) {  // one commit reaches every subscription of the connection
            std::uint64_t n = 1 + rng() % 3;
            auto p = batch(committed + 1, committed + n);
            committed += n;
            for (int i = 0; i < kSubs; ++i)
                collect(got[i], subs[i]->on_live(p));
        } else {
            int i = static_cast<int>(rng() % kSubs);
            auto& sub = *subs[i];
            if (!sub.wants_read()) continue;
            sub.read_started();
            std::size_t limit = 1 + rng() % 5;
            auto events = store_read(sub.cursor(), committed, limit);
            const auto p_read = page_of(events);
            auto p = sub.on_page(p_read, p_read.count == limit);
            collect(got[i], p_read, p);
            collect(got[i], p.live);
        }
        REQUIRE(budget.used() <= budget.limit());  // never more pinned than the budget
    }
    for (int i = 0; i < kSubs; ++i) {
        auto& sub = *subs[i];
        for (int pass = 0; pass < 100 && sub.mode() == Subscription::Mode::replay; ++pass) {
            sub.read_started();
            const auto p_read = page_of(store_read(sub.cursor(), committed, 1000));
            auto p = sub.on_page(p_read, false);
            collect(got[i], p_read, p);
            collect(got[i], p.live);
        }
        REQUIRE(sub.mode() == Subscription::Mode::live);
        std::vector<std::uint64_t> want;
        for (std::uint64_t s = 1; s <= committed; ++s)
            want.push_back(s);
        CHECK(got[i] == want);
    }
    subs.clear();
    CHECK(budget.used() == 0);
}
