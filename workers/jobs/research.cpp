// research: a multi-stage job. Each stage reports progress when it starts and
// ends, logs what it does, and is checkpointed when done (the checkpoint is the
// index of the next stage, in decimal), so a resumed attempt continues after
// the last completed stage instead of starting over.
#include <charconv>

#include "workers/jobs/jobs.hpp"
#include "workers/text.hpp"

namespace jobcast::worker::jobs {
namespace {

const std::vector<std::string> kDefaultStages = {"plan", "gather", "read", "write"};
constexpr std::int64_t kMaxStageMs = 3'600'000;

std::pair<std::string, std::string> stage_lines(const std::string& stage,
                                                const std::string& topic) {
    if (stage == "plan") {
        return {"outlining questions about " + topic, "picked sources to consult"};
    }
    if (stage == "gather") {
        return {"collecting sources on " + topic, "kept the most relevant sources"};
    }
    if (stage == "read") return {"reading the sources on " + topic, "extracted key findings"};
    if (stage == "write") return {"drafting the summary of " + topic, "summary written"};
    return {"working on " + stage + " for " + topic, stage + " complete"};
}

// Index of the next stage from an earlier attempt's checkpoint; 0 when none or unreadable.
std::size_t resume_stage(const std::string& checkpoint, std::size_t stages, bool& unreadable) {
    unreadable = false;
    if (checkpoint.empty()) return 0;
    std::size_t next = 0;
    const auto* end = checkpoint.data() + checkpoint.size();
    const auto [ptr, ec] = std::from_chars(checkpoint.data(), end, next);
    if (ec != std::errc{} || ptr != end || next > stages) {
        unreadable = true;
        return 0;
    }
    return next;
}

JobOutcome research(JobContext& context) {
    const auto topic = context.param_string("topic", "");
    if (topic.empty()) return Failure("param 'topic' is required", false);
    const auto stages = context.param_strings("stages", kDefaultStages);
    if (stages.empty()) return Failure("param 'stages' must not be empty", false);
    for (const auto& stage : stages) {
        if (stage.empty()) return Failure("param 'stages' must not contain empty names", false);
    }
    const auto stage_ms = context.param_int("stage_ms", 300);
    if (stage_ms < 0 || stage_ms > kMaxStageMs) {
        return Failure("param 'stage_ms' must be between 0 and " + std::to_string(kMaxStageMs),
                       false);
    }
    const auto n = stages.size();
    bool unreadable = false;
    const auto start = resume_stage(context.checkpoint(), n, unreadable);
    if (unreadable) context.log("warn", "unreadable checkpoint; starting from the first stage");
    if (start > 0) {
        context.log("info", "resuming at stage " + std::to_string(start + 1) + " of " +
                                std::to_string(n) +
                                (start < n ? " (" + stages[start] + ")" : std::string(" (done)")));
    }

    const auto half = std::chrono::milliseconds{stage_ms} / 2;
    for (std::size_t i = start; i < n; ++i) {
        if (context.cancelled()) return Failure("cancelled", false);
        const auto& stage = stages[i];
        context.progress(
            static_cast<double>(i) / static_cast<double>(n), stage,
            "stage " + std::to_string(i + 1) + " of " + std::to_string(n) + ": " + stage);
        const auto [first, second] = stage_lines(stage, topic);
        context.log("info", first);
        if (context.wait_cancelled_for(half)) return Failure("cancelled", false);
        context.log("info", second);
        if (context.wait_cancelled_for(std::chrono::milliseconds{stage_ms} - half)) {
            return Failure("cancelled", false);
        }
        context.save_checkpoint(std::to_string(i + 1));
        context.progress(static_cast<double>(i + 1) / static_cast<double>(n), stage,
                         "finished " + stage);
    }

    std::string stage_list;
    for (const auto& stage : stages) {
        if (!stage_list.empty()) stage_list += ", ";
        stage_list += stage;
    }
    std::string result = "{\"summary\":";
    append_json_string(result, "Research on \"" + topic + "\" completed " + std::to_string(n) +
                                   " stages: " + stage_list + ".");
    result += ",\"topic\":";
    append_json_string(result, topic);
    result += ",\"stages\":[";
    for (std::size_t i = 0; i < n; ++i) {
        if (i > 0) result += ',';
        append_json_string(result, stages[i]);
    }
    result += "],\"resumed_at_stage\":" + std::to_string(start) + "}";
    return result;
}

}  // namespace

std::string_view research_params_schema() {
    return R"({
  "type": "object",
  "required": ["topic"],
  "properties": {
    "topic": {"type": "string", "minLength": 1},
    "stages": {"type": ["array", "null"], "minItems": 1,
               "items": {"type": "string", "minLength": 1},
               "default": ["plan", "gather", "read", "write"]},
    "stage_ms": {"type": ["integer", "null"], "minimum": 0, "maximum": 3600000, "default": 300}
  }
})";
}

Handler research_handler() {
    return research;
}

}  // namespace jobcast::worker::jobs
