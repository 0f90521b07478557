// The web module's named spdlog logger ("web"), and how request values go
// into its lines. Internal to web/*.cpp.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace jobcast::web {

// The logger registered as "web"; created from the default logger's sinks and
// level on first use unless the binary registered one first.
spdlog::logger& log();

// A request target with the value of every access_token parameter (the
// bearer token of browser WebSocket and EventSource requests) replaced by
// REDACTED, wherever it appears after the path: "?access_token=eyJ…&a=1" ->
// "?access_token=REDACTED&a=1". Parameter names are compared decoded and
// without case, so an escaped or upper-case name is redacted too.
std::string redact_target(std::string_view target);

// The value of a target= field: redacted, then quoted and escaped
// (audit_quote), so a '"', a space or a control character in it cannot end
// the field or the line.
std::string log_target(std::string_view target);

}  // namespace jobcast::web
