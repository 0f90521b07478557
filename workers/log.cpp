#include "workers/log.hpp"

#include "common/logging.hpp"

namespace jobcast::worker {

std::shared_ptr<spdlog::logger> worker_logger() {
    return module_logger("worker");
}

}  // namespace jobcast::worker
