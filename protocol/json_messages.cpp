#include "protocol/json_messages.hpp"

#include "protocol/json_document.hpp"

namespace jobcast::json {

namespace {

constexpr std::size_t kMaxDepth = 64;

}  // namespace

std::variant<std::vector<std::string>, JsonMessagesError> json_messages(std::string_view body,
                                                                        bool allow_empty) {
    detail::JsonDocument document;
    std::string error;
    if (!document.parse(body, kMaxDepth, &error)) {
        return JsonMessagesError{"invalid JSON: " + error};
    }
    const auto& tokens = document.tokens();
    std::vector<std::string> messages;
    if (tokens.front().kind != detail::TokenKind::array) {
        messages.emplace_back();
        document.write(messages.back(), 0);
        return messages;
    }
    if (tokens.front().count == 0 && !allow_empty) {
        return JsonMessagesError{"an empty JSON array appends nothing"};
    }
    messages.reserve(tokens.front().count);
    for (std::size_t index = 1; index < tokens.front().end; index = tokens[index].end) {
        messages.emplace_back();
        document.write(messages.back(), index);
    }
    return messages;
}

}  // namespace jobcast::json
