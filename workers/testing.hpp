// A JobSink that records what a handler emits, for testing handlers without a
// broker:
//
//     jobcast::worker::RecordingSink sink;
//     jobcast::worker::JobContext context({.job_id = "j1", .params = R"({"n":3})"}, sink);
//     auto outcome = jobcast::worker::invoke_handler(my_handler, context);
//     // sink.events(), sink.checkpoints()
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "workers/job_context.hpp"

namespace jobcast::worker {

class RecordingSink final : public JobSink {
  public:
    struct Record {
        EventKind kind;    // progress, token or log; `checkpoint` records use log with
        std::string data;  // is_checkpoint set and data = the checkpoint bytes
        bool is_checkpoint = false;
    };

    void emit(EventKind kind, std::string& data_json) override {
        add(Record{kind, data_json, false});
    }
    void save_checkpoint(std::string_view bytes) override {
        add(Record{EventKind::log, std::string(bytes), true});
    }

    // Everything in order, checkpoints included.
    std::vector<Record> records() const {
        std::lock_guard lock(mutex_);
        return records_;
    }
    // Events of one kind (checkpoints excluded).
    std::vector<std::string> events(EventKind kind) const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        for (const auto& r : records_) {
            if (!r.is_checkpoint && r.kind == kind) out.push_back(r.data);
        }
        return out;
    }
    std::vector<std::string> checkpoints() const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        for (const auto& r : records_) {
            if (r.is_checkpoint) out.push_back(r.data);
        }
        return out;
    }
    // Waits until `done(records)` holds or the timeout passes; returns whether it held.
    bool wait_until(const std::function<bool(const std::vector<Record>&)>& done,
                    std::chrono::milliseconds timeout) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return done(records_); });
    }

  private:
    void add(Record record) {
        {
            std::lock_guard lock(mutex_);
            records_.push_back(std::move(record));
        }
        changed_.notify_all();
    }

    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::vector<Record> records_;
};

}  // namespace jobcast::worker
