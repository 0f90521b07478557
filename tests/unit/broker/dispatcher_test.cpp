#include "broker/dispatcher.hpp"

#include <catch2/catch.hpp>

using namespace jobcast::broker;
using namespace std::chrono_literals;

using jobcast::ManualClock;

namespace {
const auto t0 = Steady{} + 1h;
// Moves `clock` to `since` after t0 (never back).
void at(ManualClock& clock, std::chrono::milliseconds since) {
    REQUIRE(t0 + since >= clock.steady());
    clock.advance(
        std::chrono::duration_cast<std::chrono::microseconds>(t0 + since - clock.steady()));
}
// A hello that carries the session of its name (the worker reconnecting).
const WorkerIdentity kWithSession{"", true};
using Held = std::vector<std::pair<std::string, int>>;
}  // namespace

TEST_CASE("dispatch goes by priority, then age, to workers of the type with free capacity") {
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("w1", "one", {"llm"}, 2, {});
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
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("a", "a", {"llm"}, 4, {});
    d.hello("b", "b", {"llm"}, 4, {});
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
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("w1", "one", {"llm"}, 1, {});
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    at(clock, 2s);
    d.seen("w1");
    at(clock, 4s);
    CHECK(d.expire().empty());  // heard from 2 s ago
    at(clock, 6s);
    auto lost = d.expire();
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
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("w1", "one", {"llm"}, 1, {});
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    at(clock, 4s);
    REQUIRE(d.expire().size() == 1);

    at(clock, 4100ms);
    auto out = d.hello("w1", "one", {"llm"}, 1, {{"J", 1}});
    CHECK(out.resumed.empty());
    CHECK(out.refused == std::vector<std::pair<std::string, int>>{{"J", 1}});
    CHECK_FALSE(d.holder("J", 1));
    at(clock, 5s);
    CHECK(d.expire().empty());  // the lease is not reported lost twice

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
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("w1", "one", {"llm"}, 1, {});
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    d.adopt_orphan("O", 1, "gone");  // from a restart: its worker has 3 s to come back

    d.pause(10s);  // the broker was stopped for 10 s right after t0
    at(clock, 11s);
    CHECK(d.expire().empty());
    CHECK(d.holder("J", 1) == "w1");
    at(clock, 13500ms);
    auto lost = d.expire();  // then really silent for the lease timeout
    REQUIRE(lost.size() == 2);
    CHECK_FALSE(d.known("w1"));
}

TEST_CASE("a lease its worker no longer lists, though its assign arrived, is lost") {
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("w1", "one", {"llm"}, 4, {});
    for (const char* job : {"A", "B", "C", "D"})
        d.enqueue({job, "llm", 0});
    REQUIRE(d.assign().size() == 4);
    for (const char* job : {"A", "B", "C"}) {
        d.lease_granted(job, 1);
        d.assign_sent(job);  // A is assign 1, B 2, C 3
    }
    // D's LeaseJob is still being written: a reservation, never reconciled.

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
    at(clock, 1s);
    auto out = d.hello("w2", "one", {"llm"}, 4, {{"C", 1}}, kWithSession);
    REQUIRE(out.resumed == std::vector<std::string>{"C"});
    lost = d.reconcile("w2", Held{}, 0);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "C");
    CHECK(d.reconcile("nobody", Held{}, 9).empty());
}

TEST_CASE("a disconnected worker's leases wait one lease timeout for it to reconnect") {
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("old", "w", {"llm"}, 3, {});
    for (const char* job : {"A", "B", "C"})
        d.enqueue({job, "llm", 0});
    REQUIRE(d.assign().size() == 3);
    d.lease_granted("A", 1);
    d.lease_granted("B", 1);  // C's LeaseJob is still being written

    at(clock, 1s);
    CHECK(d.disconnect("old") == 2);
    CHECK_FALSE(d.known("old"));
    CHECK_FALSE(d.holder("A", 1));  // frames of the old connection are refused
    CHECK_FALSE(d.holder("C"));     // the reservation is gone
    at(clock, 3500ms);
    CHECK(d.expire().empty());

    // It comes back on a new connection, still running A only.
    auto out = d.hello("new", "w", {"llm"}, 3, {{"A", 1}}, kWithSession);
    CHECK(out.resumed == std::vector<std::string>{"A"});
    CHECK(d.holder("A", 1) == "new");
    at(clock, 4100ms);
    auto lost = d.expire();  // B was not claimed in time
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "B");
    CHECK(d.holder("A", 1) == "new");
}

