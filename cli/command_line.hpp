// `jobcast [--url URL] [--token TOKEN] COMMAND [ARGS...]`: the command line
// (and JOBCAST_URL / JOBCAST_TOKEN) as a value. No I/O: the environment is a
// lookup function, help is returned as text.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "cli/url.hpp"

namespace jobcast::cli {

inline constexpr std::string_view kDefaultUrl = "http://127.0.0.1:8080";

// How submit --follow and watch render the stream and how long they keep
// trying to reconnect.
struct StreamOptions {
    bool json = false;   // one JSON line per event
    bool quiet = false;  // no state lines or connection notices on stderr
    std::chrono::milliseconds retry_for{60'000};
};

struct SubmitCommand {
    std::string type;
    std::vector<std::string> params;  // key=value, see params.hpp
    std::optional<int> priority;
    std::optional<int> max_attempts;
    std::string idempotency_key;
    bool follow = false;
    bool json = false;  // without --follow: print the job JSON instead of its id
    StreamOptions stream;
};

struct WatchCommand {
    std::string job;
    std::uint64_t after = 0;
    StreamOptions stream;
};

struct GetCommand {
    std::string job;
};

struct ListCommand {
    std::string state;
    std::string type;
    std::optional<int> limit;
    std::string cursor;
    bool json = false;
};

struct CancelCommand {
    std::string job;
    // How long to keep trying while the broker cannot be reached or answers
    // 429/502/503/504 (a restart): a person who asked to stop means it.
    std::chrono::milliseconds retry_for{60'000};
};

// `jobcast token --sub S --secret X`: mint a development HS256 token (no broker involved).
struct TokenCommand {
    std::string subject;
    std::string secret;  // --secret, --secret-file or JOBCAST_JWT_SECRET
    std::string tenant;
    std::string issuer;
    std::string audience;
    std::chrono::seconds ttl{3600};  // 0: no exp; at most kMaxTokenTtl
};
// The longest --ttl `jobcast token` mints: 3650 days.
inline constexpr std::chrono::seconds kMaxTokenTtl{3650LL * 86'400};

// `jobcast keygen NAME`: write a ZeroMQ CURVE keypair, NAME.key and NAME.pub.
struct KeygenCommand {
    std::string prefix;
};

// --help, `help [COMMAND]` or --version: print `text` on stdout and exit 0.
struct ShowText {
    std::string text;
};

using Command = std::variant<SubmitCommand, WatchCommand, GetCommand, ListCommand, CancelCommand,
                             TokenCommand, KeygenCommand, ShowText>;

struct Invocation {
    ServerUrl url;
    std::string token;
    std::string ca_file;  // --cacert: the CA to trust for https://
    Command command;
};

// Returns the value of an environment variable, or nullopt when unset.
using Environment = std::function<std::optional<std::string>(const std::string& name)>;
Environment process_environment();

// `arguments` without the program name. Throws UsageError with a message that
// names the problem.
Invocation parse_command_line(const std::vector<std::string>& arguments, const Environment& env);

// "60" (seconds), "90s", "500ms", "2m". Throws UsageError.
std::chrono::milliseconds parse_duration(const std::string& text);

// The overview printed by `jobcast --help`.
std::string general_help();

}  // namespace jobcast::cli
