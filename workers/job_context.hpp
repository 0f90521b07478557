// What a job handler sees: its parameters, its last checkpoint, and the calls
// that stream events (token, progress, log), save checkpoints and notice
// cancellation. A JobContext writes into a JobSink: inside a Worker that is the
// job's wire buffer; in a test it can be anything (see workers/testing.hpp), so
// handlers run without a socket.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/model.hpp"

namespace jobcast::worker {

// A job attempt that failed. Thrown from a handler (or returned in a
// JobOutcome) it becomes a `fail` message with this message and retryable flag;
// any other exception becomes a retryable failure with its what().
class Failure : public std::runtime_error {
  public:
    explicit Failure(const std::string& message, bool retryable = false)
        : std::runtime_error(message), retryable_(retryable) {}
    bool retryable() const noexcept { return retryable_; }

  private:
    bool retryable_;
};

// A handler's answer: the result as JSON object text (success) or a Failure.
using JobOutcome = std::variant<std::string, Failure>;

// One assignment: what the broker sent.
struct JobSpec {
    std::string job_id;
    int attempt = 1;
    std::string type;
    std::string params = "{}";  // JSON object text
    std::string checkpoint;     // opaque bytes of the last save_checkpoint; empty when none
};

// Where a job's output goes. Called from the handler's thread only.
class JobSink {
  public:
    virtual ~JobSink() = default;
    // One event (progress | token | log). `data_json` is a valid JSON object
    // text; the sink may take its contents (swap or move from it). May block
    // while too much output is unacknowledged (backpressure).
    virtual void emit(EventKind kind, std::string& data_json) = 0;
    virtual void save_checkpoint(std::string_view bytes) = 0;
};

class JobContext {
  public:
    JobContext(JobSpec spec, JobSink& sink);
    ~JobContext();
    JobContext(const JobContext&) = delete;
    JobContext& operator=(const JobContext&) = delete;

    const std::string& job_id() const noexcept { return spec_.job_id; }
    int attempt() const noexcept { return spec_.attempt; }
    const std::string& type() const noexcept { return spec_.type; }
    // The job's params as JSON object text.
    const std::string& params() const noexcept { return spec_.params; }
    const std::string& params_json() const noexcept { return spec_.params; }
    // The last checkpoint saved by an earlier attempt; empty on a first run.
    const std::string& checkpoint() const noexcept { return spec_.checkpoint; }

    // Typed access to top-level params. A missing key (or null) gives the
    // fallback; a value of the wrong type throws Failure (not retryable) naming
    // the key, since retrying the same params cannot succeed.
    bool has_param(std::string_view key) const;
    std::string param_string(std::string_view key, std::string_view fallback = {}) const;
    std::int64_t param_int(std::string_view key, std::int64_t fallback) const;
    double param_double(std::string_view key, double fallback) const;
    bool param_bool(std::string_view key, bool fallback) const;
    std::vector<std::string> param_strings(std::string_view key,
                                           std::vector<std::string> fallback = {}) const;

    // token {text}
    void token(std::string_view text);
    // progress {fraction (clamped to 0..1), stage?, message?}
    void progress(double fraction, std::string_view stage = {}, std::string_view message = {});
    // log {level, message}
    void log(std::string_view level, std::string_view message);
    // Any chunk event with a caller-built JSON object; throws std::invalid_argument
    // when the kind is not progress/token/log or the text is not a JSON object.
    void emit(EventKind kind, std::string_view data_json);
    // Stored by the broker; the next attempt of this job starts with it.
    void save_checkpoint(std::string_view bytes);

    // True once the job was cancelled or is no longer this worker's (lease lost,
    // worker stopping). The handler should return soon; what it emits after that
    // may be dropped.
    bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }
    // Sleeps for `timeout` or until cancelled; returns cancelled().
    bool wait_cancelled_for(std::chrono::nanoseconds timeout);
    bool wait_cancelled_until(std::chrono::steady_clock::time_point deadline);
    // Marks the job cancelled and wakes wait_cancelled_*. Called by the Worker
    // (and tests); thread-safe.
    void request_cancel();

  private:
    struct Params;
    JobSpec spec_;
    JobSink& sink_;
    std::unique_ptr<const Params> parsed_;  // params parsed once (Boost.JSON stays in the .cpp)
    std::string scratch_;                   // reused payload buffer: no allocation per token
    std::atomic<bool> cancelled_{false};
    std::mutex cancel_mutex_;
    std::condition_variable cancel_cv_;
};

using Handler = std::function<JobOutcome(JobContext&)>;

// Runs `handler`, turning exceptions into failures: Failure keeps its retryable
// flag, any other exception is retryable with its message.
JobOutcome invoke_handler(const Handler& handler, JobContext& context) noexcept;

}  // namespace jobcast::worker
