// The worker module's named spdlog logger ("worker"). A binary may register its
// own logger under that name first (sinks, level); otherwise a stderr logger is
// created on first use.
#pragma once

#include <memory>

#include <spdlog/logger.h>

namespace jobcast::worker {

std::shared_ptr<spdlog::logger> worker_logger();

}  // namespace jobcast::worker
