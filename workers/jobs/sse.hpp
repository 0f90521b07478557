// Server-Sent Events parsing for streamed chat completions (pure, no I/O).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace jobcast::worker::jobs {

// Splits a byte stream into SSE events. Lines end with LF, CRLF or CR; "data:"
// lines of one event are joined with '\n'; a blank line ends the event;
// comments and other fields are ignored.
class SseParser {
  public:
    using OnEvent = std::function<void(std::string_view data)>;

    explicit SseParser(std::size_t max_event_bytes = std::size_t{1} << 20)
        : max_event_bytes_(max_event_bytes) {}

    // Throws std::length_error when an event grows past max_event_bytes.
    void feed(std::string_view bytes, const OnEvent& on_event);
    // End of stream: an event not yet ended by a blank line is delivered.
    void finish(const OnEvent& on_event);

  private:
    void line(std::string_view text, const OnEvent& on_event);

    std::size_t max_event_bytes_;
    std::string line_;
    std::string data_;
    bool has_data_ = false;
    bool after_cr_ = false;
};

// One `data:` payload of an OpenAI-style chat completion stream.
struct ChatChunk {
    bool done = false;    // "[DONE]"
    std::string content;  // choices[0].delta.content (may be empty)
    std::string error;    // {"error":{"message":...}} carried in the stream
};

// Throws std::invalid_argument when the payload is neither "[DONE]" nor JSON.
ChatChunk parse_chat_chunk(std::string_view data);

}  // namespace jobcast::worker::jobs