TEST_CASE("a worker reconnecting with its in-flight jobs keeps their leases") {
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("old", "w", {"llm"}, 2, {});
    d.enqueue({"J1", "llm", 0});
    d.enqueue({"J2", "llm", 0});
    REQUIRE(d.assign().size() == 2);
    d.lease_granted("J1", 1);
    d.lease_granted("J2", 1);

    // New connection, same worker; it still runs J1 but not J2, and claims a job it never held.
    at(clock, 1s);
    auto out = d.hello("new", "w", {"llm"}, 2, {{"J1", 1}, {"X", 1}}, kWithSession);
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
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.adopt_orphan("J1", 2, "w");
    d.adopt_orphan("J2", 1, "w");
    d.adopt_orphan("J3", 1, "other");
    CHECK_FALSE(d.holder("J1", 2));
    at(clock, 1s);
    auto out = d.hello("p", "w", {"llm"}, 4, {{"J1", 2}, {"J2", 7}}, kWithSession);
    CHECK(out.resumed == std::vector<std::string>{"J1"});
    CHECK(out.refused == std::vector<std::pair<std::string, int>>{{"J2", 7}});  // wrong attempt
    CHECK(d.holder("J1", 2) == "p");

    at(clock, 3500ms);
    d.seen("p");
    auto lost = d.expire();
    REQUIRE(lost.size() == 2);  // J2 and J3: nobody came back for them
    at(clock, 5s);
    CHECK(d.expire().empty());  // reported once
}

TEST_CASE("forgetting a queued job removes it from the queue") {
    ManualClock clock;
    Dispatcher d(clock, 3s);
    d.enqueue({"J", "llm", 0});
    d.enqueue({"J", "llm", 0});  // enqueued twice is still once
    CHECK(d.queue_depth() == 1);
    d.forget("J");
    CHECK(d.queue_depth() == 0);
    at(clock, 0ms);
    d.hello("w", "w", {"llm"}, 1, {});
    CHECK(d.assign().empty());
}

