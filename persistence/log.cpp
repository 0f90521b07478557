#include "persistence/log.hpp"

#include <memory>

namespace jobcast::store {

spdlog::logger& logger() {
    static const std::shared_ptr<spdlog::logger> instance = [] {
        if (auto existing = spdlog::get("store")) return existing;
        auto created = spdlog::default_logger()->clone("store");
        try {
            spdlog::register_logger(created);
        } catch (const spdlog::spdlog_ex&) {
            // Registered by another thread in between: use that one.
            if (auto existing = spdlog::get("store")) return existing;
        }
        return created;
    }();
    return *instance;
}

}  // namespace jobcast::store
