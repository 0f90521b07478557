#include "web/http/query.hpp"

namespace jobcast::web {

namespace {
int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

std::optional<std::string> percent_decode(std::string_view text, bool plus_as_space) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%') {
            if (text.size() - i < 3) return std::nullopt;  // needs '%' and two hex digits
            int hi = hex_value(text[i + 1]);
            int lo = hex_value(text[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_as_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

TargetParts split_target(std::string_view target) {
    if (auto hash = target.find('#'); hash != std::string_view::npos)
        target = target.substr(0, hash);
    auto question = target.find('?');
    if (question == std::string_view::npos) return {target, {}};
    return {target.substr(0, question), target.substr(question + 1)};
}

std::optional<QueryParams> QueryParams::parse(std::string_view query) {
    QueryParams result;
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view piece = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (piece.empty()) continue;
        auto eq = piece.find('=');
        std::string_view raw_name = piece.substr(0, eq);
        std::string_view raw_value =
            eq == std::string_view::npos ? std::string_view{} : piece.substr(eq + 1);
        auto name = percent_decode(raw_name, true);
        auto value = percent_decode(raw_value, true);
        if (!name || !value) return std::nullopt;
        result.params_.emplace_back(std::move(*name), std::move(*value));
    }
    return result;
}

std::optional<std::string_view> QueryParams::get(std::string_view name) const {
    for (const auto& [key, value] : params_) {
        if (key == name) return std::string_view(value);
    }
    return std::nullopt;
}

}  // namespace jobcast::web
