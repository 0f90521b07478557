// Shared by the auth and web unit tests: MintOptions from its six claims in
// order (key id and grant left empty).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "auth/jwt.hpp"

inline jobcast::auth::MintOptions mint_options(std::string subject, std::string tenant,
                                               std::string issuer, std::string audience,
                                               std::int64_t issued_at, std::int64_t ttl_seconds) {
    jobcast::auth::MintOptions out;
    out.subject = std::move(subject);
    out.tenant = std::move(tenant);
    out.issuer = std::move(issuer);
    out.audience = std::move(audience);
    out.issued_at = issued_at;
    out.ttl_seconds = ttl_seconds;
    return out;
}
