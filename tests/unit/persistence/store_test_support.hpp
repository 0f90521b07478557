// Helpers shared by the persistence tests: a fresh temporary directory per
// test, a store config pointing into it, synchronous submits.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "persistence/store.hpp"

namespace jobcast::store::testing {

class TempDir {
  public:
    TempDir() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "jobcast-test-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

  private:
    std::filesystem::path path_;
};

inline StoreConfig test_config(const TempDir& dir) {
    StoreConfig config;
    config.path = dir.file("jobcast.db");
    config.read_connections = 2;
    return config;
}

inline WriteResult submit_sync(Store& store, WriteOp op) {
    auto promise = std::make_shared<std::promise<WriteResult>>();
    std::future<WriteResult> result = promise->get_future();
    store.submit(std::move(op), [promise](const WriteResult& r) { promise->set_value(r); });
    return result.get();
}

inline Job new_job(const std::string& id, const std::string& owner = "alice",
                   const std::string& type = "test", int max_attempts = 3) {
    Job job;
    job.id = id;
    job.type = type;
    job.owner = owner;
    job.params = R"({"n":1})";
    job.max_attempts = max_attempts;
    job.created_at = 1'700'000'000'000;
    return job;
}

// Creates and leases `id` (attempt 1); returns the running job.
inline Job create_running(Store& store, const std::string& id, int max_attempts = 3,
                          const std::string& worker = "w1") {
    WriteResult created =
        submit_sync(store, CreateJob{new_job(id, "alice", "test", max_attempts), ""});
    if (created.status != WriteStatus::ok)
        throw std::runtime_error("create failed: " + created.message);
    WriteResult leased = submit_sync(store, LeaseJob{id, worker, 1'700'000'001'000});
    if (leased.status != WriteStatus::ok)
        throw std::runtime_error("lease failed: " + leased.message);
    return *leased.job;
}

inline AppendChunk chunk(const std::string& job, int attempt, std::uint64_t wseq,
                         std::string data = R"({"text":"x"})", EventKind kind = EventKind::token) {
    AppendChunk op;
    op.job = job;
    op.attempt = attempt;
    op.wseq = wseq;
    op.kind = kind;
    op.ts = 1'700'000'002'000'000 + static_cast<UnixUs>(wseq);
    op.data = std::move(data);
    return op;
}

// Every event of `job`, read in pages of `page`.
inline std::vector<Event> read_all(Store& store, const std::string& job, std::size_t page = 1000) {
    std::vector<Event> all;
    for (;;) {
        const std::uint64_t after = all.empty() ? 0 : all.back().seq;
        std::vector<Event> more = store.events().read(job, after, page);
        if (more.empty()) return all;
        for (Event& event : more)
            all.push_back(std::move(event));
    }
}

}  // namespace jobcast::store::testing
