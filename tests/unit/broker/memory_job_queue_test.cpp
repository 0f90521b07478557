// The in-memory JobQueue through its port, with a ManualClock: dispatch order,
// reservations and leases, a hello's claim, heartbeats' renew, orphans and
// their expiry, and who holds a worker name.
#include "broker/memory_job_queue.hpp"

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

using Jobs = std::vector<std::string>;
const std::vector<std::string> kLlm{"llm"};

struct Rig {
    explicit Rig(std::uint32_t max_unacked_reports = 20) : memory(clock, 3s, max_unacked_reports) {
        at(clock, 0ms);
    }
    ManualClock clock;
    MemoryJobQueue memory;
    JobQueue& queue = memory;

    // `job` taken by `worker` and leased to it as `attempt`.
    void lease(const std::string& job, const WorkerRef& worker, int attempt = 1) {
        queue.enqueue({job, "llm", 0});
        REQUIRE(queue.take(kLlm, 1, worker) == Jobs{job});
        queue.leased(job, attempt);
    }
};

const WorkerRef w1{"w1", "one", ""};

}  // namespace

TEST_CASE("jobs are taken by priority, then age, of the worker's types, as many as asked") {
    Rig rig;
    auto& q = rig.queue;
    q.enqueue({"01B", "llm", 0});
    q.enqueue({"01A", "llm", 0});
    q.enqueue({"01C", "llm", 5});
    q.enqueue({"01D", "research", 9});  // not a type of w1
    q.enqueue({"01E", "chat", 1});

    CHECK(q.take({"llm", "chat"}, 3, w1) == Jobs{"01C", "01E", "01A"});
    CHECK(q.queue_depth() == 2);
    CHECK(q.holder("01C") == "w1");   // a reservation until its LeaseJob commits
    CHECK_FALSE(q.holder("01C", 1));  // not a lease yet

    q.leased("01C", 1);
    CHECK(q.holder("01C", 1) == "w1");
    CHECK_FALSE(q.holder("01C", 2));  // another attempt is not the holder
    q.release("01A");                 // its LeaseJob was refused
    CHECK_FALSE(q.holder("01A"));
    CHECK(q.take(kLlm, 5, w1) == Jobs{"01B"});
    CHECK(q.take(kLlm, 5, w1).empty());
    CHECK(q.queue_depth() == 1);  // research waits for its worker
}

TEST_CASE("a job enqueued twice is queued once, a finished one leaves the queue") {
    Rig rig;
    auto& q = rig.queue;
    q.enqueue({"J", "llm", 0});
    q.enqueue({"J", "llm", 0});
    CHECK(q.queue_depth() == 1);
    q.finished("J");
    CHECK(q.queue_depth() == 0);
    CHECK(q.take(kLlm, 1, w1).empty());

    rig.lease("K", w1);
    q.finished("K");
    CHECK_FALSE(q.holder("K"));
}

TEST_CASE("a job unqueued leaves the queue only: a reservation or lease of it stays") {
    Rig rig;
    auto& q = rig.queue;
    q.enqueue({"01A", "llm", 0});
    q.enqueue({"01B", "llm", 3});
    q.enqueue({"01C", "research", 0});
    auto listed = q.queued();
    REQUIRE(listed.size() == 3);
    CHECK(listed[0].job == "01B");  // by type, best first within it
    CHECK(listed[1].job == "01A");
    CHECK(listed[2].job == "01C");

    q.unqueue("01A");
    q.unqueue("01C");
    q.unqueue("unknown");
    CHECK(q.queue_depth() == 1);
    REQUIRE(q.queued().size() == 1);
    CHECK(q.take(kLlm, 5, w1) == Jobs{"01B"});

    // Taken meanwhile: the reservation, then the lease, stay.
    q.unqueue("01B");
    CHECK(q.holder("01B") == "w1");
    rig.lease("K", w1);
    q.unqueue("K");
    CHECK(q.holder("K", 1) == "w1");
    CHECK(q.queued().empty());
}

TEST_CASE("a worker given up on loses its leases once, its reservations end") {
    Rig rig;
    auto& q = rig.queue;
    rig.lease("J", w1);
    q.enqueue({"R", "llm", 0});
    REQUIRE(q.take(kLlm, 1, w1) == Jobs{"R"});  // its LeaseJob is being written

    auto lost = q.lose("w1");
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "J");
    CHECK(lost[0].attempt == 1);
    CHECK(lost[0].worker == "one");
    CHECK_FALSE(q.holder("J", 1));  // a zombie's chunks are refused from now on
    CHECK_FALSE(q.holder("R"));
    CHECK(q.lose("w1").empty());
    at(rig.clock, 10s);
    CHECK(q.expire().empty());  // not reported lost twice
}

