// The broker's security flags (JWT auth, allowed origins, limits, worker
// CURVE keys) and the secure-by-default checks on them. Kept apart from
// config.cpp so each concern's flags live with it.
#pragma once

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "persistence/token_revocations.hpp"
#include "web/security/security.hpp"

namespace jobcast::broker {

struct BrokerConfig;

// Values that need post-processing after parsing.
struct SecurityFlags {
    std::string jwt_secret_file;
    std::string max_token_lifetime = "30d";
    std::string curve_secret_key_file;
    std::string curve_allow;  // a directory of *.pub files, or a file of keys
};

void add_security_options(boost::program_options::options_description& desc, BrokerConfig& c,
                          SecurityFlags& flags);
// Validates and completes `c`; throws ConfigError. Refuses to serve beyond
// loopback without auth unless --insecure-no-auth.
void finish_security_config(BrokerConfig& c, SecurityFlags& flags);

// The per-job tokens of a broker with auth on: keyed by --job-token-secret,
// else by a key derived from the store's `store_key`; sessions end at
// --max-token-lifetime (a day when that is 0); revocations kept in
// `revocations` (null: in memory only).
std::shared_ptr<web::JobTokens> make_job_tokens(
    const web::SecurityConfig& security, const std::string& store_key,
    std::unique_ptr<store::TokenRevocations> revocations);

// A literal loopback address ("127.x.y.z", "::1", "[::1]") or "localhost";
// never another name, even one that begins with "127.".
bool is_loopback_host(std::string_view host);

// True for ZeroMQ endpoints no other machine can reach: ipc://, inproc://, and
// any other transport (tcp, ws, wss, udp, pgm, ...) bound to a loopback host.
bool zmq_endpoint_is_local(std::string_view endpoint);

}  // namespace jobcast::broker
