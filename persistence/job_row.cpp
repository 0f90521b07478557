#include "persistence/job_row.hpp"

namespace jobcast::store {

std::string select_jobs(std::string_view tail) {
    std::string sql = "SELECT ";
    sql += kJobColumns;
    sql += " FROM jobs ";
    sql += tail;
    return sql;
}

std::string_view state_column(JobState state) {
    return to_string(state);
}

JobRow read_job_row(const db::Statement& s) {
    JobRow row;
    row.pk = s.column_int64(0);
    Job& job = row.job;
    job.id = s.column_text(1);
    job.type = s.column_text(2);
    job.owner = s.column_text(3);
    job.params = s.column_text(4);
    job.priority = static_cast<int>(s.column_int64(5));
    const std::string_view state = s.column_text(6);
    const auto parsed = parse_job_state(state);
    if (!parsed) {
        throw StoreError("job " + job.id + " has an unknown state '" + std::string(state) + "'");
    }
    job.state = *parsed;
    job.attempt = static_cast<int>(s.column_int64(7));
    job.max_attempts = static_cast<int>(s.column_int64(8));
    job.worker = s.column_text(9);
    job.progress = s.column_double(10);
    job.last_seq = static_cast<std::uint64_t>(s.column_int64(11));
    job.checkpoint = s.column_blob(12);
    job.result = s.column_text(13);
    job.error = s.column_text(14);
    job.cancel_requested = s.column_int64(15) != 0;
    job.created_at = s.column_int64(16);
    job.started_at = s.column_int64(17);
    job.finished_at = s.column_int64(18);
    row.wseq = static_cast<std::uint64_t>(s.column_int64(19));
    job.checkpoint_seq = static_cast<std::uint64_t>(s.column_int64(20));
    return row;
}

}  // namespace jobcast::store
