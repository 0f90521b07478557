// The workers connected to the broker, with a ManualClock: who may take a
// name, free slots and the order jobs are offered in, silence, assign numbers.
#include "broker/worker_links.hpp"

#include <catch2/catch.hpp>
#include <map>

using namespace jobcast::broker;
using namespace std::chrono_literals;

using jobcast::ManualClock;

namespace {

struct Rig {
    Rig() { clock.advance(1h); }
    ManualClock clock;
    WorkerLinks links{clock, 3s};

    void connect(const PeerId& peer, const std::string& name, int capacity,
                 const std::string& key = "") {
        links.connect({peer, name, key}, {"llm"}, capacity, {});
    }
};

}  // namespace

TEST_CASE("a held name is taken only with its session, or by its own CURVE key") {
    const NameHold free{};
    const NameHold live_same_key{true, false, false};
    const NameHold other_key{true, true, false};
    const NameHold reloaded{true, false, true};  // leases from the store: names only

    CHECK_FALSE(identity_refusal(free, {"", false}));
    CHECK(identity_refusal(live_same_key, {"", false}));  // without CURVE: the session decides
    CHECK_FALSE(identity_refusal(live_same_key, {"", true}));
    CHECK_FALSE(identity_refusal(live_same_key, {"KEY1", false}));
    CHECK(identity_refusal(other_key, {"KEY2", false}));
    CHECK(identity_refusal(other_key, {"KEY2", true}));  // whatever it presents
    CHECK(identity_refusal(reloaded, {"KEY1", false}));
    CHECK_FALSE(identity_refusal(reloaded, {"KEY1", true}));
}

TEST_CASE("a name is held by the live connections that said it, other than the asking one") {
    Rig rig;
    rig.connect("p", "w", 1, "KEY1");
    CHECK_FALSE(rig.links.name_hold("w", "p", "KEY1").held);
    auto hold = rig.links.name_hold("w", "q", "KEY2");
    CHECK(hold.held);
    CHECK(hold.other_key);
    CHECK_FALSE(rig.links.name_hold("w", "q", "KEY1").other_key);
    CHECK_FALSE(rig.links.name_hold("v", "q", "").held);
}

TEST_CASE("a hello replaces the same worker's previous connection, or its own") {
    Rig rig;
    CHECK_FALSE(rig.links.previous("p1", "w"));
    rig.connect("p1", "w", 1);
    CHECK(rig.links.previous("p2", "w") == "p1");
    CHECK(rig.links.previous("p1", "other") == "p1");  // a second hello on one connection
    CHECK_FALSE(rig.links.previous("p2", "other"));
}

TEST_CASE("jobs are offered to the worker with the most free slots, a few at a time") {
    Rig rig;
    rig.connect("a", "a", 4);
    rig.connect("b", "b", 2);
    auto offer = rig.links.freest({});
    REQUIRE(offer);
    CHECK(offer->worker.peer == "a");
    CHECK(offer->worker.name == "a");
    CHECK(offer->types == std::vector<std::string>{"llm"});
    CHECK(offer->jobs == 2);  // then b is as free
    rig.links.reserve("a", "J1");
    rig.links.reserve("a", "J2");

    // Even: one at a time, so that they fill up alike.
    std::map<PeerId, int> taken;
    for (int i = 0; i < 4; ++i) {
        offer = rig.links.freest({});
        REQUIRE(offer);
        CHECK(offer->jobs == 1);
        rig.links.reserve(offer->worker.peer, "K" + std::to_string(i));
        ++taken[offer->worker.peer];
    }
    CHECK(taken == std::map<PeerId, int>{{"a", 2}, {"b", 2}});
    CHECK_FALSE(rig.links.freest({}));  // full

    rig.links.release("J1");  // a's slot is free again
    offer = rig.links.freest({});
    REQUIRE(offer);
    CHECK(offer->worker.peer == "a");
    CHECK(offer->jobs == 1);
    CHECK_FALSE(rig.links.freest({"a"}));  // nothing waits for a's types: b is full

    // A lone worker is offered all its free slots at once.
    rig.links.remove("b");
    rig.links.release("J2");
    offer = rig.links.freest({});
    REQUIRE(offer);
    CHECK(offer->jobs == 2);
}

TEST_CASE(
    "a connection silent for longer than the lease timeout is reported, the broker's own "
    "absence aside") {
    Rig rig;
    rig.connect("p", "w", 1);
    rig.clock.advance(2s);
    rig.links.seen("p");
    rig.clock.advance(3s);
    CHECK(rig.links.silent().empty());
    rig.links.pause(10s);  // the broker was away
    rig.clock.advance(10s);
    CHECK(rig.links.silent().empty());
    rig.clock.advance(1s);
    CHECK(rig.links.silent() == std::vector<PeerId>{"p"});
    rig.links.remove("p");
    CHECK_FALSE(rig.links.known("p"));
    CHECK(rig.links.count() == 0);
}

TEST_CASE("assigns are numbered per connection, from its hello") {
    Rig rig;
    rig.connect("p", "w", 2);
    CHECK(rig.links.next_assign("p") == 1);
    CHECK(rig.links.next_assign("p") == 2);
    rig.links.remove("p");  // a second hello replaces the link
    rig.connect("p", "w", 2);
    CHECK(rig.links.next_assign("p") == 1);
    CHECK(rig.links.name("p") == "w");
    CHECK(rig.links.next_assign("gone") == 0);
}
