// The broker's configuration: flags, each with a JOBCAST_* environment
// variable and a default, validated at start with a clear message.
#pragma once

#include <optional>

#include "broker/broker_config.hpp"

namespace jobcast::broker {

// Returns nullopt after printing --help. Throws ConfigError on a bad value.
std::optional<BrokerConfig> parse_broker_config(int argc, const char* const argv[]);

}  // namespace jobcast::broker
