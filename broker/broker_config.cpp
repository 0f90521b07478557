#include "broker/broker_config.hpp"

#include <string>

#include "common/time_bounds.hpp"

namespace jobcast::broker {

std::chrono::milliseconds parse_duration(const std::string& text, const char* what) {
    // "500ms", "30s", "15m", "24h", "7d", or a bare number of seconds.
    std::size_t pos = 0;
    double value = 0;
    try {
        value = std::stod(text, &pos);
    } catch (const std::exception&) {
        throw ConfigError(std::string("--") + what + ": not a duration: '" + text + "'");
    }
    std::string unit = text.substr(pos);
    double ms = 0;
    if (unit.empty() || unit == "s")
        ms = value * 1000;
    else if (unit == "ms")
        ms = value;
    else if (unit == "m")
        ms = value * 60'000;
    else if (unit == "h")
        ms = value * 3'600'000;
    else if (unit == "d")
        ms = value * 86'400'000;
    else
        throw ConfigError(std::string("--") + what + ": unknown unit in '" + text + "'");
    if (ms < 0) throw ConfigError(std::string("--") + what + ": must not be negative");
    // Also refuses NaN and infinities, which have no integer value.
    if (!(ms <= static_cast<double>(time_bounds::kMaxUnixSeconds) * 1000)) {
        throw ConfigError(std::string("--") + what + ": too long: '" + text + "'");
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

}  // namespace jobcast::broker
