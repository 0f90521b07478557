#include "broker/dispatcher.hpp"

#include <catch2/catch.hpp>

using namespace jobcast::broker;
using namespace std::chrono_literals;

namespace {
const auto t0 = Clock::time_point{} + 1h;
}

TEST_CASE("dispatch goes by priority, then age, to workers of the type with free capacity") {
    Dispatcher d(3s);
    d.hello("w1", "one", {"llm"}, 2, {}, t0);
    d.enqueue({"01B", "llm", 0});
    d.enqueue({"01A", "llm", 0});
    d.enqueue({"01C", "llm", 5});
    d.enqueue({"01D", "research", 9});  // nobody runs research

    auto picks = d.assign();
    REQUIRE(picks.size() == 2);    // capacity 2
    CHECK(picks[0].job == "01C");  // highest priority first
    CHECK(picks[1].job == "01A");  // then the oldest
    CHECK(picks[0].peer == "w1");
    CHECK(d.queue_depth() == 2);
    CHECK(d.assign().empty());  // no free slot left

    d.lease_granted("01C", 1);
    CHECK(d.holder("01C", 1) == "w1");
    CHECK_FALSE(d.holder("01C", 2));  // another attempt is not the holder
    d.end_lease("01C");
    auto next = d.assign();
    REQUIRE(next.size() == 1);
    CHECK(next[0].job == "01B");
}

TEST_CASE("jobs spread over workers by free capacity") {
    Dispatcher d(3s);
    d.hello("a", "a", {"llm"}, 4, {}, t0);
    d.hello("b", "b", {"llm"}, 4, {}, t0);
    for (int i = 0; i < 8; ++i)
        d.enqueue({"job" + std::to_string(i), "llm", 0});
    auto picks = d.assign();
    REQUIRE(picks.size() == 8);
    int on_a = 0;
    for (auto& p : picks)
        on_a += p.peer == "a";
    CHECK(on_a == 4);
}

TEST_CASE("a silent worker loses its leases after the lease timeout") {
    Dispatcher d(3s);
    d.hello("w1", "one", {"llm"}, 1, {}, t0);
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    d.seen("w1", t0 + 2s);
    CHECK(d.expire(t0 + 4s).empty());  // heard from 2 s ago
    auto lost = d.expire(t0 + 6s);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "J");
    CHECK(lost[0].attempt == 1);
    CHECK(lost[0].worker == "one");
    CHECK_FALSE(d.known("w1"));
    CHECK_FALSE(d.holder("J", 1));  // a zombie's chunks are refused from now on
}

TEST_CASE("a worker back from a stall cannot take back a lease whose requeue is pending") {
    // The broker gave up on a silent worker (a pause longer than the lease
    // timeout) and is writing the requeue. If its hello won the lease back, the
    // requeue would then start the job again as attempt 2 while the worker still
    // ran attempt 1: two runs of one job, one of them already refused.
    Dispatcher d(3s);
    d.hello("w1", "one", {"llm"}, 1, {}, t0);
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    REQUIRE(d.expire(t0 + 4s).size() == 1);

    auto out = d.hello("w1", "one", {"llm"}, 1, {{"J", 1}}, t0 + 4100ms);
    CHECK(out.resumed.empty());
    CHECK(out.refused == std::vector<std::pair<std::string, int>>{{"J", 1}});
    CHECK_FALSE(d.holder("J", 1));
    CHECK(d.expire(t0 + 5s).empty());  // the lease is not reported lost twice

    // The requeue commits: the job goes out again, to the same worker.
    d.end_lease("J");
    d.enqueue({"J", "llm", 0});
    auto picks = d.assign();
    REQUIRE(picks.size() == 1);
    CHECK(picks[0].peer == "w1");
    d.lease_granted("J", 2);
    CHECK(d.holder("J", 2) == "w1");
}

TEST_CASE("time the broker itself was away does not count as a worker's silence") {
    Dispatcher d(3s);
    d.hello("w1", "one", {"llm"}, 1, {}, t0);
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    d.adopt_orphan("O", 1, "gone", t0);  // from a restart: its worker has 3 s to come back

    d.pause(10s);  // the broker was stopped for 10 s right after t0
    CHECK(d.expire(t0 + 11s).empty());
    CHECK(d.holder("J", 1) == "w1");
    auto lost = d.expire(t0 + 13500ms);  // then really silent for the lease timeout
    REQUIRE(lost.size() == 2);
    CHECK_FALSE(d.known("w1"));
}

