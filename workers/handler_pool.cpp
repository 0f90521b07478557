#include "workers/handler_pool.hpp"

#include <spdlog/spdlog.h>

#include "common/log_quote.hpp"
#include "common/thread_name.hpp"
#include "protocol/codec.hpp"
#include "protocol/json.hpp"
#include "protocol/limits.hpp"
#include "workers/log.hpp"
#include "workers/text.hpp"

namespace jobcast::worker {

// ---------------------------------------------------------------- JobRun

JobRun::JobRun(Outbox& outbox, const Clock& clock, std::shared_ptr<AttemptStream> stream,
               JobSpec spec, const Handler* handler)
    : outbox(outbox),
      clock(clock),
      stream(std::move(stream)),
      job_id(spec.job_id),
      attempt(spec.attempt),
      type(spec.type),
      resumed(!spec.checkpoint.empty()),
      handler(handler),
      context(std::move(spec), *this) {
    auto& chunk = std::get<proto::Chunk>(chunk_message);
    chunk.job = job_id;
    chunk.attempt = attempt;
}

void JobRun::emit(EventKind kind, std::string& data_json) {
    if (closed.load(std::memory_order_acquire)) return;
    auto& chunk = std::get<proto::Chunk>(chunk_message);
    const auto wseq = stream->next_wseq();
    chunk.wseq = wseq;
    chunk.kind = kind;
    chunk.ts = clock.unix_us();
    chunk.data.swap(data_json);  // borrow the caller's buffer: no copy, and both keep capacity
    try {
        proto::encode(chunk_message, encoded);
    } catch (...) {
        chunk.data.swap(data_json);
        throw;
    }
    chunk.data.swap(data_json);
    submit(wseq, FrameKind::chunk);
}

void JobRun::save_checkpoint(std::string_view bytes) {
    if (closed.load(std::memory_order_acquire)) return;
    const auto wseq = stream->next_wseq();
    proto::Checkpoint checkpoint;
    checkpoint.job = job_id;
    checkpoint.attempt = attempt;
    checkpoint.wseq = wseq;
    checkpoint.bytes.assign(bytes);
    proto::encode(proto::WorkerMessage{std::move(checkpoint)}, encoded);
    submit(wseq, FrameKind::message);
}

void JobRun::submit(std::uint64_t wseq, FrameKind kind) {
    if (encoded.size() > proto::kMaxFrameBytes) {
        // The broker drops frames over its decode limit, so a bigger one could
        // never be acknowledged; refuse it at the source instead.
        throw Failure("message of " + std::to_string(encoded.size()) +
                          " bytes exceeds the broker's frame limit",
                      false);
    }
    stream->numbered(wseq);
    outbox.submit(stream, wseq, encoded, kind, closed);
}

// ---------------------------------------------------------------- HandlerPool

HandlerPool::HandlerPool(std::string worker_name, const Clock& clock)
    : worker_name_(std::move(worker_name)), clock_(clock), log_(worker_logger()) {}

void HandlerPool::start(int threads) {
    threads_.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i)
        threads_.emplace_back([this] {
            name_this_thread("jc-handler");
            thread_loop();
        });
}

std::shared_ptr<JobRun> HandlerPool::find(const std::string& job) const {
    const auto it = runs_.find(job);
    return it == runs_.end() ? nullptr : it->second;
}

std::size_t HandlerPool::run(std::shared_ptr<JobRun> run) {
    runs_.insert_or_assign(run->job_id, run);
    std::size_t waiting = 0;
    {
        std::lock_guard lock(mutex_);
        queue_.push_back(std::move(run));
        waiting = queue_.size();
    }
    wake_.notify_one();
    return waiting;
}

void HandlerPool::hold(std::shared_ptr<JobRun> run) {
    const auto job = run->job_id;
    runs_.insert_or_assign(job, std::move(run));
}

