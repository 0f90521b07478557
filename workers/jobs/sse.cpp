#include "workers/jobs/sse.hpp"

#include <boost/json.hpp>
#include <stdexcept>

namespace jobcast::worker::jobs {

void SseParser::feed(std::string_view bytes, const OnEvent& on_event) {
    for (const char c : bytes) {
        if (after_cr_) {
            after_cr_ = false;
            if (c == '\n') continue;  // the LF of a CRLF
        }
        if (c == '\r' || c == '\n') {
            after_cr_ = c == '\r';
            line(line_, on_event);
            line_.clear();
            continue;
        }
        if (line_.size() + data_.size() >= max_event_bytes_) {
            throw std::length_error("server-sent event larger than the limit");
        }
        line_ += c;
    }
}

void SseParser::finish(const OnEvent& on_event) {
    if (!line_.empty()) {
        line(line_, on_event);
        line_.clear();
    }
    if (has_data_) on_event(data_);
    data_.clear();
    has_data_ = false;
}

void SseParser::line(std::string_view text, const OnEvent& on_event) {
    if (text.empty()) {
        if (has_data_) on_event(data_);
        data_.clear();
        has_data_ = false;
        return;
    }
    if (text.front() == ':') return;  // comment / keep-alive
    const auto colon = text.find(':');
    const auto field = text.substr(0, colon);
    if (field != "data") return;  // event:, id:, retry: do not matter here
    auto value = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (has_data_) data_ += '\n';
    data_ += value;
    has_data_ = true;
}

ChatChunk parse_chat_chunk(std::string_view data) {
    ChatChunk chunk;
    if (data == "[DONE]") {
        chunk.done = true;
        return chunk;
    }
    boost::system::error_code ec;
    const auto value = boost::json::parse(data, ec);
    if (ec || !value.is_object()) {
        throw std::invalid_argument("stream chunk is not a JSON object");
    }
    const auto& object = value.get_object();
    if (const auto* error = object.if_contains("error"); error != nullptr && !error->is_null()) {
        if (const auto* o = error->if_object()) {
            if (const auto* message = o->if_contains("message"); message && message->is_string()) {
                chunk.error = message->get_string();
            }
        }
        if (chunk.error.empty()) chunk.error = boost::json::serialize(*error);
        return chunk;
    }
    const auto* choices = object.if_contains("choices");
    if (choices == nullptr || !choices->is_array() || choices->get_array().empty()) return chunk;
    const auto* first = choices->get_array()[0].if_object();
    if (first == nullptr) return chunk;
    const auto* delta = first->if_contains("delta");
    if (delta == nullptr || !delta->is_object()) return chunk;
    const auto* content = delta->get_object().if_contains("content");
    if (content != nullptr && content->is_string()) chunk.content = content->get_string();
    return chunk;
}

}  // namespace jobcast::worker::jobs
