// The shipped job types. Each is a plain Handler (see workers/job_context.hpp),
// so it runs inside a Worker or, in tests, against any JobSink.
//
//   llm.generate {prompt, max_tokens=64 (0..100000), tokens_per_second=20 (0 = as
//                 fast as possible), seed=0, backend="sim"|"openai", model?}
//                 -> token events; result {text, tokens}
//   research     {topic, stages=["plan","gather","read","write"], stage_ms=300}
//                 -> progress + log events, a checkpoint per stage; result {summary, ...}
//   exec         {command, args=[]} -> a log event per output line; result {exit_code}
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "workers/job_context.hpp"

namespace jobcast::worker::jobs {

inline constexpr std::string_view kLlmGenerate = "llm.generate";
inline constexpr std::string_view kResearch = "research";
inline constexpr std::string_view kExec = "exec";

struct OpenAiOptions {
    std::string base_url = "https://api.openai.com";  // "/v1" is appended unless present
    std::string model = "gpt-4o-mini";                // params.model overrides
    std::string api_key;                              // no Authorization header when empty
    std::chrono::seconds connect_timeout{30};
    std::chrono::seconds read_timeout{120};  // silence allowed between two stream reads
};

struct LlmOptions {
    OpenAiOptions openai;
};

struct ExecOptions {
    // Commands a job may run: exact names ("echo", resolved through PATH) or
    // absolute paths ("/usr/bin/env"). Empty: exec refuses everything.
    std::vector<std::string> allow;
    // After cancel: SIGTERM to the process group, SIGKILL after this long.
    std::chrono::milliseconds kill_grace{2000};
};

Handler llm_handler(LlmOptions options = {});
Handler research_handler();
Handler exec_handler(ExecOptions options);

// Each type's params as a JSON Schema (draft 7), announced with its handler:
// what the handler reads (a missing or null optional param takes its default),
// so the broker refuses at submit what would fail the first attempt.
std::string_view llm_params_schema();
std::string_view research_params_schema();
std::string_view exec_params_schema();

// True when `command` may run under `allow`: an exact match of a bare name, or
// of an absolute path. Relative paths ("./x", "bin/x") are never allowed.
bool exec_allowed(const std::vector<std::string>& allow, std::string_view command);

}  // namespace jobcast::worker::jobs
