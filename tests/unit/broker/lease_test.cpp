// Lease rules with a ManualClock: deadlines, renewal, orphans, reconcile,
// reclaim of an assign never counted, cancel grace.
#include "broker/lease.hpp"

#include <catch2/catch.hpp>

using namespace jobcast::broker;
using namespace std::chrono_literals;
using jobcast::ManualClock;

namespace {

Lease held_by(const PeerId& peer, const std::string& worker, int attempt) {
    Lease lease;
    lease.peer = peer;
    lease.worker = worker;
    lease.attempt = attempt;
    return lease;
}

}  // namespace

TEST_CASE("a worker keeps its leases while heard from within the timeout") {
    ManualClock clock;
    clock.advance(1h);
    const LeaseTerms terms(clock, 3s);
    const auto last_seen = terms.now();
    clock.advance(3s);
    CHECK_FALSE(terms.silent(last_seen));
    clock.advance(1ms);
    CHECK(terms.silent(last_seen));
    CHECK_FALSE(terms.silent(terms.now()));  // a message renews
}

TEST_CASE("an orphaned lease waits one timeout for its worker, longer when the broker was away") {
    ManualClock clock;
    clock.advance(1h);
    const LeaseTerms terms(clock, 3s);
    Lease lease = held_by("p1", "w", 1);
    terms.orphan(lease);
    CHECK(lease.peer.empty());
    clock.advance(3s);
    CHECK_FALSE(terms.orphan_expired(lease));
    terms.pause(lease, 10s);
    clock.advance(10s);
    CHECK_FALSE(terms.orphan_expired(lease));
    clock.advance(1ms);
    CHECK(terms.orphan_expired(lease));
    lease.lost = true;  // reported: not again
    CHECK_FALSE(terms.orphan_expired(lease));

    // A held lease has no orphan deadline.
    CHECK_FALSE(terms.orphan_expired(held_by("p1", "w", 1)));
}

TEST_CASE("a hello claims only its own attempt of a lease that is orphaned or was its own") {
    Lease orphan = held_by("", "w", 2);
    CHECK(LeaseTerms::claimable(orphan, "w", 2, std::nullopt));
    CHECK_FALSE(LeaseTerms::claimable(orphan, "w", 1, std::nullopt));  // a stale attempt
    CHECK_FALSE(LeaseTerms::claimable(orphan, "other", 2, std::nullopt));

    Lease held = held_by("p1", "w", 1);
    CHECK_FALSE(LeaseTerms::claimable(held, "w", 1, std::nullopt));  // held by a live connection
    CHECK(LeaseTerms::claimable(held, "w", 1, PeerId("p1")));        // its own, reconnecting
    CHECK_FALSE(LeaseTerms::claimable(held, "w", 1, PeerId("p2")));

    Lease reserved = held_by("p1", "w", 0);  // its LeaseJob is still being written
    CHECK_FALSE(LeaseTerms::claimable(reserved, "w", 0, PeerId("p1")));

    Lease lost = held_by("", "w", 1);
    lost.lost = true;  // its requeue is being written
    CHECK_FALSE(LeaseTerms::claimable(lost, "w", 1, std::nullopt));

    ManualClock clock;
    const LeaseTerms terms(clock, 3s);
    orphan.key_known = false;
    orphan.assign_no = 4;
    terms.claim(orphan, "p9", "KEY");
    CHECK(orphan.peer == "p9");
    CHECK(orphan.key == "KEY");
    CHECK(orphan.key_known);
    CHECK(orphan.assign_no == 0);  // known to the worker from its hello on
}

TEST_CASE("a report that does not list a received assign loses the lease") {
    ManualClock clock;
    const LeaseTerms terms(clock, 3s);
    Lease lease = held_by("p1", "w", 1);
    terms.assign_sent(lease, 2);
    CHECK(terms.report(lease, true, 2) == LeaseReport::kept);
    CHECK(terms.report(lease, false, 2) == LeaseReport::forgotten);
    CHECK(terms.report(lease, false, 5) == LeaseReport::forgotten);

    Lease claimed = held_by("p1", "w", 1);  // claimed in a hello: assign number 0
    CHECK(terms.report(claimed, false, 0) == LeaseReport::forgotten);
}

TEST_CASE("an assign never counted is reclaimed after enough reports and one timeout") {
    ManualClock clock;
    clock.advance(1h);
    const LeaseTerms terms(clock, 3s, 5);
    Lease lease = held_by("p1", "w", 1);
    terms.assign_sent(lease, 1);
    // Many reports within the timeout cost nothing...
    for (int i = 0; i < 10; ++i) {
        clock.advance(100ms);
        CHECK(terms.report(lease, false, 0) == LeaseReport::kept);
    }
    clock.advance(2s);
    // ...a report that lists it starts the count again...
    CHECK(terms.report(lease, true, 0) == LeaseReport::kept);
    for (int i = 0; i < 4; ++i)
        CHECK(terms.report(lease, false, 0) == LeaseReport::kept);
    // ...and the fifth in a row, a timeout after the assign went out, takes it back.
    CHECK(terms.report(lease, false, 0) == LeaseReport::never_received);

    // A new assign of the lease starts over.
    terms.assign_sent(lease, 2);
    CHECK(lease.unacked_reports == 0);
    CHECK(lease.assign_sent_at == terms.now());
}

TEST_CASE("a cancel is forced once, after its grace") {
    ManualClock clock;
    clock.advance(1h);
    CancelGrace grace(clock, 10s);
    CHECK(grace.start("J"));
    CHECK_FALSE(grace.start("J"));  // told once
    CHECK(grace.started("J"));
    clock.advance(5s);
    CHECK(grace.start("K"));
    clock.advance(5s - 1ms);
    CHECK(grace.due().empty());
    clock.advance(1ms);
    CHECK(grace.due() == std::vector<std::string>{"J"});
    CHECK(grace.due().empty());  // once
    clock.advance(5s);
    CHECK(grace.due() == std::vector<std::string>{"K"});
    grace.forget("J");
    CHECK_FALSE(grace.started("J"));
    CHECK(grace.started("K"));
}
