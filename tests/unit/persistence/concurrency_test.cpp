// Many submitting threads, many jobs: every job's log stays gapless and
// ordered, on disk and as the commit listener sees it.
#include <catch2/catch.hpp>

#include <map>
#include <mutex>
#include <thread>

#include "store_test_support.hpp"

namespace jobcast::store {

TEST_CASE("seqs stay contiguous under concurrent submits from 8 threads to 100 jobs",
          "[concurrency]") {
    constexpr int kThreads = 8;
    constexpr int kJobs = 100;
    constexpr int kChunks = 150;  // per job

    testing::TempDir dir;
    StoreConfig config = testing::test_config(dir);
    config.block_max_events = 16;
    config.max_batch_ops = 500;

    std::mutex mutex;
    std::map<std::string, std::uint64_t> live_last;  // what the listener saw
    std::vector<std::string> listener_errors;
    auto store = Store::open(config, [&](CommittedBatch& batch) {
        std::lock_guard lock(mutex);
        for (const JobEvents& job : batch.events) {
            std::uint64_t& last = live_last[job.job];
            for (const Event& event : job.events) {
                if (event.seq != last + 1) {
                    listener_errors.push_back(job.job + " got seq " + std::to_string(event.seq) +
                                              " after " + std::to_string(last));
                }
                last = event.seq;
            }
        }
    });

    auto job_id = [](int j) { return "job-" + std::to_string(j); };
    for (int j = 0; j < kJobs; ++j) {
        store->submit(CreateJob{testing::new_job(job_id(j)), ""});
        store->submit(LeaseJob{job_id(j), "w", 0});
    }

    std::atomic<int> not_ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        // A worker's messages for one job come in order, so each job belongs to
        // one thread; the threads interleave freely with each other.
        threads.emplace_back([&, t] {
            auto count_failure = [&](const WriteResult& r) {
                if (r.status != WriteStatus::ok) ++not_ok;
            };
            for (int w = 1; w <= kChunks; ++w) {
                for (int j = t; j < kJobs; j += kThreads) {
                    store->submit(
                        testing::chunk(job_id(j), 1, w, "{\"w\":" + std::to_string(w) + "}"),
                        count_failure);
                }
            }
            for (int j = t; j < kJobs; j += kThreads) {
                FinishJob finish;
                finish.job = job_id(j);
                finish.attempt = 1;
                finish.wseq = kChunks + 1;
                store->submit(std::move(finish), count_failure);
            }
        });
    }
    for (auto& thread : threads)
        thread.join();
    store->flush();

    CHECK(not_ok == 0);
    {
        std::lock_guard lock(mutex);
        CHECK(listener_errors.empty());
        CHECK(live_last.size() == kJobs);
    }
    const std::uint64_t expected_last = 2 + kChunks + 2;  // queued, running, chunks, result, state
    for (int j = 0; j < kJobs; ++j) {
        const auto events = testing::read_all(*store, job_id(j), 64);
        REQUIRE(events.size() == expected_last);
        for (std::size_t i = 0; i < events.size(); ++i)
            REQUIRE(events[i].seq == i + 1);
        for (int w = 1; w <= kChunks; ++w) {
            REQUIRE(events[w + 1].data == "{\"w\":" + std::to_string(w) + "}");
        }
        const auto job = store->jobs().get(job_id(j));
        REQUIRE(job);
        CHECK(job->last_seq == expected_last);
        CHECK(job->state == JobState::succeeded);
        std::lock_guard lock(mutex);
        CHECK(live_last[job_id(j)] == expected_last);
    }
}

}  // namespace jobcast::store
