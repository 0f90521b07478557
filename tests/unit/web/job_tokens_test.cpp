// Per-job tokens: minted, verified, refreshed under the session's ceiling,
// revoked (by session, job, owner) with the open streams told; and the one
// scope check every read path goes through.
#include <catch2/catch.hpp>

#include "web/security/job_tokens.hpp"
#include "web/security/security.hpp"

using namespace jobcast;
using namespace jobcast::web;

namespace {

constexpr std::int64_t kNowMs = 1'800'000'000'000;
constexpr std::int64_t kNow = kNowMs / 1000;
constexpr std::int64_t kCeiling = 3600;

std::shared_ptr<JobTokens> make_tokens() {
    JobTokenConfig config;
    config.key = std::string(32, 'k');
    config.max_lifetime_seconds = kCeiling;
    config.leeway_seconds = 0;
    return std::make_shared<JobTokens>(config, nullptr);
}

// Revocations kept in memory, as the SQLite store would keep them.
class MemoryRevocations final : public store::TokenRevocations {
  public:
    explicit MemoryRevocations(std::vector<store::TokenRevocation>& rows) : rows_(rows) {}
    std::vector<store::TokenRevocation> load(UnixMs now) override {
        std::vector<store::TokenRevocation> out;
        for (const auto& row : rows_)
            if (row.until > now) out.push_back(row);
        return out;
    }
    void add(const store::TokenRevocation& revocation, UnixMs) override {
        rows_.push_back(revocation);
    }

  private:
    std::vector<store::TokenRevocation>& rows_;
};

}  // namespace

TEST_CASE("job tokens: a minted token verifies with its grant and owner") {
    auto tokens = make_tokens();
    auto minted = tokens->mint("tenant/alice", "01JOB", 60, true, std::nullopt, kNowMs);
    REQUIRE(minted);
    CHECK(minted->expires_at == kNow + 60);
    CHECK(minted->session_expires_at == kNow + kCeiling);
    CHECK(auth::key_id(minted->token) == JobTokens::kKeyId);
    auto result = tokens->verify(minted->token, kNow);
    REQUIRE(result.claims);
    CHECK(result.claims->subject == "tenant/alice");
    REQUIRE(result.claims->grant);
    CHECK(result.claims->grant->job == "01JOB");
    CHECK(result.claims->grant->cancel);
    CHECK(result.claims->grant->token_id == result.claims->grant->session_id);
    CHECK(result.claims->grant->session_started_ms == kNowMs);
    CHECK(tokens->verify(minted->token, kNow + 60).failure == auth::JwtFailure::expired);
    // Another broker key does not verify it.
    JobTokenConfig other;
    other.key = std::string(32, 'x');
    CHECK(JobTokens(other, nullptr).verify(minted->token, kNow).failure ==
          auth::JwtFailure::signature);
}

TEST_CASE("job tokens: a refresh keeps the session and never passes its ceiling") {
    auto tokens = make_tokens();
    auto first = tokens->mint("alice", "01JOB", 600, false, std::nullopt, kNowMs);
    REQUIRE(first);
    const std::int64_t later = kNowMs + (kCeiling - 100) * 1000;
    auto refreshed = tokens->mint("alice", "01JOB", 600, true, first->grant, later);
    REQUIRE(refreshed);
    CHECK(refreshed->grant.session_id == first->grant.session_id);
    CHECK(refreshed->grant.token_id.rfind(first->grant.session_id + ".", 0) == 0);
    CHECK_FALSE(refreshed->grant.cancel);  // a refresh cannot widen its parent
    CHECK(refreshed->expires_at == first->session_expires_at);
    CHECK(refreshed->session_expires_at == first->session_expires_at);
    CHECK_FALSE(tokens->mint("alice", "01JOB", 600, false, first->grant, kNowMs + kCeiling * 1000));
    // ttl overflow saturates, then the ceiling applies.
    auto huge = tokens->mint("alice", "01JOB", INT64_MAX, false, std::nullopt, kNowMs);
    REQUIRE(huge);
    CHECK(huge->expires_at == kNow + kCeiling);
}

