#include "broker/dispatcher.hpp"

#include <catch2/catch.hpp>

using namespace jobcast::broker;
using namespace std::chrono_literals;

namespace {
const auto t0 = Clock::time_point{} + 1h;
// A hello that carries the session of its name (the worker reconnecting).
const WorkerIdentity kWithSession{"", true};
using Held = std::vector<std::pair<std::string, int>>;
}  // namespace

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
        d.assign_sent(job, t0);  // A is assign 1, B 2, C 3
    }
    // D's LeaseJob is still being written: a reservation, never reconciled.

    // A report sent after two assigns had arrived: A and B known, C on its way.
    CHECK(d.reconcile("w1", Held{{"A", 1}, {"B", 1}}, 2, t0).empty());
    auto lost = d.reconcile("w1", Held{{"B", 1}}, 2, t0);  // A was forgotten
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "A");
    CHECK(lost[0].attempt == 1);
    CHECK(lost[0].worker == "one");
    CHECK_FALSE(d.holder("A", 1));                            // its late frames are refused
    CHECK(d.reconcile("w1", Held{{"B", 1}}, 2, t0).empty());  // reported once
    // A listed attempt other than the lease's is not the lease.
    lost = d.reconcile("w1", Held{{"B", 7}, {"C", 1}}, 3, t0);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "B");
    CHECK(d.holder("C", 1) == "w1");
    CHECK(d.holder("D") == "w1");

    // Leases claimed in a hello are known to the worker from the start.
    auto out = d.hello("w2", "one", {"llm"}, 4, {{"C", 1}}, t0 + 1s, kWithSession);
    REQUIRE(out.resumed == std::vector<std::string>{"C"});
    lost = d.reconcile("w2", Held{}, 0, t0 + 1s);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "C");
    CHECK(d.reconcile("nobody", Held{}, 9, t0 + 1s).empty());
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
    auto out = d.hello("new", "w", {"llm"}, 3, {{"A", 1}}, t0 + 3500ms, kWithSession);
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
    auto out = d.hello("new", "w", {"llm"}, 2, {{"J1", 1}, {"X", 1}}, t0 + 1s, kWithSession);
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
    auto out = d.hello("p", "w", {"llm"}, 4, {{"J1", 2}, {"J2", 7}}, t0 + 1s, kWithSession);
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

// ---- worker identity (audit M1) ---------------------------------------------

