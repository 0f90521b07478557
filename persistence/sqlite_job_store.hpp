// JobStore over the read pool. Internal.
#pragma once

#include "persistence/read_pool.hpp"
#include "persistence/store.hpp"

namespace jobcast::store {

class SqliteJobStore final : public JobStore {
  public:
    explicit SqliteJobStore(ReadPool& pool) : pool_(pool) {}

    std::optional<Job> get(std::string_view id) override;
    // Newest first by id (ids are time-sortable); the cursor is the last id of
    // the previous page.
    ListPage list(const ListQuery& query) override;
    std::vector<Job> unfinished() override;
    // Every state, zero counts included.
    std::vector<std::pair<JobState, std::int64_t>> count_by_state() override;

  private:
    ReadPool& pool_;
};

}  // namespace jobcast::store