bool HandlerPool::cancel(const std::string& job) {
    const auto it = runs_.find(job);
    if (it == runs_.end()) return false;
    log_->info("cancel requested job={} attempt={}", job, it->second->attempt);
    it->second->cancel_requested.store(true);
    it->second->context.request_cancel();
    return true;
}

void HandlerPool::forget(const std::string& job) {
    runs_.erase(job);
}

void HandlerPool::abandon(const std::string& job) {
    const auto it = runs_.find(job);
    if (it == runs_.end()) return;
    auto& run = *it->second;
    run.outbox.close(run.closed);
    run.context.request_cancel();
    runs_.erase(it);
}

void HandlerPool::stop() {
    // Running jobs are left to the broker (lease expiry re-queues them from
    // their last checkpoint); what they already emitted is still flushed.
    for (auto& [job, run] : runs_)
        run->outbox.close(run->closed);
    for (auto& [job, run] : runs_)
        run->context.request_cancel();
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        queue_.clear();
    }
    wake_.notify_all();
}

void HandlerPool::join() {
    for (auto& thread : threads_)
        thread.join();
    threads_.clear();
}

void HandlerPool::thread_loop() {
    while (true) {
        std::shared_ptr<JobRun> run;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            run = std::move(queue_.front());
            queue_.pop_front();
        }
        execute(*run);
    }
}

void HandlerPool::execute(JobRun& run) {
    if (run.closed.load()) return;
    log_->info("job started job={} attempt={} type={} resume={}", run.job_id, run.attempt,
               log_quote(run.type), run.resumed);
    const auto started = clock_.steady();
    counters_.running++;
    JobOutcome outcome =
        run.handler != nullptr
            ? invoke_handler(*run.handler, run.context)
            : JobOutcome{Failure(
                  "no handler for job type '" + run.type + "' on worker " + worker_name_, true)};
    counters_.running--;
    const auto elapsed_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steady() - started).count();
    if (run.closed.load()) {
        log_->info("job abandoned job={} attempt={} ms={}", run.job_id, run.attempt, elapsed_ms);
        return;
    }

    const auto wseq = run.stream->next_wseq();
    const auto fail = [&](std::string error, bool retryable) {
        return proto::WorkerMessage{
            proto::Fail{run.job_id, run.attempt, wseq, sanitize_utf8(error), retryable}};
    };
    proto::WorkerMessage terminal;
    std::string_view result_name;
    if (run.cancel_requested.load()) {
        terminal = fail("cancelled", false);
        result_name = "cancelled";
    } else if (auto* result = std::get_if<std::string>(&outcome)) {
        if (json::is_object(*result)) {
            terminal = proto::WorkerMessage{
                proto::Done{run.job_id, run.attempt, wseq, std::move(*result)}};
            result_name = "succeeded";
        } else {
            terminal = fail("handler returned a result that is not a JSON object", false);
            result_name = "failed";
        }
    } else {
        const auto& failure = std::get<Failure>(outcome);
        terminal = fail(failure.what(), failure.retryable());
        result_name = "failed";
        log_->info("job failed job={} attempt={} retryable={} error={}", run.job_id, run.attempt,
                   failure.retryable(), log_quote(failure.what()));
    }
    try {
        proto::encode(terminal, run.encoded);
        if (run.encoded.size() > proto::kMaxFrameBytes) {
            terminal = fail("result is larger than the broker's frame limit", false);
            result_name = "failed";
            proto::encode(terminal, run.encoded);
        }
        run.submit(wseq, FrameKind::terminal);
    } catch (const std::exception& e) {
        log_->error("cannot send outcome job={} attempt={} error={}", run.job_id, run.attempt,
                    e.what());
    }
    (result_name == "succeeded" ? counters_.succeeded : counters_.failed)++;
    log_->info("job finished job={} attempt={} outcome={} ms={}", run.job_id, run.attempt,
               result_name, elapsed_ms);
}

}  // namespace jobcast::worker
