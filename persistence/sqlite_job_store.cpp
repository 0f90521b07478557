#include "persistence/sqlite_job_store.hpp"

#include <algorithm>
#include <array>

#include "persistence/job_row.hpp"

namespace jobcast::store {

namespace {

const std::string kSelectById = select_jobs("WHERE id = ?1");
const std::string kSelectUnfinished =
    select_jobs("WHERE state IN ('queued', 'running') ORDER BY id");
constexpr const char* kCountByState = "SELECT state, COUNT(*) FROM jobs GROUP BY state";

constexpr std::size_t kMaxListLimit = 1000;

// One statement text per combination of filters: a fixed text per shape lets
// SQLite use the (owner, id DESC) index with the cursor as a range bound.
std::string list_sql(bool by_state, bool by_type, bool after_cursor) {
    std::string sql = select_jobs("WHERE owner = ?1");
    if (by_state) sql += " AND state = ?2";
    if (by_type) sql += " AND type = ?3";
    if (after_cursor) sql += " AND id < ?4";
    sql += " ORDER BY id DESC LIMIT ?5";
    return sql;
}

const std::array<std::string, 8> kListSql = [] {
    std::array<std::string, 8> all;
    for (int shape = 0; shape < 8; ++shape) {
        all[shape] = list_sql(shape & 1, shape & 2, shape & 4);
    }
    return all;
}();

}  // namespace

std::optional<Job> SqliteJobStore::get(std::string_view id) {
    auto connection = pool_.borrow();
    db::Statement& select = connection->statement(kSelectById);
    db::ResetOnExit reset(select);
    select.bind_text(1, id);
    if (!select.step()) return std::nullopt;
    return read_job_row(select).job;
}

ListPage SqliteJobStore::list(const ListQuery& query) {
    const std::size_t limit = std::clamp<std::size_t>(query.limit, 1, kMaxListLimit);
    const int shape = (query.state ? 1 : 0) | (query.type ? 2 : 0) | (query.cursor.empty() ? 0 : 4);
    ListPage page;
    page.jobs.reserve(limit);

    auto connection = pool_.borrow();
    db::Statement& select = connection->statement(kListSql[shape]);
    db::ResetOnExit reset(select);
    select.bind_text(1, query.owner);
    if (query.state) select.bind_text(2, state_column(*query.state));
    if (query.type) select.bind_text(3, *query.type);
    if (!query.cursor.empty()) select.bind_text(4, query.cursor);
    // One more than asked: whether there is a next page.
    select.bind(5, static_cast<std::int64_t>(limit + 1));
    bool more = false;
    while (select.step()) {
        if (page.jobs.size() == limit) {
            more = true;
            break;
        }
        page.jobs.push_back(read_job_row(select).job);
    }
    if (more) page.next = page.jobs.back().id;
    return page;
}

std::vector<Job> SqliteJobStore::unfinished() {
    std::vector<Job> jobs;
    auto connection = pool_.borrow();
    db::Statement& select = connection->statement(kSelectUnfinished);
    db::ResetOnExit reset(select);
    while (select.step())
        jobs.push_back(read_job_row(select).job);
    return jobs;
}

std::vector<std::pair<JobState, std::int64_t>> SqliteJobStore::count_by_state() {
    std::vector<std::pair<JobState, std::int64_t>> counts;
    for (JobState state : {JobState::queued, JobState::running, JobState::succeeded,
                           JobState::failed, JobState::cancelled}) {
        counts.emplace_back(state, 0);
    }
    auto connection = pool_.borrow();
    db::Statement& select = connection->statement(kCountByState);
    db::ResetOnExit reset(select);
    while (select.step()) {
        const auto state = parse_job_state(select.column_text(0));
        if (!state) continue;
        counts[static_cast<std::size_t>(*state)].second = select.column_int64(1);
    }
    return counts;
}

}  // namespace jobcast::store
