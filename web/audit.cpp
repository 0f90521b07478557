#include "web/audit.hpp"

#include "common/logging.hpp"

namespace jobcast::web {

spdlog::logger& audit_log() {
    static const std::shared_ptr<spdlog::logger> instance = module_logger("audit");
    return *instance;
}

std::string audit_quote(std::string_view value) {
    std::string out = "\"";
    for (char ch : value) {
        if (ch == '"' || ch == '\\') out.push_back('\\');
        if (static_cast<unsigned char>(ch) < 0x20) {
            out += "\\x";
            out.push_back("0123456789abcdef"[(ch >> 4) & 15]);
            out.push_back("0123456789abcdef"[ch & 15]);
            continue;
        }
        out.push_back(ch);
    }
    out.push_back('"');
    return out;
}

}  // namespace jobcast::web
