// The module's named spdlog logger ("store"). Log lines use key=value fields.
#pragma once

#include <spdlog/spdlog.h>

namespace jobcast::store {

// The "store" logger: the one registered under that name if the application
// made one, else a clone of the default logger (same sinks and level).
spdlog::logger& logger();

}  // namespace jobcast::store
