// The TokenRevocations port every store serves: what an add stores is what a
// later load finds while it is in force; two of the same kind, owner and key
// merge (the later revoked_at and the later until of the two); other owners'
// and kinds' stay apart. Times are real ones: the Redis store lets its keys
// expire by its own clock.
#include <algorithm>
#include <tuple>

#include "common/clock.hpp"
#include "contract_session.hpp"

namespace jobcast::contract {
namespace {

using Row = std::tuple<std::string, std::string, std::string, UnixMs, UnixMs>;

std::vector<Row> rows(const std::vector<store::TokenRevocation>& revocations) {
    std::vector<Row> out;
    for (const auto& r : revocations)
        out.emplace_back(r.kind, r.owner, r.key, r.revoked_at, r.until);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("token revocations: stored, merged per kind, owner and key, loaded while in force",
          "[contract]") {
    constexpr UnixMs kHour = 3'600'000;
    const UnixMs now = Clock::system().unix_ms();
    for (const StoreUnderTest& under_test : stores_under_test()) {
        INFO("store: " << under_test.name);
        auto revocations = under_test.open_revocations();
        CHECK(revocations->load(now).empty());

        revocations->add({"token", "alice", "S1", now, now + kHour}, now);
        revocations->add({"job", "alice", "J1", now, now + kHour}, now);
        revocations->add({"job", "bob", "J1", now, now + kHour}, now);
        revocations->add({"owner", "bob", "bob", now, now + 2 * kHour}, now);
        // Again for one key: the later of each time is kept.
        revocations->add({"job", "alice", "J1", now - 10, now + kHour + 10}, now);
        revocations->add({"token", "alice", "S1", now + 10, now + kHour - 10}, now + 10);

        CHECK(rows(revocations->load(now)) ==
              std::vector<Row>{{"job", "alice", "J1", now, now + kHour + 10},
                               {"job", "bob", "J1", now, now + kHour},
                               {"owner", "bob", "bob", now, now + 2 * kHour},
                               {"token", "alice", "S1", now + 10, now + kHour}});
        // In force while its tokens may live: over at `until`.
        CHECK(rows(revocations->load(now + kHour)) ==
              std::vector<Row>{{"job", "alice", "J1", now, now + kHour + 10},
                               {"owner", "bob", "bob", now, now + 2 * kHour}});
        CHECK(revocations->load(now + 2 * kHour).empty());
        // An add prunes what is over by its `now`; the rest stays.
        revocations->add({"owner", "carol", "carol", now + kHour, now + 3 * kHour}, now + kHour);
        CHECK(rows(revocations->load(now)) ==
              std::vector<Row>{{"job", "alice", "J1", now, now + kHour + 10},
                               {"owner", "bob", "bob", now, now + 2 * kHour},
                               {"owner", "carol", "carol", now + kHour, now + 3 * kHour}});
    }
}

}  // namespace jobcast::contract
