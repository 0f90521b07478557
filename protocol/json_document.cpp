#include "protocol/json_document.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <charconv>
#include <cmath>
#include <limits>

#include "protocol/json_writer.hpp"

namespace jobcast::json::detail {

namespace {
using boost::json::error_code;
using boost::json::string_view;

constexpr std::size_t kMaxIndex = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint32_t kNoString = std::numeric_limits<std::uint32_t>::max();
}  // namespace

// The SAX handler behind JsonDocument::parse: appends one token per event.
struct JsonDocumentBuilder {
    static constexpr std::size_t max_array_size = kMaxIndex;
    static constexpr std::size_t max_object_size = kMaxIndex;
    static constexpr std::size_t max_string_size = kMaxIndex;
    static constexpr std::size_t max_key_size = kMaxIndex;

    JsonDocument* doc;
    std::uint32_t string_start = kNoString;  // set while a string arrives in parts
    bool number_out_of_range = false;

    explicit JsonDocumentBuilder(JsonDocument* d) : doc(d) {}

    Token& push(TokenKind kind) {
        Token& token = doc->tokens_.emplace_back();
        token.kind = kind;
        token.end = static_cast<std::uint32_t>(doc->tokens_.size());
        return token;
    }
    bool open(TokenKind kind) {
        doc->open_.push_back(static_cast<std::uint32_t>(doc->tokens_.size()));
        push(kind);
        return true;
    }
    bool close(std::size_t n) {
        Token& token = doc->tokens_[doc->open_.back()];
        doc->open_.pop_back();
        token.count = static_cast<std::uint32_t>(n);
        token.end = static_cast<std::uint32_t>(doc->tokens_.size());
        return true;
    }
    void part(string_view s) {
        if (string_start == kNoString)
            string_start = static_cast<std::uint32_t>(doc->arena_.size());
        doc->arena_.append(s.data(), s.size());
    }
    bool finish_string(TokenKind kind, string_view s) {
        part(s);
        Token& token = push(kind);
        token.offset = string_start;
        token.length = static_cast<std::uint32_t>(doc->arena_.size() - string_start);
        string_start = kNoString;
        return true;
    }

    bool on_document_begin(error_code&) { return true; }
    bool on_document_end(error_code&) { return true; }
    bool on_array_begin(error_code&) { return open(TokenKind::array); }
    bool on_array_end(std::size_t n, error_code&) { return close(n); }
    bool on_object_begin(error_code&) { return open(TokenKind::object); }
    bool on_object_end(std::size_t n, error_code&) { return close(n); }
    bool on_string_part(string_view s, std::size_t, error_code&) {
        part(s);
        return true;
    }
    bool on_string(string_view s, std::size_t, error_code&) {
        return finish_string(TokenKind::string, s);
    }
    bool on_key_part(string_view s, std::size_t, error_code&) {
        part(s);
        return true;
    }
    bool on_key(string_view s, std::size_t, error_code&) {
        return finish_string(TokenKind::key, s);
    }
    bool on_number_part(string_view s, error_code&) {
        doc->number_text_.append(s.data(), s.size());
        return true;
    }
    bool on_int64(std::int64_t i, string_view, error_code&) {
        doc->number_text_.clear();
        push(TokenKind::int64).int64 = i;
        return true;
    }
    bool on_uint64(std::uint64_t u, string_view, error_code&) {
        doc->number_text_.clear();
        push(TokenKind::uint64).uint64 = u;
        return true;
    }
    bool on_double(double, string_view s, error_code& ec) {
        // Boost.JSON 1.81 computes this double with a fast algorithm that is off
        // by one unit in the last place for some inputs; std::from_chars rounds
        // correctly, so a number written by append_double reads back exactly.
        std::string& text = doc->number_text_;
        text.append(s.data(), s.size());
        double value = 0;
        auto result = std::from_chars(text.data(), text.data() + text.size(), value);
        text.clear();
        if (result.ec != std::errc() || !std::isfinite(value)) {
            number_out_of_range = true;
            ec = boost::json::error::exponent_overflow;
            return false;
        }
        push(TokenKind::number).number = value;
        return true;
    }
    bool on_bool(bool b, error_code&) {
        push(TokenKind::boolean).boolean = b;
        return true;
    }
    bool on_null(error_code&) {
        push(TokenKind::null);
        return true;
    }
    bool on_comment_part(string_view, error_code&) { return true; }
    bool on_comment(string_view, error_code&) { return true; }
};

bool JsonDocument::parse(std::string_view text, std::size_t max_depth, std::string* error) {
    tokens_.clear();
    arena_.clear();
    open_.clear();
    number_text_.clear();
    auto fail = [&](std::string_view why) {
        if (error) error->assign(why);
        tokens_.clear();
        return false;
    };
    if (text.size() >= kMaxIndex) return fail("document too large");

    boost::json::parse_options options;
    options.max_depth = max_depth;
    boost::json::basic_parser<JsonDocumentBuilder> parser(options, this);
    error_code ec;
    const std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
    if (ec) {
        if (parser.handler().number_out_of_range) return fail("number out of range");
        return fail(ec.message());
    }
    if (used != text.size()) return fail("unexpected data after the JSON value");
    return true;
}

void JsonDocument::write(std::string& out, std::size_t index) const {
    const Token& token = tokens_[index];
    switch (token.kind) {
        case TokenKind::object:
        case TokenKind::array: {
            const bool object = token.kind == TokenKind::object;
            out.push_back(object ? '{' : '[');
            std::size_t child = index + 1;
            for (std::uint32_t i = 0; i < token.count; ++i) {
                if (i != 0) out.push_back(',');
                if (object) {
                    append_quoted(out, string(tokens_[child]));
                    out.push_back(':');
                    ++child;
                }
                write(out, child);
                child = tokens_[child].end;
            }
            out.push_back(object ? '}' : ']');
            return;
        }
        case TokenKind::key:
        case TokenKind::string:
            append_quoted(out, string(token));
            return;
        case TokenKind::int64:
            append_int(out, token.int64);
            return;
        case TokenKind::uint64:
            append_uint(out, token.uint64);
            return;
        case TokenKind::number:
            append_double(out, token.number);
            return;
        case TokenKind::boolean:
            out += token.boolean ? "true" : "false";
            return;
        case TokenKind::null:
            out += "null";
            return;
    }
}

void JsonDocument::trim() {
    constexpr std::size_t kKeepTokens = 4096;
    constexpr std::size_t kKeepBytes = 64 * 1024;
    if (tokens_.capacity() > kKeepTokens) std::vector<Token>().swap(tokens_);
    if (arena_.capacity() > kKeepBytes) std::string().swap(arena_);
}

}  // namespace jobcast::json::detail
