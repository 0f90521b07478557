#include "persistence/sqlite_event_log.hpp"

#include <string>

#include "persistence/event_block.hpp"
#include "persistence/log.hpp"

namespace jobcast::store {

namespace {

constexpr const char* kSelectJobLog = "SELECT pk, last_seq FROM jobs WHERE id = ?1";
constexpr const char* kSelectLastSeq = "SELECT last_seq FROM jobs WHERE id = ?1";
// The block holding `after + 1` is the one with the greatest first_seq <= after + 1;
// from there on, blocks in order. Two seeks in the (job_pk, first_seq) key: a
// read never scans the blocks before it.
constexpr const char* kSelectBlocks =
    "SELECT first_seq, last_seq, body FROM events "
    "WHERE job_pk = ?1 AND first_seq >= "
    "(SELECT IFNULL(MAX(first_seq), 0) FROM events WHERE job_pk = ?1 AND first_seq <= ?2 + 1) "
    "ORDER BY first_seq";

}  // namespace

std::vector<Event> SqliteEventLog::read(std::string_view job, std::uint64_t after,
                                        std::size_t limit, std::size_t max_bytes) {
    std::vector<Event> events;
    read_into(job, after, limit, max_bytes, [&](std::span<const EventView> views) {
        for (const EventView& view : views)
            events.push_back({view.seq, view.kind, view.ts, std::string(view.data)});
    });
    return events;
}

ReadTotals SqliteEventLog::read_into(std::string_view job, std::uint64_t after, std::size_t limit,
                                     std::size_t max_bytes, const EventVisitor& visit) {
    ReadTotals totals;
    if (limit == 0) return totals;
    auto connection = pool_.borrow();

    std::int64_t pk = 0;
    std::uint64_t last_seq = 0;
    {
        db::Statement& select = connection->statement(kSelectJobLog);
        db::ResetOnExit reset(select);
        select.bind_text(1, job);
        if (!select.step()) return totals;
        pk = select.column_int64(0);
        last_seq = static_cast<std::uint64_t>(select.column_int64(1));
    }
    if (after >= last_seq) return totals;

    db::Statement& blocks = connection->statement(kSelectBlocks);
    db::ResetOnExit reset(blocks);
    blocks.bind(1, pk);
    blocks.bind(2, after);
    std::uint64_t next = after + 1;
    ByteBudget budget{max_bytes};
    // One block's views at a time: they point into the row, valid until the next step.
    std::vector<EventView> views;
    while (totals.events < limit && (totals.events == 0 || budget.used < max_bytes) &&
           blocks.step()) {
        const auto first = static_cast<std::uint64_t>(blocks.column_int64(0));
        const auto last = static_cast<std::uint64_t>(blocks.column_int64(1));
        if (first > next) {
            logger().error("event log has a hole job={} expected_seq={} block_first_seq={}", job,
                           next, first);
            throw StoreError("event log of job " + std::string(job) + " misses seq " +
                             std::to_string(next));
        }
        if (last < next) continue;  // cannot happen with a well-formed log
        views.clear();
        const auto error = decode_block(blocks.column_blob(2), first, last, after,
                                        limit - totals.events, views, &budget);
        if (error) {
            logger().error("corrupt event block job={} first_seq={} error=\"{}\"", job, first,
                           *error);
            throw StoreError("corrupt event block of job " + std::string(job) + " at seq " +
                             std::to_string(first) + ": " + *error);
        }
        if (!views.empty()) visit(views);
        totals.events += views.size();
        next = last + 1;
    }
    totals.bytes = budget.used;
    return totals;
}

std::optional<std::uint64_t> SqliteEventLog::last_seq(std::string_view job) {
    auto connection = pool_.borrow();
    db::Statement& select = connection->statement(kSelectLastSeq);
    db::ResetOnExit reset(select);
    select.bind_text(1, job);
    if (!select.step()) return std::nullopt;
    return static_cast<std::uint64_t>(select.column_int64(0));
}

}  // namespace jobcast::store