TEST_CASE("a refused lease frees the worker's slot") {
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("w", "w", {"llm"}, 1, {});
    d.enqueue({"A", "llm", 0});
    d.enqueue({"B", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_refused("A");  // e.g. cancelled before the lease committed
    auto picks = d.assign();
    REQUIRE(picks.size() == 1);
    CHECK(picks[0].job == "B");
}

// ---- worker identity (audit M1) ---------------------------------------------

TEST_CASE("a hello for a held name without its session is refused and changes nothing") {
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("real", "w-real", {"research"}, 1, {});
    d.enqueue({"J", "research", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    d.assign_sent("J");

    // An impostor says the real worker's name and claims its lease.
    at(clock, 1s);
    auto out = d.hello("imp", "w-real", {"research"}, 1, {{"J", 1}});
    CHECK(out.refused_identity);
    CHECK_FALSE(out.refusal.empty());
    CHECK(out.resumed.empty());
    CHECK(out.lost.empty());
    CHECK_FALSE(out.replaced);
    CHECK_FALSE(d.known("imp"));
    CHECK(d.known("real"));
    CHECK(d.holder("J", 1) == "real");
    // Without claiming anything it cannot push the real worker out either.
    CHECK(d.hello("imp", "w-real", {"research"}, 1, {}).refused_identity);
    CHECK(d.holder("J", 1) == "real");

    // The real worker reconnecting carries the session: it keeps its lease.
    at(clock, 2s);
    out = d.hello("real2", "w-real", {"research"}, 1, {{"J", 1}}, kWithSession);
    CHECK_FALSE(out.refused_identity);
    CHECK(out.resumed == std::vector<std::string>{"J"});
    CHECK(d.holder("J", 1) == "real2");

    // A name nobody holds needs no session.
    CHECK_FALSE(d.hello("other", "w-other", {"research"}, 1, {}).refused_identity);
}

TEST_CASE("leases orphaned by a broker restart are claimed only with the session") {
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.adopt_orphan("J", 1, "w-real");
    at(clock, 100ms);
    auto out = d.hello("imp", "w-real", {"research"}, 1, {{"J", 1}});
    CHECK(out.refused_identity);
    CHECK_FALSE(d.holder("J", 1));
    at(clock, 200ms);
    out = d.hello("real", "w-real", {"research"}, 1, {{"J", 1}}, kWithSession);
    CHECK_FALSE(out.refused_identity);
    CHECK(out.resumed == std::vector<std::string>{"J"});
    CHECK(d.holder("J", 1) == "real");
}

TEST_CASE("a name whose leases were all lost is free again") {
    ManualClock clock;
    Dispatcher d(clock, 3s);
    at(clock, 0ms);
    d.hello("old", "w", {"llm"}, 1, {});
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    at(clock, 4s);
    REQUIRE(d.expire().size() == 1);  // silent: removed, its lease lost
    // A new process under the same name, with no session: accepted.
    at(clock, 4100ms);
    auto out = d.hello("new", "w", {"llm"}, 1, {{"J", 1}});
    CHECK_FALSE(out.refused_identity);
    CHECK(out.refused == Held{{"J", 1}});  // but the lost lease is not its
}

TEST_CASE("with CURVE a worker name belongs to the key that holds it") {
    ManualClock clock;
    Dispatcher d(clock, 3s);
    const WorkerIdentity k1{"KEY1", false}, k1_session{"KEY1", true};
    const WorkerIdentity k2{"KEY2", false}, k2_session{"KEY2", true};
    at(clock, 0ms);
    d.hello("real", "w", {"llm"}, 1, {}, k1);
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);

    // Another allowed key: refused, whatever it presents.
    at(clock, 1s);
    CHECK(d.hello("imp", "w", {"llm"}, 1, {{"J", 1}}, k2).refused_identity);
    CHECK(d.hello("imp", "w", {"llm"}, 1, {{"J", 1}}, k2_session).refused_identity);
    CHECK(d.holder("J", 1) == "real");
    // The same key reconnecting, even without the session: its own.
    auto out = d.hello("real2", "w", {"llm"}, 1, {{"J", 1}}, k1);
    CHECK_FALSE(out.refused_identity);
    CHECK(d.holder("J", 1) == "real2");

    // After a restart the store knows names only: the session decides.
    ManualClock restart_clock;
    Dispatcher restarted(restart_clock, 3s);
    at(restart_clock, 0ms);
    restarted.adopt_orphan("J", 1, "w");
    CHECK(restarted.hello("p", "w", {"llm"}, 1, {{"J", 1}}, k1).refused_identity);
    CHECK_FALSE(restarted.hello("p", "w", {"llm"}, 1, {{"J", 1}}, k1_session).refused_identity);
    CHECK(restarted.holder("J", 1) == "p");
}

// ---- assigns never acknowledged (audit H1) ------------------------------------

TEST_CASE("an assign its worker never counts is taken back after enough reports") {
    ManualClock clock;
    Dispatcher d(clock, 3s, 5);
    at(clock, 0ms);
    d.hello("w1", "one", {"llm"}, 1, {});
    d.enqueue({"P", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("P", 1);
    d.assign_sent("P");

    // Reports that predate the assign's arrival cost nothing, however many
    // arrive within a lease timeout...
    for (int i = 0; i < 10; ++i) {
        at(clock, 100ms * i);
        CHECK(d.reconcile("w1", Held{}, 0).empty());
    }
    // ...and a report that lists the job starts the count again.
    at(clock, 3s);
    CHECK(d.reconcile("w1", Held{{"P", 1}}, 0).empty());
    for (int i = 0; i < 4; ++i) {
        CHECK(d.reconcile("w1", Held{}, 0).empty());
    }
    // The fifth report in a row, a lease timeout after the assign went out.
    auto lost = d.reconcile("w1", Held{}, 0);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "P");
    CHECK(lost[0].never_received);
    CHECK_FALSE(d.holder("P", 1));
    // The slot is free for the next job.
    d.enqueue({"N", "llm", 0});
    CHECK(d.assign().size() == 1);
}

TEST_CASE("an assign that arrives late is counted and keeps its lease") {
    ManualClock clock;
    Dispatcher d(clock, 3s, 3);
    at(clock, 0ms);
    d.hello("w1", "one", {"llm"}, 1, {});
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    d.assign_sent("J");
    at(clock, 1s);
    CHECK(d.reconcile("w1", Held{}, 0).empty());
    at(clock, 2s);
    CHECK(d.reconcile("w1", Held{}, 0).empty());
    // It arrived: counted and listed. The earlier reports are forgiven.
    at(clock, 5s);
    CHECK(d.reconcile("w1", Held{{"J", 1}}, 1).empty());
    at(clock, 6s);
    CHECK(d.reconcile("w1", Held{{"J", 1}}, 1).empty());
    CHECK(d.holder("J", 1) == "w1");
}
