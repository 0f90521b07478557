// One Redis reply, owned (RESP2): nil, integer, bulk string, simple status,
// error or array. Produced by RespReader from what a server sent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jobcast::redis {

struct Reply {
    enum class Type { nil, integer, string, status, error, array };

    Type type = Type::nil;
    std::int64_t integer = 0;
    std::string str;              // string, status and error
    std::vector<Reply> elements;  // array

    bool is_nil() const { return type == Type::nil; }
    bool is_error() const { return type == Type::error; }
    bool is_array() const { return type == Type::array; }
    bool is_integer() const { return type == Type::integer; }
    // A bulk string or a status ("OK").
    bool is_text() const { return type == Type::string || type == Type::status; }
    // The leading word of an error ("MOVED", "ERR"); empty for other types.
    std::string_view error_code() const {
        return is_error() ? std::string_view(str).substr(0, str.find(' ')) : std::string_view();
    }

    static Reply nil() { return {}; }
    static Reply of_integer(std::int64_t value) { return {Type::integer, value, {}, {}}; }
    static Reply of_string(std::string value) { return {Type::string, 0, std::move(value), {}}; }
    static Reply of_status(std::string value) { return {Type::status, 0, std::move(value), {}}; }
    static Reply of_error(std::string value) { return {Type::error, 0, std::move(value), {}}; }
    static Reply of_array(std::vector<Reply> value) {
        return {Type::array, 0, {}, std::move(value)};
    }

    friend bool operator==(const Reply&, const Reply&) = default;
};

}  // namespace jobcast::redis
