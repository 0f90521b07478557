#include "web/log.hpp"

#include "common/logging.hpp"

namespace jobcast::web {

spdlog::logger& log() {
    static const std::shared_ptr<spdlog::logger> instance = module_logger("web");
    return *instance;
}

}  // namespace jobcast::web
