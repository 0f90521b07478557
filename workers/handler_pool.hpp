// The threads that run job handlers. Each assigned attempt is a JobRun: the
// JobSink its handler writes through (every event and checkpoint becomes a
// numbered, encoded message handed to the worker's I/O thread through the
// Outbox) and its cancel flag. The HandlerPool holds the worker's runs by job
// id, starts them in assignment order on `capacity` threads, turns each
// handler's outcome into the attempt's done or fail, delivers the broker's
// cancels and, on stop, closes and cancels every run and lets its threads end.
//
// The pool's registry is the I/O thread's (the caller of find, run, hold,
// cancel, forget, abandon and stop); a pool thread takes runs from the queue
// and is the only writer of its run's output.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>

#include "common/clock.hpp"
#include "protocol/messages.hpp"
#include "workers/job_context.hpp"
#include "workers/outbox.hpp"
#include "workers/reliable_stream.hpp"

namespace jobcast::worker {

// One assigned job attempt.
class JobRun final : public JobSink {
  public:
    // `handler` is null when no handler is registered for the type.
    JobRun(Outbox& outbox, const Clock& clock, std::shared_ptr<AttemptStream> stream, JobSpec spec,
           const Handler* handler);

    void emit(EventKind kind, std::string& data_json) override;
    void save_checkpoint(std::string_view bytes) override;
    // Hands `encoded` to the outbox as message `wseq`. Throws Failure for a
    // frame over the broker's limit, which it could never acknowledge.
    void submit(std::uint64_t wseq, FrameKind kind);

    Outbox& outbox;
    const Clock& clock;
    const std::shared_ptr<AttemptStream> stream;  // numbers the attempt's messages
    const std::string job_id;
    const int attempt;
    const std::string type;
    const bool resumed;
    const Handler* handler;
    JobContext context;

    std::atomic<bool> closed{false};            // takes no more output (set by Outbox::close)
    std::atomic<bool> cancel_requested{false};  // the broker sent cancel

    // The handler's thread only: reused so a token costs one allocation (its frame).
    proto::WorkerMessage chunk_message{std::in_place_type<proto::Chunk>};
    std::string encoded;
};

// Jobs by outcome, for WorkerStats.
struct JobCounters {
    std::atomic<std::uint64_t> running{0};
    std::atomic<std::uint64_t> succeeded{0};
    std::atomic<std::uint64_t> failed{0};  // cancelled jobs included
};

class HandlerPool {
  public:
    // `worker_name` goes into the failure of a job whose type has no handler.
    HandlerPool(std::string worker_name, const Clock& clock);
    HandlerPool(const HandlerPool&) = delete;
    HandlerPool& operator=(const HandlerPool&) = delete;

    void start(int threads);

    // The run held for `job`, or null.
    std::shared_ptr<JobRun> find(const std::string& job) const;
    // Holds `run` and queues it for a thread; returns how many runs wait for one.
    std::size_t run(std::shared_ptr<JobRun> run);
    // Holds `run` without running it (its outcome was made without a handler).
    void hold(std::shared_ptr<JobRun> run);
    // Cancel delivery: the handler sees cancelled() and its attempt ends with
    // fail "cancelled". False when no run is held for `job`.
    bool cancel(const std::string& job);
    // The attempt is settled: forget its run.
    void forget(const std::string& job);
    // The attempt is no longer ours: close and cancel its run, and forget it.
    void abandon(const std::string& job);
    std::size_t held() const noexcept { return runs_.size(); }

    // Graceful stop: every held run is closed (what it emitted is still
    // flushed) and cancelled, queued ones never start, and the threads end
    // once their handlers return; join() waits for them.
    void stop();
    void join();

    const JobCounters& counters() const noexcept { return counters_; }
    JobCounters& counters() noexcept { return counters_; }

  private:
    void thread_loop();
    void execute(JobRun& run);

    const std::string worker_name_;
    const Clock& clock_;
    std::shared_ptr<spdlog::logger> log_;
    JobCounters counters_;
    std::unordered_map<std::string, std::shared_ptr<JobRun>> runs_;

    std::mutex mutex_;  // guards queue_ and stopping_
    std::condition_variable wake_;
    std::deque<std::shared_ptr<JobRun>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace jobcast::worker