TEST_CASE("a worker back from a stall cannot take back a lease whose requeue is pending") {
    // The broker gave up on a silent worker (a pause longer than the lease
    // timeout) and is writing the requeue. If its hello won the lease back, the
    // requeue would then start the job again as attempt 2 while the worker still
    // ran attempt 1: two runs of one job, one of them already refused.
    Rig rig;
    auto& q = rig.queue;
    rig.lease("J", w1);
    at(rig.clock, 4s);
    REQUIRE(q.lose("w1").size() == 1);

    at(rig.clock, 4100ms);
    auto claim = q.claim(w1, {{"J", 1}}, std::nullopt);
    CHECK(claim.resumed.empty());
    CHECK(claim.refused == Inflight{{"J", 1}});
    CHECK_FALSE(q.holder("J", 1));
    at(rig.clock, 5s);
    CHECK(q.expire().empty());

    // The requeue commits: the job goes out again, to the same worker.
    q.enqueue({"J", "llm", 0});
    REQUIRE(q.take(kLlm, 1, w1) == Jobs{"J"});
    q.leased("J", 2);
    CHECK(q.holder("J", 2) == "w1");
}

TEST_CASE("a disconnected worker's leases wait one lease timeout for its hello") {
    Rig rig;
    auto& q = rig.queue;
    const WorkerRef old{"old", "w", ""}, fresh{"new", "w", ""};
    rig.lease("A", old);
    rig.lease("B", old);
    q.enqueue({"C", "llm", 0});
    REQUIRE(q.take(kLlm, 1, old) == Jobs{"C"});  // C's LeaseJob is still being written

    at(rig.clock, 1s);
    CHECK(q.orphan("old") == 2);
    CHECK_FALSE(q.holder("A", 1));  // frames of the old connection are refused
    CHECK_FALSE(q.holder("C"));     // the reservation is gone
    at(rig.clock, 3500ms);
    CHECK(q.expire().empty());

    // It comes back on a new connection, still running A only.
    auto claim = q.claim(fresh, {{"A", 1}}, std::nullopt);
    CHECK(claim.resumed == Jobs{"A"});
    CHECK(claim.lost.empty());
    CHECK(q.holder("A", 1) == "new");
    at(rig.clock, 4100ms);
    auto lost = q.expire();  // B was not claimed in time
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "B");
    CHECK(q.holder("A", 1) == "new");
}

TEST_CASE("a hello replacing its previous connection keeps what it runs, the rest is lost") {
    Rig rig;
    auto& q = rig.queue;
    const WorkerRef old{"old", "w", ""}, fresh{"new", "w", ""};
    rig.lease("J1", old);
    rig.lease("J2", old);
    q.enqueue({"R", "llm", 0});
    REQUIRE(q.take(kLlm, 1, old) == Jobs{"R"});

    // It still runs J1 but not J2, and claims a job it never held.
    at(rig.clock, 1s);
    auto claim = q.claim(fresh, {{"J1", 1}, {"X", 1}}, PeerId("old"));
    CHECK(claim.resumed == Jobs{"J1"});
    CHECK(claim.refused == Inflight{{"X", 1}});
    REQUIRE(claim.lost.size() == 1);
    CHECK(claim.lost[0].job == "J2");
    CHECK(q.holder("J1", 1) == "new");
    CHECK_FALSE(q.holder("J2", 1));
    CHECK_FALSE(q.holder("R"));

    // A second hello on the same connection keeps what it lists.
    claim = q.claim(fresh, {{"J1", 1}}, PeerId("new"));
    CHECK(claim.resumed == Jobs{"J1"});
    CHECK(claim.lost.empty());
    CHECK(q.holder("J1", 1) == "new");
}

TEST_CASE("adopted leases wait for their worker, then expire once") {
    Rig rig;
    auto& q = rig.queue;
    q.adopt("J1", 2, "w");
    q.adopt("J2", 1, "w");
    q.adopt("J3", 1, "other");
    CHECK_FALSE(q.holder("J1", 2));
    at(rig.clock, 1s);
    auto claim = q.claim({"p", "w", ""}, {{"J1", 2}, {"J2", 7}}, std::nullopt);
    CHECK(claim.resumed == Jobs{"J1"});
    CHECK(claim.refused == Inflight{{"J2", 7}});  // wrong attempt
    CHECK(q.holder("J1", 2) == "p");

    // A lease timeout (3 s) and the reconnect allowance: workers still in
    // their reconnect backoff may come back until then.
    at(rig.clock, 3s + kReloadReconnectAllowance - 1ms);
    CHECK(q.expire().empty());
    claim = q.claim({"p2", "other", ""}, {{"J3", 1}}, std::nullopt);
    CHECK(claim.resumed == Jobs{"J3"});
    at(rig.clock, 3s + kReloadReconnectAllowance + 500ms);
    auto lost = q.expire();
    REQUIRE(lost.size() == 1);  // J2: nobody came back for it
    CHECK(lost[0].job == "J2");
    at(rig.clock, 10s);
    CHECK(q.expire().empty());  // reported once
}

