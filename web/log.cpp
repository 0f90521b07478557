#include "web/log.hpp"

namespace jobcast::web {

spdlog::logger& log() {
    static const std::shared_ptr<spdlog::logger> logger = [] {
        if (auto existing = spdlog::get("web")) return existing;
        auto created = spdlog::default_logger()->clone("web");
        try {
            spdlog::register_logger(created);
        } catch (const spdlog::spdlog_ex&) {
            // Registered concurrently by someone else: use theirs.
            if (auto existing = spdlog::get("web")) return existing;
        }
        return created;
    }();
    return *logger;
}

}  // namespace jobcast::web