TEST_CASE("job tokens: the broker key signs job tokens only") {
    auto tokens = make_tokens();
    // The key signing a token without a job claim, kid jobcast-job.
    auth::MintOptions plain;
    plain.subject = "alice";
    plain.issuer = std::string(JobTokens::kIssuer);
    plain.issued_at = kNow;
    plain.ttl_seconds = 60;
    plain.key_id = std::string(JobTokens::kKeyId);
    auto token = auth::mint_hs256(std::string(32, 'k'), plain);
    CHECK(auth::key_id(token) == JobTokens::kKeyId);
    auto result = tokens->verify(token, kNow);
    CHECK_FALSE(result.claims);
    CHECK(result.failure == auth::JwtFailure::malformed);
}

TEST_CASE("job tokens: revocations cover sessions, jobs and owners, and tell watchers") {
    auto tokens = make_tokens();
    auto a = tokens->mint("alice", "J1", 600, false, std::nullopt, kNowMs)->grant;
    auto a2 = tokens->mint("alice", "J1", 600, false, a, kNowMs + 10)->grant;
    auto b = tokens->mint("alice", "J2", 600, false, std::nullopt, kNowMs)->grant;
    auto c = tokens->mint("bob", "J3", 600, false, std::nullopt, kNowMs)->grant;
    int closed_a = 0, closed_b = 0;
    auto watch_a = tokens->watch("alice", a2, [&] { ++closed_a; });
    auto watch_b = tokens->watch("alice", b, [&] { ++closed_b; });

    // Bob naming Alice's session id revokes nothing of Alice's.
    CHECK(tokens->revoke({"token", "bob", a2.token_id, 0, 0}, kNowMs + 20) == 0);
    CHECK_FALSE(tokens->revoked("alice", a));
    // Any token id of a session revokes the whole session.
    CHECK(tokens->revoke({"token", "alice", a2.token_id, 0, 0}, kNowMs + 20) == 1);
    CHECK(closed_a == 1);
    CHECK(tokens->revoked("alice", a));
    CHECK(tokens->revoked("alice", a2));
    CHECK_FALSE(tokens->revoked("alice", b));

    // A job: the sessions begun by then.
    CHECK(tokens->revoke({"job", "alice", "J2", 0, 0}, kNowMs + 30) == 1);
    CHECK(closed_b == 1);
    CHECK(tokens->revoked("alice", b));
    auto fresh = tokens->mint("alice", "J2", 600, false, std::nullopt, kNowMs + 31)->grant;
    CHECK_FALSE(tokens->revoked("alice", fresh));

    // An owner: every job, that owner only.
    tokens->revoke({"owner", "alice", "alice", 0, 0}, kNowMs + 40);
    CHECK(tokens->revoked("alice", fresh));
    CHECK_FALSE(tokens->revoked("bob", c));

    // A dropped watch is not called.
    int closed_c = 0;
    tokens->watch("bob", c, [&] { ++closed_c; }).reset();
    CHECK(tokens->revoke({"owner", "bob", "bob", 0, 0}, kNowMs + 50) == 0);
    CHECK(closed_c == 0);
}

TEST_CASE("job tokens: stored revocations are loaded by the next broker") {
    std::vector<store::TokenRevocation> rows;
    JobTokenConfig config;
    config.key = std::string(32, 'k');
    config.max_lifetime_seconds = kCeiling;
    auto first = std::make_shared<JobTokens>(config, std::make_unique<MemoryRevocations>(rows));
    auto grant = first->mint("alice", "J1", 600, false, std::nullopt, kNowMs)->grant;
    first->revoke({"job", "alice", "J1", 0, 0}, kNowMs + 1);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].until > kNowMs + kCeiling * 1000);
    ManualClock clock(kNowMs + 2);
    JobTokens second(config, std::make_unique<MemoryRevocations>(rows), clock);
    CHECK(second.revoked("alice", grant));
}

