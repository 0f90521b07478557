#include "web/security/job_tokens.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "common/time_bounds.hpp"

namespace jobcast::web {

namespace {

constexpr std::size_t kMaxOwnerBytes = 256;  // a job token's sub (auth: valid subjects)

std::string random_id(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
        throw std::runtime_error("RAND_bytes failed");
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes * 2);
    for (unsigned char c : raw) {
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
    return out;
}

// The ceiling at most year 9999's worth of seconds, so times in ms built on
// it cannot overflow.
JobTokenConfig bounded(JobTokenConfig config) {
    config.max_lifetime_seconds =
        std::min(config.max_lifetime_seconds, time_bounds::kMaxUnixSeconds);
    return config;
}

auth::JwtConfig verifier_config(const JobTokenConfig& config) {
    if (config.max_lifetime_seconds <= 0) {
        throw std::invalid_argument("job tokens need a maximum lifetime");
    }
    auth::JwtConfig jwt;
    jwt.hs256_secret = config.key;
    jwt.issuer = std::string(JobTokens::kIssuer);
    jwt.leeway_seconds = config.leeway_seconds;
    jwt.max_lifetime_seconds = config.max_lifetime_seconds;
    return jwt;
}

// The session of a token id: a session's first token has the session's id as
// its jti, a refresh "<sid>.<random>".
std::string_view session_of(std::string_view token_id) {
    return token_id.substr(0, token_id.find('.'));
}

}  // namespace

bool grant_permits(const std::optional<auth::JobGrant>& grant, std::string_view job_id,
                   JobAccess access) {
    if (!grant) return true;
    if (grant->job != job_id) return false;
    return access != JobAccess::cancel || grant->cancel;
}

JobTokens::JobTokens(JobTokenConfig config, std::unique_ptr<store::TokenRevocations> store,
                     const Clock& clock)
    : config_(bounded(std::move(config))),
      verifier_(verifier_config(config_)),
      store_(std::move(store)) {
    if (!store_) return;
    std::lock_guard lock(mutex_);
    for (const auto& revocation : store_->load(clock.unix_ms()))
        hold(revocation);
}

std::optional<JobTokens::Minted> JobTokens::mint(const std::string& owner, const std::string& job,
                                                 std::int64_t ttl_seconds, bool cancel,
                                                 const std::optional<auth::JobGrant>& parent,
                                                 std::int64_t now_ms) const {
    if (owner.empty() || owner.size() > kMaxOwnerBytes) {
        throw std::invalid_argument("an owner of at most 256 bytes");
    }
    Minted out;
    auto& grant = out.grant;
    grant.job = job;
    if (parent) {
        grant.session_id = parent->session_id;
        grant.session_started_ms = parent->session_started_ms;
        grant.token_id = parent->session_id + "." + random_id(8);
        grant.cancel = cancel && parent->cancel;
    } else {
        grant.session_id = grant.token_id = random_id(16);
        grant.session_started_ms = now_ms;
        grant.cancel = cancel;
    }
    const std::int64_t now = now_ms / 1000;
    out.session_expires_at =
        time_bounds::saturating_add(grant.session_started_ms / 1000, config_.max_lifetime_seconds);
    out.expires_at =
        std::min(time_bounds::saturating_add(now, ttl_seconds), out.session_expires_at);
    if (out.expires_at <= now) return std::nullopt;
    auth::MintOptions options;
    options.subject = owner;
    options.issuer = std::string(kIssuer);
    options.issued_at = now;
    options.ttl_seconds = out.expires_at - now;
    options.key_id = std::string(kKeyId);
    options.grant = grant;
    out.token = auth::mint_hs256(config_.key, options);
    return out;
}

auth::JwtResult JobTokens::verify(std::string_view token, std::int64_t now_seconds) const {
    auto result = verifier_.verify(token, now_seconds);
    if (result.claims && !result.claims->grant) {
        // The broker's key signs job tokens only: one without a job is not its own.
        return auth::JwtResult{std::nullopt, auth::JwtFailure::malformed,
                               "a token with the job-token key id has no job claim"};
    }
    return result;
}

std::string JobTokens::index_key(std::string_view kind, std::string_view owner,
                                 std::string_view key) {
    std::string out;
    out.reserve(kind.size() + owner.size() + key.size() + 2);
    out.append(kind).push_back('\n');
    out.append(owner).push_back('\n');
    out.append(key);
    return out;
}

bool JobTokens::covers(const store::TokenRevocation& revocation, const std::string& owner,
                       const auth::JobGrant& grant) const {
    if (revocation.owner != owner) return false;
    if (revocation.kind == "token") return revocation.key == grant.session_id;
    if (revocation.kind == "job" && revocation.key != grant.job) return false;
    return grant.session_started_ms <= revocation.revoked_at;
}

bool JobTokens::revoked(const std::string& owner, const auth::JobGrant& grant) const {
    std::lock_guard lock(mutex_);
    for (const auto& key : {index_key("token", owner, grant.session_id),
                            index_key("job", owner, grant.job), index_key("owner", owner, owner)}) {
        auto it = revocations_.find(key);
        if (it != revocations_.end() && covers(it->second, owner, grant)) return true;
    }
    return false;
}

std::size_t JobTokens::revoke(store::TokenRevocation revocation, std::int64_t now_ms) {
    if (revocation.kind == "token") revocation.key = std::string(session_of(revocation.key));
    revocation.revoked_at = now_ms;
    // Every token it covers started its session by now, so it expires by the
    // ceiling (and the clock skew allowed) from now.
    revocation.until = time_bounds::saturating_add(
        now_ms, (config_.max_lifetime_seconds + config_.leeway_seconds + 1) * 1000);
    std::vector<std::function<void()>> close;
    {
        std::lock_guard lock(mutex_);
        std::erase_if(revocations_, [now_ms](const auto& r) { return r.second.until <= now_ms; });
        hold(revocation);
        take_covered(revocations_.at(index_key(revocation.kind, revocation.owner, revocation.key)),
                     close);
    }
    for (auto& on_revoked : close)
        on_revoked();
    if (store_) store_->add(revocation, now_ms);
    return close.size();
}

std::size_t JobTokens::apply(const std::vector<store::TokenRevocation>& revocations,
                             std::int64_t now_ms) {
    std::vector<std::function<void()>> close;
    {
        std::lock_guard lock(mutex_);
        std::erase_if(revocations_, [now_ms](const auto& r) { return r.second.until <= now_ms; });
        for (const auto& revocation : revocations) {
            if (revocation.until <= now_ms) continue;
            if (const auto* held = hold(revocation)) take_covered(*held, close);
        }
    }
    for (auto& on_revoked : close)
        on_revoked();
    return close.size();
}

const store::TokenRevocation* JobTokens::hold(const store::TokenRevocation& revocation) {
    auto [it, added] = revocations_.try_emplace(
        index_key(revocation.kind, revocation.owner, revocation.key), revocation);
    store::TokenRevocation& held = it->second;
    if (!added) {
        if (revocation.revoked_at <= held.revoked_at && revocation.until <= held.until)
            return nullptr;
        held.revoked_at = std::max(held.revoked_at, revocation.revoked_at);
        held.until = std::max(held.until, revocation.until);
    }
    return &held;
}

void JobTokens::take_covered(const store::TokenRevocation& revocation,
                             std::vector<std::function<void()>>& close) {
    for (auto it = watchers_.begin(); it != watchers_.end();) {
        if (covers(revocation, it->second.owner, it->second.grant)) {
            close.push_back(std::move(it->second.on_revoked));
            it = watchers_.erase(it);
        } else {
            ++it;
        }
    }
}

std::shared_ptr<void> JobTokens::watch(std::string owner, auth::JobGrant grant,
                                       std::function<void()> on_revoked) {
    std::uint64_t id;
    {
        std::lock_guard lock(mutex_);
        id = next_watcher_++;
        watchers_.emplace(id, Watcher{std::move(owner), std::move(grant), std::move(on_revoked)});
    }
    struct Handle {
        std::weak_ptr<JobTokens> tokens;
        std::uint64_t id = 0;
        ~Handle() {
            if (auto self = tokens.lock()) self->unwatch(id);
        }
    };
    auto handle = std::make_shared<Handle>();
    handle->tokens = weak_from_this();
    handle->id = id;
    return handle;
}

void JobTokens::unwatch(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    watchers_.erase(id);
}

}  // namespace jobcast::web
