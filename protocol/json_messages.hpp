// JSON mode of a Durable Stream: the body of an append as the messages it
// holds. A JSON array appends each of its elements (one level: an element
// that is itself an array is one message); any other value is one message.
// Each message is kept as compact JSON text, numbers exact.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace jobcast::json {

struct JsonMessagesError {
    std::string message;
};

// `allow_empty`: an empty array is no messages (a stream created empty);
// otherwise it is refused (an append of nothing is a client bug).
std::variant<std::vector<std::string>, JsonMessagesError> json_messages(std::string_view body,
                                                                        bool allow_empty);

}  // namespace jobcast::json