TEST_CASE("a lease its worker no longer lists, though its assign arrived, is lost") {
    Dispatcher d(3s);
    d.hello("w1", "one", {"llm"}, 4, {}, t0);
    for (const char* job : {"A", "B", "C", "D"})
        d.enqueue({job, "llm", 0});
    REQUIRE(d.assign().size() == 4);
    for (const char* job : {"A", "B", "C"}) {
        d.lease_granted(job, 1);
        d.assign_sent(job);  // A is assign 1, B 2, C 3
    }
    // D's LeaseJob is still being written: a reservation, never reconciled.
    using Held = std::vector<std::pair<std::string, int>>;

    // A report sent after two assigns had arrived: A and B known, C on its way.
    CHECK(d.reconcile("w1", Held{{"A", 1}, {"B", 1}}, 2).empty());
    auto lost = d.reconcile("w1", Held{{"B", 1}}, 2);  // A was forgotten
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "A");
    CHECK(lost[0].attempt == 1);
    CHECK(lost[0].worker == "one");
    CHECK_FALSE(d.holder("A", 1));                        // its late frames are refused
    CHECK(d.reconcile("w1", Held{{"B", 1}}, 2).empty());  // reported once
    // A listed attempt other than the lease's is not the lease.
    lost = d.reconcile("w1", Held{{"B", 7}, {"C", 1}}, 3);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "B");
    CHECK(d.holder("C", 1) == "w1");
    CHECK(d.holder("D") == "w1");

    // Leases claimed in a hello are known to the worker from the start.
    auto out = d.hello("w2", "one", {"llm"}, 4, {{"C", 1}}, t0 + 1s);
    REQUIRE(out.resumed == std::vector<std::string>{"C"});
    lost = d.reconcile("w2", Held{}, 0);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "C");
    CHECK(d.reconcile("nobody", Held{}, 9).empty());
}

TEST_CASE("a disconnected worker's leases wait one lease timeout for it to reconnect") {
    Dispatcher d(3s);
    d.hello("old", "w", {"llm"}, 3, {}, t0);
    for (const char* job : {"A", "B", "C"})
        d.enqueue({job, "llm", 0});
    REQUIRE(d.assign().size() == 3);
    d.lease_granted("A", 1);
    d.lease_granted("B", 1);  // C's LeaseJob is still being written

    CHECK(d.disconnect("old", t0 + 1s) == 2);
    CHECK_FALSE(d.known("old"));
    CHECK_FALSE(d.holder("A", 1));  // frames of the old connection are refused
    CHECK_FALSE(d.holder("C"));     // the reservation is gone
    CHECK(d.expire(t0 + 3500ms).empty());

    // It comes back on a new connection, still running A only.
    auto out = d.hello("new", "w", {"llm"}, 3, {{"A", 1}}, t0 + 3500ms);
    CHECK(out.resumed == std::vector<std::string>{"A"});
    CHECK(d.holder("A", 1) == "new");
    auto lost = d.expire(t0 + 4100ms);  // B was not claimed in time
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "B");
    CHECK(d.holder("A", 1) == "new");
}

TEST_CASE("a worker reconnecting with its in-flight jobs keeps their leases") {
    Dispatcher d(3s);
    d.hello("old", "w", {"llm"}, 2, {}, t0);
    d.enqueue({"J1", "llm", 0});
    d.enqueue({"J2", "llm", 0});
    REQUIRE(d.assign().size() == 2);
    d.lease_granted("J1", 1);
    d.lease_granted("J2", 1);

    // New connection, same worker; it still runs J1 but not J2, and claims a job it never held.
    auto out = d.hello("new", "w", {"llm"}, 2, {{"J1", 1}, {"X", 1}}, t0 + 1s);
    CHECK(out.resumed == std::vector<std::string>{"J1"});
    CHECK(out.refused == std::vector<std::pair<std::string, int>>{{"X", 1}});
    REQUIRE(out.replaced);
    CHECK(*out.replaced == "old");
    REQUIRE(out.lost.size() == 1);
    CHECK(out.lost[0].job == "J2");
    CHECK(d.holder("J1", 1) == "new");
    CHECK_FALSE(d.known("old"));
}

TEST_CASE("orphaned leases from a restart wait for their worker, then expire") {
    Dispatcher d(3s);
    d.adopt_orphan("J1", 2, "w", t0);
    d.adopt_orphan("J2", 1, "w", t0);
    d.adopt_orphan("J3", 1, "other", t0);
    CHECK_FALSE(d.holder("J1", 2));
    auto out = d.hello("p", "w", {"llm"}, 4, {{"J1", 2}, {"J2", 7}}, t0 + 1s);
    CHECK(out.resumed == std::vector<std::string>{"J1"});
    CHECK(out.refused == std::vector<std::pair<std::string, int>>{{"J2", 7}});  // wrong attempt
    CHECK(d.holder("J1", 2) == "p");

    d.seen("p", t0 + 3500ms);
    auto lost = d.expire(t0 + 3500ms);
    REQUIRE(lost.size() == 2);         // J2 and J3: nobody came back for them
    CHECK(d.expire(t0 + 5s).empty());  // reported once
}

TEST_CASE("forgetting a queued job removes it from the queue") {
    Dispatcher d(3s);
    d.enqueue({"J", "llm", 0});
    d.enqueue({"J", "llm", 0});  // enqueued twice is still once
    CHECK(d.queue_depth() == 1);
    d.forget("J");
    CHECK(d.queue_depth() == 0);
    d.hello("w", "w", {"llm"}, 1, {}, t0);
    CHECK(d.assign().empty());
}

TEST_CASE("a refused lease frees the worker's slot") {
    Dispatcher d(3s);
    d.hello("w", "w", {"llm"}, 1, {}, t0);
    d.enqueue({"A", "llm", 0});
    d.enqueue({"B", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_refused("A");  // e.g. cancelled before the lease committed
    auto picks = d.assign();
    REQUIRE(picks.size() == 1);
    CHECK(picks[0].job == "B");
}
