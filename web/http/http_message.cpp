#include "web/http/http_message.hpp"

#include <algorithm>

namespace jobcast::web {

namespace {
char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
}  // namespace

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                        [](char x, char y) { return lower(x) < lower(y); });
}

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
    auto it = headers.find(name);
    if (it == headers.end()) return std::nullopt;
    return std::string_view(it->second);
}

Authenticator anonymous_authenticator() {
    return [](HttpRequest& request) -> std::optional<HttpResponse> {
        request.owner = std::string(kAnonymousOwner);
        return std::nullopt;
    };
}

}  // namespace jobcast::web
