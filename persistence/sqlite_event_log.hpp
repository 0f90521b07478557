// EventLog over the read pool: reads the packed blocks of one job. Internal.
#pragma once

#include "persistence/read_pool.hpp"
#include "persistence/store.hpp"

namespace jobcast::store {

class SqliteEventLog final : public EventLog {
  public:
    explicit SqliteEventLog(ReadPool& pool) : pool_(pool) {}

    using EventLog::read;
    // Throws StoreError when a stored block is corrupt or the log has a hole.
    std::vector<Event> read(std::string_view job, std::uint64_t after, std::size_t limit,
                            std::size_t max_bytes) override;
    // Each stored block's events as views into the row read, no Event made.
    ReadTotals read_into(std::string_view job, std::uint64_t after, std::size_t limit,
                         std::size_t max_bytes, const EventVisitor& visit) override;
    std::optional<std::uint64_t> last_seq(std::string_view job) override;

  private:
    ReadPool& pool_;
};

}  // namespace jobcast::store
