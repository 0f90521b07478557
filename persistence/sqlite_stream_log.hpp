// The SQLite StreamLog: writes as tasks on the writer thread (each one its
// own transaction, committed before it returns), reads on the read pool.
// Internal to persistence/.
#pragma once

#include "persistence/read_pool.hpp"
#include "persistence/stream_log.hpp"
#include "persistence/writer.hpp"

namespace jobcast::store {

class SqliteStreamLog final : public StreamLog {
  public:
    SqliteStreamLog(Writer& writer, ReadPool& pool) : writer_(writer), pool_(pool) {}

    StreamWriteResult create(CreateStream op) override;
    StreamWriteResult append(AppendToStream op) override;
    StreamWrite remove(const std::string& name, const std::string& owner,
                       std::int64_t now_ms) override;
    void touch(std::int64_t id, std::int64_t now_ms) override;
    std::optional<StreamInfo> get(const std::string& name, const std::string& owner,
                                  std::int64_t now_ms) override;
    std::vector<StreamMessage> read(std::int64_t id, std::uint64_t after,
                                    std::size_t max_bytes) override;
    std::size_t expire(std::int64_t now_ms) override;

  private:
    Writer& writer_;
    ReadPool& pool_;
};

}  // namespace jobcast::store