TEST_CASE("a hello for a held name without its session is refused and changes nothing") {
    Dispatcher d(3s);
    d.hello("real", "w-real", {"research"}, 1, {}, t0);
    d.enqueue({"J", "research", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    d.assign_sent("J", t0);

    // An impostor says the real worker's name and claims its lease.
    auto out = d.hello("imp", "w-real", {"research"}, 1, {{"J", 1}}, t0 + 1s);
    CHECK(out.refused_identity);
    CHECK_FALSE(out.refusal.empty());
    CHECK(out.resumed.empty());
    CHECK(out.lost.empty());
    CHECK_FALSE(out.replaced);
    CHECK_FALSE(d.known("imp"));
    CHECK(d.known("real"));
    CHECK(d.holder("J", 1) == "real");
    // Without claiming anything it cannot push the real worker out either.
    CHECK(d.hello("imp", "w-real", {"research"}, 1, {}, t0 + 1s).refused_identity);
    CHECK(d.holder("J", 1) == "real");

    // The real worker reconnecting carries the session: it keeps its lease.
    out = d.hello("real2", "w-real", {"research"}, 1, {{"J", 1}}, t0 + 2s, kWithSession);
    CHECK_FALSE(out.refused_identity);
    CHECK(out.resumed == std::vector<std::string>{"J"});
    CHECK(d.holder("J", 1) == "real2");

    // A name nobody holds needs no session.
    CHECK_FALSE(d.hello("other", "w-other", {"research"}, 1, {}, t0 + 2s).refused_identity);
}

TEST_CASE("leases orphaned by a broker restart are claimed only with the session") {
    Dispatcher d(3s);
    d.adopt_orphan("J", 1, "w-real", t0);
    auto out = d.hello("imp", "w-real", {"research"}, 1, {{"J", 1}}, t0 + 100ms);
    CHECK(out.refused_identity);
    CHECK_FALSE(d.holder("J", 1));
    out = d.hello("real", "w-real", {"research"}, 1, {{"J", 1}}, t0 + 200ms, kWithSession);
    CHECK_FALSE(out.refused_identity);
    CHECK(out.resumed == std::vector<std::string>{"J"});
    CHECK(d.holder("J", 1) == "real");
}

TEST_CASE("a name whose leases were all lost is free again") {
    Dispatcher d(3s);
    d.hello("old", "w", {"llm"}, 1, {}, t0);
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    REQUIRE(d.expire(t0 + 4s).size() == 1);  // silent: removed, its lease lost
    // A new process under the same name, with no session: accepted.
    auto out = d.hello("new", "w", {"llm"}, 1, {{"J", 1}}, t0 + 4100ms);
    CHECK_FALSE(out.refused_identity);
    CHECK(out.refused == Held{{"J", 1}});  // but the lost lease is not its
}

TEST_CASE("with CURVE a worker name belongs to the key that holds it") {
    Dispatcher d(3s);
    const WorkerIdentity k1{"KEY1", false}, k1_session{"KEY1", true};
    const WorkerIdentity k2{"KEY2", false}, k2_session{"KEY2", true};
    d.hello("real", "w", {"llm"}, 1, {}, t0, k1);
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);

    // Another allowed key: refused, whatever it presents.
    CHECK(d.hello("imp", "w", {"llm"}, 1, {{"J", 1}}, t0 + 1s, k2).refused_identity);
    CHECK(d.hello("imp", "w", {"llm"}, 1, {{"J", 1}}, t0 + 1s, k2_session).refused_identity);
    CHECK(d.holder("J", 1) == "real");
    // The same key reconnecting, even without the session: its own.
    auto out = d.hello("real2", "w", {"llm"}, 1, {{"J", 1}}, t0 + 1s, k1);
    CHECK_FALSE(out.refused_identity);
    CHECK(d.holder("J", 1) == "real2");

    // After a restart the store knows names only: the session decides.
    Dispatcher restarted(3s);
    restarted.adopt_orphan("J", 1, "w", t0);
    CHECK(restarted.hello("p", "w", {"llm"}, 1, {{"J", 1}}, t0, k1).refused_identity);
    CHECK_FALSE(restarted.hello("p", "w", {"llm"}, 1, {{"J", 1}}, t0, k1_session).refused_identity);
    CHECK(restarted.holder("J", 1) == "p");
}

// ---- assigns never acknowledged (audit H1) ------------------------------------

TEST_CASE("an assign its worker never counts is taken back after enough reports") {
    Dispatcher d(3s, 5);
    d.hello("w1", "one", {"llm"}, 1, {}, t0);
    d.enqueue({"P", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("P", 1);
    d.assign_sent("P", t0);

    // Reports that predate the assign's arrival cost nothing, however many
    // arrive within a lease timeout...
    for (int i = 0; i < 10; ++i)
        CHECK(d.reconcile("w1", Held{}, 0, t0 + 100ms * i).empty());
    // ...and a report that lists the job starts the count again.
    CHECK(d.reconcile("w1", Held{{"P", 1}}, 0, t0 + 3s).empty());
    for (int i = 0; i < 4; ++i)
        CHECK(d.reconcile("w1", Held{}, 0, t0 + 3s).empty());
    // The fifth report in a row, a lease timeout after the assign went out.
    auto lost = d.reconcile("w1", Held{}, 0, t0 + 3s);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "P");
    CHECK(lost[0].never_received);
    CHECK_FALSE(d.holder("P", 1));
    // The slot is free for the next job.
    d.enqueue({"N", "llm", 0});
    CHECK(d.assign().size() == 1);
}

TEST_CASE("an assign that arrives late is counted and keeps its lease") {
    Dispatcher d(3s, 3);
    d.hello("w1", "one", {"llm"}, 1, {}, t0);
    d.enqueue({"J", "llm", 0});
    REQUIRE(d.assign().size() == 1);
    d.lease_granted("J", 1);
    d.assign_sent("J", t0);
    CHECK(d.reconcile("w1", Held{}, 0, t0 + 1s).empty());
    CHECK(d.reconcile("w1", Held{}, 0, t0 + 2s).empty());
    // It arrived: counted and listed. The earlier reports are forgiven.
    CHECK(d.reconcile("w1", Held{{"J", 1}}, 1, t0 + 5s).empty());
    CHECK(d.reconcile("w1", Held{{"J", 1}}, 1, t0 + 6s).empty());
    CHECK(d.holder("J", 1) == "w1");
}