TEST_CASE("time the broker itself was away does not count against an orphan") {
    Rig rig;
    auto& q = rig.queue;
    // From a restart: its worker has 3 s and the allowance to come back.
    q.adopt("O", 1, "gone");
    q.pause(10s);  // the broker was stopped for 10 s right after t0
    at(rig.clock, 10s + 3s + kReloadReconnectAllowance - 1ms);
    CHECK(q.expire().empty());
    at(rig.clock, 10s + 3s + kReloadReconnectAllowance + 500ms);
    CHECK(q.expire().size() == 1);
}

TEST_CASE("a lease its worker no longer lists, though its assign arrived, is lost") {
    Rig rig;
    auto& q = rig.queue;
    std::uint64_t number = 0;
    for (const char* job : {"A", "B", "C"}) {
        rig.lease(job, w1);
        q.assign_sent(job, ++number);  // A is assign 1, B 2, C 3
    }
    q.enqueue({"D", "llm", 0});
    REQUIRE(q.take(kLlm, 1, w1) == Jobs{"D"});  // a reservation, never reconciled

    // A report sent after two assigns had arrived: A and B known, C on its way.
    CHECK(q.renew("w1", {{"A", 1}, {"B", 1}}, 2).empty());
    auto lost = q.renew("w1", {{"B", 1}}, 2);  // A was forgotten
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "A");
    CHECK(lost[0].attempt == 1);
    CHECK(lost[0].worker == "one");
    CHECK_FALSE(lost[0].never_received);
    CHECK_FALSE(q.holder("A", 1));                // its late frames are refused
    CHECK(q.renew("w1", {{"B", 1}}, 2).empty());  // reported once
    // A listed attempt other than the lease's is not the lease.
    lost = q.renew("w1", {{"B", 7}, {"C", 1}}, 3);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "B");
    CHECK(q.holder("C", 1) == "w1");
    CHECK(q.holder("D") == "w1");

    // Leases claimed in a hello are known to the worker from the start.
    at(rig.clock, 1s);
    auto claim = q.claim({"w2", "one", ""}, {{"C", 1}}, PeerId("w1"));
    REQUIRE(claim.resumed == Jobs{"C"});
    lost = q.renew("w2", {}, 0);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "C");
    CHECK(q.renew("nobody", {}, 9).empty());
}

TEST_CASE("an assign its worker never counts is taken back after enough reports") {
    Rig rig(5);
    auto& q = rig.queue;
    rig.lease("P", w1);
    q.assign_sent("P", 1);

    // Reports that predate the assign's arrival cost nothing, however many
    // arrive within a lease timeout...
    for (int i = 0; i < 10; ++i) {
        at(rig.clock, 100ms * i);
        CHECK(q.renew("w1", {}, 0).empty());
    }
    // ...and a report that lists the job starts the count again.
    at(rig.clock, 3s);
    CHECK(q.renew("w1", {{"P", 1}}, 0).empty());
    for (int i = 0; i < 4; ++i) {
        CHECK(q.renew("w1", {}, 0).empty());
    }
    // The fifth report in a row, a lease timeout after the assign went out.
    auto lost = q.renew("w1", {}, 0);
    REQUIRE(lost.size() == 1);
    CHECK(lost[0].job == "P");
    CHECK(lost[0].never_received);
    CHECK_FALSE(q.holder("P", 1));
}

TEST_CASE("an assign that arrives late is counted and keeps its lease") {
    Rig rig(3);
    auto& q = rig.queue;
    rig.lease("J", w1);
    q.assign_sent("J", 1);
    at(rig.clock, 1s);
    CHECK(q.renew("w1", {}, 0).empty());
    at(rig.clock, 2s);
    CHECK(q.renew("w1", {}, 0).empty());
    // It arrived: counted and listed. The earlier reports are forgiven.
    at(rig.clock, 5s);
    CHECK(q.renew("w1", {{"J", 1}}, 1).empty());
    at(rig.clock, 6s);
    CHECK(q.renew("w1", {{"J", 1}}, 1).empty());
    CHECK(q.holder("J", 1) == "w1");
}

TEST_CASE("a worker name is held by its leases, lost ones aside, under their key") {
    Rig rig;
    auto& q = rig.queue;
    CHECK_FALSE(q.name_hold("w", "", "").held);
    rig.lease("J", {"p", "w", "KEY1"});
    auto hold = q.name_hold("w", "other", "KEY2");
    CHECK(hold.held);
    CHECK(hold.other_key);
    CHECK_FALSE(hold.unknown_key);
    CHECK_FALSE(q.name_hold("w", "other", "KEY1").other_key);
    CHECK_FALSE(q.name_hold("w", "p", "KEY2").held);  // the holder's own connection

    q.adopt("K", 1, "w");  // the store keeps names only
    CHECK(q.name_hold("w", "p", "KEY1").unknown_key);
    q.finished("K");

    REQUIRE(q.lose("p").size() == 1);
    CHECK_FALSE(q.name_hold("w", "", "").held);  // a name whose leases were all lost is free
}
