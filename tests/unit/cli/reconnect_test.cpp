#include <catch2/catch.hpp>

#include "cli/reconnect.hpp"

using namespace jobcast::cli;
using std::chrono::milliseconds;

TEST_CASE("delays are drawn from [0, ceiling], the ceiling doubling up to the cap",
          "[cli][reconnect]") {
    ReconnectPolicy policy({milliseconds{200}, milliseconds{5000}, milliseconds{600'000}}, 1);
    const milliseconds ceilings[] = {milliseconds{200},  milliseconds{400},  milliseconds{800},
                                     milliseconds{1600}, milliseconds{3200}, milliseconds{5000},
                                     milliseconds{5000}, milliseconds{5000}};
    for (const auto ceiling : ceilings) {
        const auto delay = policy.next_delay(milliseconds{0});
        REQUIRE(delay);
        CHECK(*delay >= milliseconds{0});
        CHECK(*delay <= ceiling);
    }
}

TEST_CASE("the jitter is full: delays spread over the whole range", "[cli][reconnect]") {
    // Many clients dropped at once must not come back at once.
    milliseconds low{5000}, high{0};
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
        ReconnectPolicy policy({milliseconds{200}, milliseconds{5000}, milliseconds{60'000}}, seed);
        for (int i = 0; i < 6; ++i)
            policy.next_delay(milliseconds{0});
        const auto delay = *policy.next_delay(milliseconds{0});  // ceiling is the cap now
        low = std::min(low, delay);
        high = std::max(high, delay);
    }
    CHECK(low < milliseconds{500});
    CHECK(high > milliseconds{4500});
}

TEST_CASE("a success starts the next outage from the first ceiling", "[cli][reconnect]") {
    ReconnectPolicy policy({milliseconds{100}, milliseconds{5000}, milliseconds{60'000}}, 3);
    for (int i = 0; i < 10; ++i)
        policy.next_delay(milliseconds{0});
    policy.succeeded();
    CHECK(policy.attempts() == 0);
    CHECK(*policy.next_delay(milliseconds{0}) <= milliseconds{100});
}

TEST_CASE("it gives up once the outage reaches the deadline, trying at the deadline",
          "[cli][reconnect]") {
    ReconnectPolicy policy({milliseconds{200}, milliseconds{5000}, milliseconds{10'000}}, 9);
    CHECK(*policy.next_delay(milliseconds{9'990}) <= milliseconds{10});
    CHECK_FALSE(policy.next_delay(milliseconds{10'000}));
    CHECK_FALSE(policy.next_delay(milliseconds{25'000}));

    ReconnectPolicy never({milliseconds{200}, milliseconds{5000}, milliseconds{0}}, 9);
    CHECK_FALSE(never.next_delay(milliseconds{0}));
}
