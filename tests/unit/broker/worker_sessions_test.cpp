#include <catch2/catch.hpp>

#include "broker/worker_sessions.hpp"

using jobcast::broker::WorkerSessions;

namespace {
const std::string kSecret(32, 's');
bool none_held(const std::string&) {
    return false;
}
}  // namespace

TEST_CASE("a worker keeps its session across reconnects, a wrong or guessed one is not valid") {
    WorkerSessions sessions(kSecret);
    auto s1 = sessions.welcome("", false, "", "w-real", none_held);
    REQUIRE(s1.size() == 96);
    CHECK(sessions.valid(s1, "", "w-real"));
    CHECK_FALSE(sessions.valid(std::string(96, '0'), "", "w-real"));
    CHECK_FALSE(sessions.valid(s1, "", "w-other"));
    CHECK_FALSE(sessions.valid("", "", "w-real"));
    // A reconnect that carries it keeps it (a lost welcome costs nothing).
    CHECK(sessions.welcome(s1, true, "", "w-real", none_held) == s1);
    CHECK(sessions.valid(s1, "", "w-real"));
}

TEST_CASE("a new session for a name ends every earlier one (M1: no coming back for the leases)") {
    WorkerSessions sessions(kSecret);
    auto squatter = sessions.welcome("", false, "", "w-real", none_held);
    auto real = sessions.welcome("", false, "", "w-real", none_held);
    CHECK(real != squatter);
    CHECK(sessions.valid(real, "", "w-real"));
    CHECK_FALSE(sessions.valid(squatter, "", "w-real"));
}

TEST_CASE(
    "after a restart a session made with the same secret is recognised, bound to key and "
    "name") {
    std::string issued;
    {
        WorkerSessions before(kSecret);
        issued = before.welcome("", false, "KEY", "w-real", none_held);
    }
    WorkerSessions after(kSecret);
    CHECK(after.valid(issued, "KEY", "w-real"));
    CHECK_FALSE(after.valid(issued, "OTHER", "w-real"));
    CHECK_FALSE(after.valid(issued, "KEY", "w-fake"));
    WorkerSessions other_store(std::string(32, 'x'));
    CHECK_FALSE(other_store.valid(issued, "KEY", "w-real"));
}

TEST_CASE("names no longer held are forgotten once too many are remembered") {
    WorkerSessions sessions(kSecret, 4);
    for (int i = 0; i < 4; ++i)
        sessions.welcome("", false, "", "w" + std::to_string(i), none_held);
    CHECK(sessions.size() == 4);
    auto held = [](const std::string& name) { return name == "w0"; };
    auto s = sessions.welcome("", false, "", "w9", held);
    CHECK(sessions.size() == 2);  // w0 (held) and w9
    CHECK(sessions.valid(s, "", "w9"));
}
