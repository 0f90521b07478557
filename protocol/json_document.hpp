// A parsed JSON value as a flat list of tokens, for code that must read JSON text
// exactly: numbers keep the value their text denotes (Boost.JSON 1.81's DOM
// rounds some doubles to a neighbour, which would corrupt a round trip), keys
// keep their order and duplicates, and nothing is allocated per node. Internal
// to protocol/; Boost.JSON stays in json_document.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jobcast::json::detail {

enum class TokenKind : std::uint8_t {
    object,
    array,
    key,
    string,
    int64,
    uint64,
    number,
    boolean,
    null
};

// Tokens are in document order. An object with n members is followed by 2n
// items, alternately a key token and the subtree of its value; `end` lets a
// reader skip a whole subtree.
struct Token {
    TokenKind kind = TokenKind::null;
    bool boolean = false;
    std::uint32_t count = 0;   // object: members; array: elements
    std::uint32_t end = 0;     // index one past this token's subtree
    std::uint32_t offset = 0;  // key, string: start in the string arena
    std::uint32_t length = 0;  // key, string: size in bytes (valid UTF-8, unescaped)
    union {
        std::int64_t int64 = 0;
        std::uint64_t uint64;
        double number;
    };
};

class JsonDocument {
  public:
    // Parses one JSON value (whitespace around it allowed, nothing else). Returns
    // false, with the reason in `error` when given, on a syntax error, invalid
    // UTF-8, nesting deeper than `max_depth`, or a number out of double range.
    bool parse(std::string_view text, std::size_t max_depth, std::string* error = nullptr);

    const std::vector<Token>& tokens() const { return tokens_; }
    std::string_view string(const Token& token) const {
        return std::string_view(arena_).substr(token.offset, token.length);
    }

    // Appends the value at `index` as compact JSON: no spaces, numbers in their
    // shortest exact form, strings escaped by json::append_quoted.
    void write(std::string& out, std::size_t index = 0) const;

    // Releases buffers grown by one unusually large document, so a long-lived
    // (thread_local) document does not hold them forever.
    void trim();

  private:
    friend struct JsonDocumentBuilder;
    std::vector<Token> tokens_;
    std::string arena_;                // key and string bytes, unescaped
    std::vector<std::uint32_t> open_;  // indices of the containers being parsed
    std::string number_text_;          // a number's text when it arrives in parts
};

}  // namespace jobcast::json::detail
