// llm.generate: streams tokens from the deterministic simulator (default) or
// from an OpenAI-compatible endpoint.
#include <charconv>
#include <cmath>

#include "workers/jobs/jobs.hpp"
#include "workers/jobs/llm_sim.hpp"
#include "workers/jobs/openai.hpp"
#include "workers/text.hpp"

namespace jobcast::worker::jobs {
namespace {

constexpr std::int64_t kMaxTokensCap = 100000;
// The sim saves "<tokens emitted>" this often; a resumed attempt skips that many.
constexpr std::int64_t kSimCheckpointEvery = 16;

std::int64_t resume_position(const std::string& checkpoint, std::int64_t max_tokens) {
    std::int64_t position = 0;
    const auto* end = checkpoint.data() + checkpoint.size();
    const auto [ptr, ec] = std::from_chars(checkpoint.data(), end, position);
    if (ec != std::errc{} || ptr != end || position < 0) return 0;
    return std::min(position, max_tokens);
}

JobOutcome run_sim(JobContext& context, const std::string& prompt, std::int64_t max_tokens,
                   double tokens_per_second) {
    const auto seed = context.param_int("seed", 0);
    const auto start = resume_position(context.checkpoint(), max_tokens);
    if (start > 0) {
        context.log("info", "resuming at token " + std::to_string(start) + " of " +
                                std::to_string(max_tokens));
    }
    SimTokenStream stream(prompt, seed);
    std::string token;
    std::string text;
    text.reserve(static_cast<std::size_t>(max_tokens) * 7);

    using Clock = std::chrono::steady_clock;
    const auto began = Clock::now();
    const std::chrono::duration<double> interval(tokens_per_second > 0 ? 1.0 / tokens_per_second
                                                                       : 0.0);
    for (std::int64_t i = 0; i < max_tokens; ++i) {
        stream.next(token);
        text += token;
        if (i < start) continue;  // emitted by an earlier attempt
        if (tokens_per_second > 0) {
            // An absolute schedule, so the rate does not drift with emit time.
            const auto due = began + std::chrono::duration_cast<Clock::duration>(
                                         interval * static_cast<double>(i - start));
            if (context.wait_cancelled_until(due)) return Failure("cancelled", false);
        } else if (context.cancelled()) {
            return Failure("cancelled", false);
        }
        context.token(token);
        const auto emitted = i + 1;
        if (emitted % kSimCheckpointEvery == 0 && emitted < max_tokens) {
            context.save_checkpoint(std::to_string(emitted));
        }
    }
    std::string result = "{\"text\":";
    append_json_string(result, text);
    result += ",\"tokens\":" + std::to_string(max_tokens) + "}";
    return result;
}

JobOutcome generate(JobContext& context, const LlmOptions& options) {
    // A chat (the AI SDK's transport) brings its messages; the prompt is then
    // the last user message unless given too.
    ChatMessages chat = chat_messages(context.params_json());
    auto prompt = context.param_string("prompt", "");
    if (prompt.empty()) prompt = chat.last_user;
    const auto max_tokens = context.param_int("max_tokens", 64);
    if (max_tokens < 0 || max_tokens > kMaxTokensCap) {
        return Failure("param 'max_tokens' must be between 0 and " + std::to_string(kMaxTokensCap),
                       false);
    }
    const auto tokens_per_second = context.param_double("tokens_per_second", 20.0);
    if (!std::isfinite(tokens_per_second) || tokens_per_second < 0) {
        return Failure("param 'tokens_per_second' must be a number >= 0 (0 = unlimited)", false);
    }
    const auto backend = context.param_string("backend", "sim");
    if (backend == "sim") return run_sim(context, prompt, max_tokens, tokens_per_second);
    if (backend == "openai") {
        if (context.attempt() > 1) {
            context.log("info",
                        "the openai backend cannot resume; generating again from the start");
        }
        ChatRequest request{prompt, context.param_string("model", options.openai.model), max_tokens,
                            std::move(chat.json)};
        return openai_generate(context, options.openai, request);
    }
    return Failure("param 'backend' must be \"sim\" or \"openai\"", false);
}

}  // namespace

std::string_view llm_params_schema() {
    return R"({
  "type": "object",
  "properties": {
    "prompt": {"type": ["string", "null"], "description": "what to generate from"},
    "messages": {"type": ["array", "null"], "maxItems": 1000,
                 "description": "the chat as OpenAI messages; prompt: the last user's",
                 "items": {"type": "object", "required": ["role", "content"], "properties": {
                   "role": {"type": "string"}, "content": {"type": ["string", "array"]}}}},
    "max_tokens": {"type": ["integer", "null"], "minimum": 0, "maximum": 100000, "default": 64},
    "tokens_per_second": {"type": ["number", "null"], "minimum": 0, "default": 20,
                          "description": "0: as fast as possible"},
    "seed": {"type": ["integer", "null"], "default": 0},
    "backend": {"enum": ["sim", "openai", null], "default": "sim"},
    "model": {"type": ["string", "null"], "description": "the openai backend's model"}
  }
})";
}

Handler llm_handler(LlmOptions options) {
    return
        [options = std::move(options)](JobContext& context) { return generate(context, options); };
}

}  // namespace jobcast::worker::jobs
