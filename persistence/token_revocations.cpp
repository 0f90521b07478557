#include "persistence/token_revocations.hpp"

#include <mutex>

#include "persistence/database.hpp"

namespace jobcast::store {

namespace {

constexpr const char* kSelect =
    "SELECT kind, owner, key, revoked_at, until FROM token_revocations WHERE until > ?1";
constexpr const char* kUpsert =
    "INSERT INTO token_revocations(kind, owner, key, revoked_at, until) "
    "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(kind, owner, key) DO UPDATE SET "
    "revoked_at = max(revoked_at, excluded.revoked_at), until = max(until, excluded.until)";
constexpr const char* kDeleteOver = "DELETE FROM token_revocations WHERE until <= ?1";

class SqliteTokenRevocations final : public TokenRevocations {
  public:
    SqliteTokenRevocations(const std::string& path, std::chrono::milliseconds busy_timeout)
        : connection_(db::Connection::open(path, SQLITE_OPEN_READWRITE)) {
        sqlite3_busy_timeout(connection_.handle(), static_cast<int>(busy_timeout.count()));
    }

    std::vector<TokenRevocation> load(UnixMs now) override {
        std::lock_guard lock(mutex_);
        db::Statement select(connection_, kSelect, false);
        select.bind(1, now);
        std::vector<TokenRevocation> out;
        while (select.step()) {
            out.push_back({std::string(select.column_text(0)), std::string(select.column_text(1)),
                           std::string(select.column_text(2)), select.column_int64(3),
                           select.column_int64(4)});
        }
        return out;
    }

    void add(const TokenRevocation& revocation, UnixMs now) override {
        std::lock_guard lock(mutex_);
        db::Transaction transaction(connection_);
        {
            db::Statement upsert(connection_, kUpsert, false);
            upsert.bind_text(1, revocation.kind);
            upsert.bind_text(2, revocation.owner);
            upsert.bind_text(3, revocation.key);
            upsert.bind(4, revocation.revoked_at);
            upsert.bind(5, revocation.until);
            upsert.run();
            db::Statement prune(connection_, kDeleteOver, false);
            prune.bind(1, now);
            prune.run();
        }
        transaction.commit();
    }

  private:
    std::mutex mutex_;
    db::Connection connection_;
};

}  // namespace

std::unique_ptr<TokenRevocations> open_token_revocations(const std::string& path,
                                                         std::chrono::milliseconds busy_timeout) {
    return std::make_unique<SqliteTokenRevocations>(path, busy_timeout);
}

}  // namespace jobcast::store
