#include "web/security/audit.hpp"

#include "common/log_quote.hpp"
#include "common/logging.hpp"

namespace jobcast::web {

spdlog::logger& audit_log() {
    static const std::shared_ptr<spdlog::logger> instance = module_logger("audit");
    return *instance;
}

std::string audit_quote(std::string_view value) {
    return log_quote(value);
}

}  // namespace jobcast::web
