#include "persistence/sqlite_stream_log.hpp"

#include <algorithm>

namespace jobcast::store {

namespace {

constexpr const char* kStreamColumns =
    "SELECT pk, owner, name, content_type, ttl_seconds, expires_at, expires_at_ms, closed, "
    "closed_by, stream_seq, last_seq, created_at, accessed_at FROM streams ";
constexpr const char* kByName = "WHERE owner = ?1 AND name = ?2";
constexpr const char* kInsertStream =
    "INSERT INTO streams(owner, name, content_type, ttl_seconds, expires_at, expires_at_ms, "
    "closed, last_seq, created_at, accessed_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)";
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
constexpr const char* kSelectMessages =
    "SELECT seq, data FROM stream_messages WHERE stream_pk = ?1 AND seq > ?2 ORDER BY seq";
constexpr const char* kDeleteStream = "DELETE FROM streams WHERE pk = ?1";
constexpr const char* kDeleteMessages = "DELETE FROM stream_messages WHERE stream_pk = ?1";
constexpr const char* kDeleteProducers = "DELETE FROM stream_producers WHERE stream_pk = ?1";
constexpr const char* kSelectExpired =
    "SELECT pk FROM streams WHERE (expires_at_ms > 0 AND expires_at_ms <= ?1) "
    "OR (ttl_seconds >= 0 AND accessed_at + ttl_seconds * 1000 <= ?1)";

struct StreamRow {
    StreamInfo info;
    domain::StreamRecord record;
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
    domain::StreamRecord& record = row.record;
    record.content_type = domain::normalize_content_type(info.content_type);
    record.closed = info.closed;
    record.closed_by = std::string(select.column_text(8));
    record.stream_seq = std::string(select.column_text(9));
    record.ttl_seconds = info.ttl_seconds;
    record.expires_at_ms = info.expires_at_ms;
    record.accessed_at_ms = select.column_int64(12);
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

void delete_stream(db::Connection& connection, std::int64_t pk) {
    for (const char* sql : {kDeleteMessages, kDeleteProducers, kDeleteStream}) {
        db::Statement statement(connection, sql, false);
        statement.bind(1, pk);
        statement.run();
    }
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

bool same_settings(const StreamRow& row, const CreateStream& op) {
    return row.record.content_type == domain::normalize_content_type(op.content_type) &&
           row.info.ttl_seconds == op.ttl_seconds && row.info.expires_at == op.expires_at &&
           row.info.closed == op.closed;
}

}  // namespace

StreamWriteResult SqliteStreamLog::create(CreateStream op) {
    StreamWriteResult result;
    writer_.run_task(
        [&](db::Connection& connection) {
            db::Statement select(connection, std::string(kStreamColumns) + kByName, false);
            if (auto row = select_stream(select, op.owner, op.name)) {
                if (!domain::stream_expired(row->record, op.now_ms)) {
                    result.status =
                        same_settings(*row, op) ? StreamWrite::exists : StreamWrite::conflict;
                    result.stream = std::move(row->info);
                    return;
                }
                delete_stream(connection, row->info.id);  // expired: the name is free
            }
            db::Statement insert(connection, kInsertStream, false);
            insert.bind_text(1, op.owner);
            insert.bind_text(2, op.name);
            insert.bind_text(3, op.content_type);
            insert.bind(4, op.ttl_seconds);
            insert.bind_text(5, op.expires_at);
            insert.bind(6, op.expires_at_ms);
            insert.bind(7, op.closed);
            insert.bind(8, static_cast<std::uint64_t>(op.messages.size()));
            insert.bind(9, op.now_ms);
            insert.run();
            const std::int64_t pk = connection.last_insert_rowid();
            insert_messages(connection, pk, 0, op.messages);
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
            if (!row || domain::stream_expired(row->record, op.now_ms)) {
                result.status = StreamWrite::not_found;
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

bool SqliteStreamLog::remove(const std::string& name, const std::string& owner) {
    bool removed = false;
    writer_.run_task(
        [&](db::Connection& connection) {
            db::Statement select(connection, std::string(kStreamColumns) + kByName, false);
            auto row = select_stream(select, owner, name);
            if (!row) return;
            delete_stream(connection, row->info.id);
            removed = true;
        },
        false);
    return removed;
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
    if (!row || domain::stream_expired(row->record, now_ms)) return std::nullopt;
    return std::move(row->info);
}

std::vector<StreamMessage> SqliteStreamLog::read(std::int64_t id, std::uint64_t after,
                                                 std::size_t max_bytes) {
    std::vector<StreamMessage> messages;
    auto connection = pool_.borrow();
    db::Statement& select = connection->statement(kSelectMessages);
    db::ResetOnExit reset(select);
    select.bind(1, id);
    select.bind(2, after);
    std::size_t bytes = 0;
    while (bytes < max_bytes && select.step()) {
        StreamMessage message;
        message.seq = static_cast<std::uint64_t>(select.column_int64(0));
        message.data = std::string(select.column_blob(1));
        bytes += message.data.size();
        messages.push_back(std::move(message));
    }
    return messages;
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
