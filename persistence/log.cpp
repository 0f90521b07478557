#include "persistence/log.hpp"

#include "common/logging.hpp"

namespace jobcast::store {

spdlog::logger& logger() {
    static const std::shared_ptr<spdlog::logger> instance = module_logger("store");
    return *instance;
}

}  // namespace jobcast::store
