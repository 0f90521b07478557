// The web module's named spdlog logger ("web"). Internal to web/*.cpp.
#pragma once

#include <spdlog/spdlog.h>

namespace jobcast::web {

// The logger registered as "web"; created from the default logger's sinks and
// level on first use unless the binary registered one first.
spdlog::logger& log();

}  // namespace jobcast::web
