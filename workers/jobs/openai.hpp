// The `openai` backend of llm.generate: streams a chat completion from any
// OpenAI-compatible endpoint (POST {base}/v1/chat/completions, stream: true)
// and relays each delta as a token event. Boost.Beast lives only in openai.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/http_url.hpp"
#include "workers/jobs/jobs.hpp"

namespace jobcast::worker::jobs {

using BaseUrl = HttpUrl;

// "http(s)://host[:port][/path]"; nullopt for anything else.
inline std::optional<BaseUrl> parse_base_url(std::string_view url) {
    return parse_http_url(url);
}

// The request target: path + "/v1/chat/completions", or path + "/chat/completions"
// when the base already ends in "/v1" (as OPENAI_BASE_URL often does).
std::string chat_completions_target(const BaseUrl& base);

struct ChatRequest {
    std::string prompt;
    std::string model;
    std::int64_t max_tokens = 64;
    // The chat so far as OpenAI messages (a JSON array of {role, content}),
    // sent as they are; empty: the prompt as one user message.
    std::string messages;
};

// The `messages` of llm.generate's params (JSON object text) as JSON array
// text, and the content of the last user message with text content; both
// empty when the params have no messages array.
struct ChatMessages {
    std::string json;
    std::string last_user;
};
ChatMessages chat_messages(std::string_view params_json);

// Streams the completion into `context` as token events and returns the result
// {"text", "tokens"}. Throws Failure: retryable for network errors, 429 and
// 5xx; not retryable for other non-2xx answers and bad URLs.
std::string openai_generate(JobContext& context, const OpenAiOptions& options,
                            const ChatRequest& request);

}  // namespace jobcast::worker::jobs
