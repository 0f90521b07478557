#include "web/http/static_assets.hpp"

#include <string>

namespace jobcast::web {

namespace {

std::string_view content_type(std::string_view path) {
    auto ends = [&](std::string_view suffix) {
        return path.size() >= suffix.size() && path.substr(path.size() - suffix.size()) == suffix;
    };
    // Browsers load ES modules only with a JavaScript type.
    if (ends(".js")) return "text/javascript; charset=utf-8";
    if (ends(".css")) return "text/css; charset=utf-8";
    if (ends(".html")) return "text/html; charset=utf-8";
    if (ends(".ts")) return "text/plain; charset=utf-8";
    if (ends(".md")) return "text/markdown; charset=utf-8";
    if (ends(".svg")) return "image/svg+xml";
    if (ends(".png")) return "image/png";
    if (ends(".ico")) return "image/x-icon";
    return "application/octet-stream";
}

}  // namespace

std::optional<HttpResponse> static_asset(std::string_view method, std::string_view target) {
    if (method != "GET" && method != "HEAD") return std::nullopt;
    std::string_view path = target.substr(0, target.find('?'));
    if (path == "/") path = "/index.html";
    for (const auto& [name, bytes] : embedded_assets()) {
        if (name != path) continue;
        HttpResponse response;
        response.status = 200;
        response.content_type = std::string(content_type(path));
        if (method == "GET") response.body = std::string(bytes);
        response.headers.emplace_back("Cache-Control", "no-cache");
        return response;
    }
    return std::nullopt;
}

}  // namespace jobcast::web
