#include "persistence/sqlite_stream_log.hpp"

#include <algorithm>
#include <iterator>
#include <limits>

namespace jobcast::store {

namespace {

constexpr const char* kStreamColumns =
    "SELECT pk, owner, name, content_type, ttl_seconds, expires_at, expires_at_ms, closed, "
    "closed_by, stream_seq, last_seq, created_at, accessed_at, fork_of, fork_seq, fork_from, "
    "fork_offset, fork_sub_offset, deleted FROM streams ";
constexpr const char* kByName = "WHERE owner = ?1 AND name = ?2";
constexpr const char* kByPk = "WHERE pk = ?1";
constexpr const char* kInsertStream =
    "INSERT INTO streams(owner, name, content_type, ttl_seconds, expires_at, expires_at_ms, "
    "closed, last_seq, created_at, accessed_at, fork_of, fork_seq, fork_from, fork_offset, "
    "fork_sub_offset) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14)";
constexpr const char* kUpdateStream =
    "UPDATE streams SET closed = ?2, closed_by = ?3, stream_seq = ?4, last_seq = ?5, "
    "accessed_at = ?6 WHERE pk = ?1";
constexpr const char* kTouchStream =
    "UPDATE streams SET accessed_at = MAX(accessed_at, ?2) WHERE pk = ?1";
constexpr const char* kInsertMessage =
    "INSERT INTO stream_messages(stream_pk, seq, data) VALUES(?1, ?2, ?3)";
constexpr const char* kSelectProducer =
    "SELECT epoch, seq FROM stream_producers WHERE stream_pk = ?1 AND producer = ?2";
constexpr const char* kUpsertProducer =
    "INSERT INTO stream_producers(stream_pk, producer, epoch, seq) VALUES(?1, ?2, ?3, ?4) "
    "ON CONFLICT(stream_pk, producer) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq";
constexpr const char* kSelectSource = "SELECT fork_of, fork_seq FROM streams WHERE pk = ?1";
constexpr const char* kSelectMessages =
    "SELECT seq, data FROM stream_messages WHERE stream_pk = ?1 AND seq > ?2 AND seq <= ?3 "
    "ORDER BY seq";
constexpr const char* kCountForks = "SELECT COUNT(*) FROM streams WHERE fork_of = ?1";
constexpr const char* kMarkDeleted = "UPDATE streams SET deleted = 1 WHERE pk = ?1";
// A deleted stream's messages that none of its forks reads (past the last fork point).
constexpr const char* kDeleteUnshared =
    "DELETE FROM stream_messages WHERE stream_pk = ?1 AND "
    "seq > (SELECT MAX(fork_seq) FROM streams WHERE fork_of = ?1)";
constexpr const char* kDeleteStream = "DELETE FROM streams WHERE pk = ?1";
constexpr const char* kDeleteMessages = "DELETE FROM stream_messages WHERE stream_pk = ?1";
constexpr const char* kDeleteProducers = "DELETE FROM stream_producers WHERE stream_pk = ?1";
constexpr const char* kSelectExpired =
    "SELECT pk FROM streams WHERE deleted = 0 AND ((expires_at_ms > 0 AND expires_at_ms <= ?1) "
    "OR (ttl_seconds >= 0 AND accessed_at + ttl_seconds * 1000 <= ?1))";

struct StreamRow {
    StreamInfo info;
    domain::StreamRecord record;
    std::int64_t fork_of = 0;  // the source's pk; 0: not a fork
    std::uint64_t fork_seq = 0;
    ForkFrom fork;  // as asked (fork.offset nullopt: none given)
};

StreamRow read_row(const db::Statement& select) {
    StreamRow row;
    StreamInfo& info = row.info;
    info.id = select.column_int64(0);
    info.owner = std::string(select.column_text(1));
    info.name = std::string(select.column_text(2));
    info.content_type = std::string(select.column_text(3));
    info.ttl_seconds = select.column_int64(4);
    info.expires_at = std::string(select.column_text(5));
    info.expires_at_ms = select.column_int64(6);
    info.closed = select.column_int64(7) != 0;
    info.last_seq = static_cast<std::uint64_t>(select.column_int64(10));
    info.created_at_ms = select.column_int64(11);
    info.deleted = select.column_int64(18) != 0;
    domain::StreamRecord& record = row.record;
    record.content_type = domain::normalize_content_type(info.content_type);
    record.closed = info.closed;
    record.closed_by = std::string(select.column_text(8));
    record.stream_seq = std::string(select.column_text(9));
    record.ttl_seconds = info.ttl_seconds;
    record.expires_at_ms = info.expires_at_ms;
    record.accessed_at_ms = select.column_int64(12);
    row.fork_of = select.column_int64(13);
    row.fork_seq = static_cast<std::uint64_t>(select.column_int64(14));
    row.fork.source = std::string(select.column_text(15));
    if (const auto offset = select.column_int64(16); offset >= 0) {
        row.fork.offset = static_cast<std::uint64_t>(offset);
    }
    row.fork.sub_offset = static_cast<std::uint64_t>(select.column_int64(17));
    return row;
}

std::optional<StreamRow> select_stream(db::Statement& select, const std::string& owner,
                                       const std::string& name) {
    db::ResetOnExit reset(select);
    select.bind_text(1, owner);
    select.bind_text(2, name);
    if (!select.step()) return std::nullopt;
    return read_row(select);
}

// Whether the stream is there for its name's owner: not deleted, not expired.
bool live(const StreamRow& row, std::int64_t now_ms) {
    return !row.info.deleted && !domain::stream_expired(row.record, now_ms);
}

void run_on(db::Connection& connection, const char* sql, std::int64_t pk) {
    db::Statement statement(connection, sql, false);
    statement.bind(1, pk);
    statement.run();
}

std::int64_t forks_of(db::Connection& connection, std::int64_t pk) {
    db::Statement count(connection, kCountForks, false);
    count.bind(1, pk);
    count.step();
    return count.column_int64(0);
}

// Deletes stream `pk`, or keeps it (deleted) while forks read it, with only
// what they read. A stream that goes frees its source if that was deleted and
// kept only for it, and so on up the chain. True when it went.
bool delete_stream(db::Connection& connection, std::int64_t pk) {
    if (forks_of(connection, pk) > 0) {
        for (const char* sql : {kMarkDeleted, kDeleteUnshared, kDeleteProducers})
            run_on(connection, sql, pk);
        return false;
    }
    for (std::int64_t next = pk; next != 0;) {
        std::int64_t source = 0;
        {
            db::Statement select(connection, std::string(kStreamColumns) + kByPk, false);
            select.bind(1, next);
            if (!select.step()) break;
            const auto row = read_row(select);
            if (next != pk && (!row.info.deleted || forks_of(connection, next) > 0)) break;
            source = row.fork_of;
        }
        for (const char* sql : {kDeleteMessages, kDeleteProducers, kDeleteStream})
            run_on(connection, sql, next);
        next = source;
    }
    return true;
}

// Stream `id`'s messages with seq > after, following its chain of sources.
// `source`: kSelectSource, `messages`: kSelectMessages.
std::vector<StreamMessage> read_chain(db::Statement& source, db::Statement& messages,
                                      std::int64_t id, std::uint64_t after, std::size_t max_bytes) {
    // (pk, from, to]: the seqs each stream of the chain holds itself; oldest last.
    struct Segment {
        std::int64_t pk;
        std::uint64_t from, to;
    };
    std::vector<Segment> chain;
    std::uint64_t to = std::numeric_limits<std::int64_t>::max();
    for (std::int64_t pk = id; pk != 0 && after < to;) {
        db::ResetOnExit reset(source);
        source.bind(1, pk);
        if (!source.step()) break;
        const auto fork_of = source.column_int64(0);
        const auto fork_seq = static_cast<std::uint64_t>(source.column_int64(1));
        chain.push_back({pk, fork_seq, to});
        to = std::min(to, fork_seq);
        pk = fork_of;
    }
    std::vector<StreamMessage> out;
    std::size_t bytes = 0;
    for (auto it = chain.rbegin(); it != chain.rend() && bytes < max_bytes; ++it) {
        if (after >= it->to) continue;
        db::ResetOnExit reset(messages);
        messages.bind(1, it->pk);
        messages.bind(2, std::max(after, it->from));
        messages.bind(3, it->to);
        while (bytes < max_bytes && messages.step()) {
            StreamMessage message;
            message.seq = static_cast<std::uint64_t>(messages.column_int64(0));
            message.data = std::string(messages.column_blob(1));
            bytes += message.data.size();
            out.push_back(std::move(message));
        }
    }
    return out;
}

void insert_messages(db::Connection& connection, std::int64_t pk, std::uint64_t after,
                     const std::vector<std::string>& messages) {
    db::Statement insert(connection, kInsertMessage, false);
    for (const auto& message : messages) {
        insert.bind(1, pk);
        insert.bind(2, ++after);
        insert.bind_blob(3, message);
        insert.run();
    }
}

// How many forks deep `row` is (0: not a fork), up to domain::kMaxForkDepth.
std::uint32_t fork_depth(db::Connection& connection, const StreamRow& row) {
    db::Statement source(connection, kSelectSource, false);
    std::uint32_t depth = 0;
    for (std::int64_t next = row.fork_of; next != 0 && depth < domain::kMaxForkDepth; ++depth) {
        db::ResetOnExit reset(source);
        source.bind(1, next);
        next = source.step() ? source.column_int64(0) : 0;
    }
    return depth;
}

// Resolves `op`'s fork against its source into the new row's fork point
// and settings; a status other than `created` refuses it.
StreamWrite resolve_fork(db::Connection& connection, db::Statement& select, CreateStream& op,
                         StreamRow& fork, std::vector<std::string>& prefix) {
    const ForkFrom& asked = *op.fork;
    auto source = select_stream(select, op.owner, asked.source);
    if (!source || (!source->info.deleted && !live(*source, op.now_ms))) {
        return StreamWrite::source_missing;
    }
    if (source->info.deleted) return StreamWrite::source_gone;
    if (domain::fork_too_deep(fork_depth(connection, *source))) return StreamWrite::fork_too_deep;
    ForkPoint point;
    const auto status = resolve_fork_point(
        op, source->info, source->record.content_type, source->info.last_seq,
        [&](std::uint64_t after) {
            db::Statement parent(connection, kSelectSource, false);
            db::Statement messages(connection, kSelectMessages, false);
            return read_chain(parent, messages, source->info.id, after, 1);
        },
        point);
    if (status != StreamWrite::created) return status;
    if (point.partial) prefix.push_back(std::move(*point.partial));
    fork.fork_of = source->info.id;
    fork.fork_seq = point.at;
    fork.fork = asked;
    return StreamWrite::created;
}

}  // namespace

StreamWriteResult SqliteStreamLog::create(CreateStream op) {
    StreamWriteResult result;
    writer_.run_task(
        [&](db::Connection& connection) {
            db::Statement select(connection, std::string(kStreamColumns) + kByName, false);
            if (auto row = select_stream(select, op.owner, op.name)) {
                if (live(*row, op.now_ms)) {
                    result.status = asks_again(row->info, row->record.content_type,
                                               row->fork_of != 0 ? &row->fork : nullptr, op)
                                        ? StreamWrite::exists
                                        : StreamWrite::conflict;
                    result.stream = std::move(row->info);
                    return;
                }
                // Expired, the name is free; deleted and kept for its
                // forks, it is not.
                if (row->info.deleted || !delete_stream(connection, row->info.id)) {
                    result.status = StreamWrite::conflict;
                    return;
                }
            }
            StreamRow fork;
            std::vector<std::string> messages;
            if (op.fork) {
                result.status = resolve_fork(connection, select, op, fork, messages);
                if (result.status != StreamWrite::created) return;
            }
            messages.insert(messages.end(), std::make_move_iterator(op.messages.begin()),
                            std::make_move_iterator(op.messages.end()));
            db::Statement insert(connection, kInsertStream, false);
            insert.bind_text(1, op.owner);
            insert.bind_text(2, op.name);
            insert.bind_text(3, op.content_type);
            insert.bind(4, op.ttl_seconds);
            insert.bind_text(5, op.expires_at);
            insert.bind(6, op.expires_at_ms);
            insert.bind(7, op.closed);
            insert.bind(8, fork.fork_seq + messages.size());
            insert.bind(9, op.now_ms);
            insert.bind(10, fork.fork_of);
            insert.bind(11, fork.fork_seq);
            insert.bind_text(12, fork.fork.source);
            insert.bind(13, fork.fork.offset ? static_cast<std::int64_t>(*fork.fork.offset)
                                             : std::int64_t{-1});
            insert.bind(14, fork.fork.sub_offset);
            insert.run();
            const std::int64_t pk = connection.last_insert_rowid();
            insert_messages(connection, pk, fork.fork_seq, messages);
            result.status = StreamWrite::created;
            auto created = select_stream(select, op.owner, op.name);
            if (created) result.stream = std::move(created->info);
        },
        false);
    return result;
}

StreamWriteResult SqliteStreamLog::append(AppendToStream op) {
    StreamWriteResult result;
    writer_.run_task(
        [&](db::Connection& connection) {
            db::Statement select(connection, std::string(kStreamColumns) + kByName, false);
            auto row = select_stream(select, op.owner, op.name);
            if (!row || !live(*row, op.now_ms)) {
                result.status =
                    row && row->info.deleted ? StreamWrite::gone : StreamWrite::not_found;
                return;
            }
            std::optional<domain::ProducerState> producer;
            if (const auto& claim = op.request.producer) {
                db::Statement state(connection, kSelectProducer, false);
                state.bind(1, row->info.id);
                state.bind_text(2, claim->id);
                if (state.step()) {
                    producer =
                        domain::ProducerState{static_cast<std::uint64_t>(state.column_int64(0)),
                                              static_cast<std::uint64_t>(state.column_int64(1))};
                }
            }
            result.status = StreamWrite::decided;
            result.decision = domain::decide_append(row->record, producer, op.request);
            const auto verdict = result.decision.verdict;
            StreamInfo& info = row->info;
            domain::StreamRecord& record = row->record;
            const bool taken = verdict == domain::AppendVerdict::append;
            if (taken) {
                insert_messages(connection, info.id, info.last_seq, op.messages);
                info.last_seq += op.messages.size();
                if (op.request.stream_seq) record.stream_seq = *op.request.stream_seq;
                if (op.request.close) {
                    info.closed = true;
                    record.closed_by =
                        op.request.producer ? domain::producer_tuple(*op.request.producer) : "";
                }
                if (result.decision.producer_next) {
                    db::Statement upsert(connection, kUpsertProducer, false);
                    upsert.bind(1, info.id);
                    upsert.bind_text(2, op.request.producer->id);
                    upsert.bind(3, result.decision.producer_next->epoch);
                    upsert.bind(4, result.decision.producer_next->seq);
                    upsert.run();
                }
            }
            // Whatever was decided, a write keeps the stream alive.
            db::Statement update(connection, kUpdateStream, false);
            update.bind(1, info.id);
            update.bind(2, info.closed);
            update.bind_text(3, record.closed_by);
            update.bind_text(4, record.stream_seq);
            update.bind(5, info.last_seq);
            update.bind(6, std::max(record.accessed_at_ms, op.now_ms));
            update.run();
            result.stream = std::move(info);
        },
        false);
    return result;
}

StreamWrite SqliteStreamLog::remove(const std::string& name, const std::string& owner,
                                    std::int64_t now_ms) {
    StreamWrite status = StreamWrite::not_found;
    writer_.run_task(
        [&](db::Connection& connection) {
            db::Statement select(connection, std::string(kStreamColumns) + kByName, false);
            auto row = select_stream(select, owner, name);
            if (!row) return;
            if (row->info.deleted) {
                status = StreamWrite::gone;
            } else if (live(*row, now_ms)) {
                delete_stream(connection, row->info.id);
                status = StreamWrite::removed;
            }
        },
        false);
    return status;
}

void SqliteStreamLog::touch(std::int64_t id, std::int64_t now_ms) {
    writer_.run_task(
        [&](db::Connection& connection) {
            db::Statement update(connection, kTouchStream, false);
            update.bind(1, id);
            update.bind(2, now_ms);
            update.run();
        },
        false);
}

std::optional<StreamInfo> SqliteStreamLog::get(const std::string& name, const std::string& owner,
                                               std::int64_t now_ms) {
    auto connection = pool_.borrow();
    auto row =
        select_stream(connection->statement(std::string(kStreamColumns) + kByName), owner, name);
    if (!row || (!row->info.deleted && !live(*row, now_ms))) return std::nullopt;
    return std::move(row->info);
}

std::vector<StreamMessage> SqliteStreamLog::read(std::int64_t id, std::uint64_t after,
                                                 std::size_t max_bytes) {
    auto connection = pool_.borrow();
    return read_chain(connection->statement(kSelectSource), connection->statement(kSelectMessages),
                      id, after, max_bytes);
}

std::size_t SqliteStreamLog::expire(std::int64_t now_ms) {
    std::size_t expired = 0;
    writer_.run_task(
        [&](db::Connection& connection) {
            std::vector<std::int64_t> pks;
            {
                db::Statement select(connection, kSelectExpired, false);
                select.bind(1, now_ms);
                while (select.step())
                    pks.push_back(select.column_int64(0));
            }
            for (auto pk : pks)
                delete_stream(connection, pk);
            expired = pks.size();
        },
        false);
    return expired;
}

}  // namespace jobcast::store
