// The audit log: security events (connections opened and closed, auth
// failures, limits hit, cancels) as key=value lines on their own spdlog
// logger, "audit", so they can be shipped and searched apart from the rest.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace jobcast::web {

spdlog::logger& audit_log();

// A value for a key=value line: jobcast::log_quote (common/log_quote.hpp), so
// an owner or reason with spaces, quotes or newlines cannot forge another field
// or line.
std::string audit_quote(std::string_view value);

}  // namespace jobcast::web
