#include "web/http/beast_request.hpp"

#include <utility>

namespace jobcast::web {

HttpRequest to_http_request(boost::beast::http::request<boost::beast::http::string_body>& message) {
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    for (const auto& field : message) {
        std::string name(field.name_string());
        std::string value(field.value());
        auto [it, inserted] = request.headers.try_emplace(std::move(name), value);
        if (!inserted) it->second.append(", ").append(value);  // RFC 9110 5.3
    }
    request.body = std::move(message.body());
    return request;
}

}  // namespace jobcast::web
