#include "web/http/log.hpp"

#include <cctype>

#include "common/logging.hpp"
#include "web/http/query.hpp"
#include "web/security/audit.hpp"

namespace jobcast::web {

spdlog::logger& log() {
    static const std::shared_ptr<spdlog::logger> instance = module_logger("web");
    return *instance;
}

namespace {

bool names_access_token(std::string_view raw_name) {
    auto decoded = percent_decode(raw_name, true);
    std::string name = decoded ? *decoded : std::string(raw_name);
    for (auto& ch : name)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return name == "access_token";
}

}  // namespace

std::string redact_target(std::string_view target) {
    auto start = target.find_first_of("?#");
    if (start == std::string_view::npos) return std::string(target);
    std::string out(target.substr(0, start));
    // Every piece after the path, split where a query or fragment splits it.
    while (start != std::string_view::npos) {
        out.push_back(target[start]);
        auto end = target.find_first_of("?&#;", start + 1);
        std::string_view piece = target.substr(
            start + 1, end == std::string_view::npos ? std::string_view::npos : end - start - 1);
        auto eq = piece.find('=');
        if (eq != std::string_view::npos && names_access_token(piece.substr(0, eq))) {
            out.append(piece.substr(0, eq + 1)).append("REDACTED");
        } else {
            out.append(piece);
        }
        start = end;
    }
    return out;
}

std::string log_target(std::string_view target) {
    return audit_quote(redact_target(target));
}

}  // namespace jobcast::web
