// The mapping between a jobs row and a Job. Every query that returns jobs
// selects kJobColumns, so one function reads them. Internal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "domain/job_lifecycle.hpp"
#include "persistence/database.hpp"
#include "protocol/model.hpp"

namespace jobcast::store {

// Column list, in the order read_job_row expects (pk first). A
// constant (not a std::string) so other files' statics can use it safely.
inline constexpr std::string_view kJobColumns =
    "pk, id, type, owner, params, priority, state, attempt, max_attempts, worker, progress, "
    "last_seq, checkpoint, result, error, cancel_requested, created_at, started_at, "
    "finished_at, wseq, checkpoint_seq";

// "SELECT <kJobColumns> FROM jobs <tail>"
std::string select_jobs(std::string_view tail);

// A jobs row: the record the lifecycle rules work on, and its primary key.
struct JobRow : domain::JobRecord {
    std::int64_t pk = 0;
};

// Reads the current row of `statement`, whose first columns are kJobColumns.
// Throws StoreError for a row that does not hold a valid job (a corrupt file).
JobRow read_job_row(const db::Statement& statement);

// The text stored in jobs.state.
std::string_view state_column(JobState state);

}  // namespace jobcast::store