TEST_CASE("job tokens: revocations another broker took hold here and close its streams") {
    auto tokens = make_tokens();
    auto early = tokens->mint("alice", "J1", 600, false, std::nullopt, kNowMs)->grant;
    auto late = tokens->mint("alice", "J1", 600, false, std::nullopt, kNowMs + 100)->grant;
    int closed_early = 0, closed_late = 0;
    auto watch_early = tokens->watch("alice", early, [&] { ++closed_early; });
    auto watch_late = tokens->watch("alice", late, [&] { ++closed_late; });
    const std::int64_t until = kNowMs + kCeiling * 1000;

    // Taken elsewhere at +50: the sessions begun by then, here too.
    CHECK(tokens->apply({{"job", "alice", "J1", kNowMs + 50, until}}, kNowMs + 60) == 1);
    CHECK(closed_early == 1);
    CHECK(tokens->revoked("alice", early));
    CHECK_FALSE(tokens->revoked("alice", late));
    // Handed over again (the reload after a missed message): nothing new.
    CHECK(tokens->apply({{"job", "alice", "J1", kNowMs + 50, until}}, kNowMs + 60) == 0);
    // An older one of the same job does not narrow the one held.
    CHECK(tokens->apply({{"job", "alice", "J1", kNowMs + 10, until}}, kNowMs + 60) == 0);
    CHECK(tokens->revoked("alice", early));
    // A later one widens it; one already over is ignored.
    CHECK(tokens->apply({{"owner", "alice", "alice", kNowMs, kNowMs + 60},
                         {"job", "alice", "J1", kNowMs + 150, until}},
                        kNowMs + 200) == 1);
    CHECK(closed_late == 1);
    CHECK(tokens->revoked("alice", late));
    auto other = tokens->mint("alice", "J2", 600, false, std::nullopt, kNowMs)->grant;
    CHECK_FALSE(tokens->revoked("alice", other));
    // A revocation taken here merges with one taken elsewhere the same way.
    tokens->apply({{"job", "alice", "J2", kNowMs + 500, until}}, kNowMs + 300);
    tokens->revoke({"job", "alice", "J2", 0, 0}, kNowMs + 400);
    auto between = tokens->mint("alice", "J2", 600, false, std::nullopt, kNowMs + 450)->grant;
    CHECK(tokens->revoked("alice", between));
}

TEST_CASE("grant_permits and scoped_request_allowed: a job token reaches its job only") {
    auth::JobGrant grant;
    grant.job = "J1";
    CHECK(grant_permits(std::nullopt, "anything", JobAccess::cancel));
    CHECK(grant_permits(grant, "J1", JobAccess::read));
    CHECK(grant_permits(grant, "J1", JobAccess::mint));
    CHECK_FALSE(grant_permits(grant, "J1", JobAccess::cancel));
    CHECK_FALSE(grant_permits(grant, "J2", JobAccess::read));

    CHECK(scoped_request_allowed(grant, "GET", "/v1/jobs/J1"));
    CHECK(scoped_request_allowed(grant, "GET", "/v1/jobs/J1/events"));
    CHECK(scoped_request_allowed(grant, "GET", "/v1/jobs/J1/snapshot"));
    CHECK(scoped_request_allowed(grant, "POST", "/v1/jobs/J1/tokens"));
    CHECK(scoped_request_allowed(grant, "GET", "/v1/ws"));
    CHECK(scoped_request_allowed(grant, "GET", "/v1/streams/jobs/J1"));
    CHECK(scoped_request_allowed(grant, "HEAD", "/v1/streams/jobs/%4A1"));
    CHECK_FALSE(scoped_request_allowed(grant, "POST", "/v1/jobs/J1/cancel"));
    CHECK_FALSE(scoped_request_allowed(grant, "POST", "/v1/streams/jobs/J1"));
    CHECK_FALSE(scoped_request_allowed(grant, "GET", "/v1/streams/jobs/J1/x"));
    CHECK_FALSE(scoped_request_allowed(grant, "GET", "/v1/streams/other"));
    CHECK_FALSE(scoped_request_allowed(grant, "GET", "/v1/jobs/J2"));
    CHECK_FALSE(scoped_request_allowed(grant, "GET", "/v1/jobs"));
    CHECK_FALSE(scoped_request_allowed(grant, "POST", "/v1/jobs"));
    CHECK_FALSE(scoped_request_allowed(grant, "GET", "/v1/types"));
    CHECK_FALSE(scoped_request_allowed(grant, "POST", "/v1/tokens/revoke"));
    grant.cancel = true;
    CHECK(scoped_request_allowed(grant, "POST", "/v1/jobs/J1/cancel"));
}
