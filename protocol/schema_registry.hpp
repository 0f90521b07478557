// The params schema of each job type, as the connected workers announced them
// in their hellos: the gateway writes (hello, disconnect), REST reads (submit,
// GET /v1/types). A type's schema is the one of the most recent hello that
// announced one among the workers still connected; a type no connected worker
// announced a schema for has none (submissions are accepted as they are).
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol/params_schema.hpp"

namespace jobcast::proto {

class SchemaRegistry {
  public:
    struct TypeInfo {
        std::string type;
        ParamsSchema::Ptr schema;  // null: none announced
        std::size_t workers = 0;   // connected workers serving the type
    };

    // What the connection `worker` serves since its hello: `types`, with the
    // compiled schemas it announced for some of them. Replaces what the same
    // connection said before.
    void announce(const std::string& worker, const std::vector<std::string>& types,
                  std::unordered_map<std::string, ParamsSchema::Ptr> schemas);
    // The connection is gone.
    void forget(const std::string& worker);

    // The schema submissions of `type` are checked against; null: none.
    ParamsSchema::Ptr find(const std::string& type) const;
    // Every type a connected worker serves, by name.
    std::vector<TypeInfo> types() const;

    // A submission of `type` refused by its schema (counted for the metrics).
    void refused(const std::string& type);
    // type -> submissions refused since start.
    std::map<std::string, std::uint64_t> refusals() const;

  private:
    struct Worker {
        std::uint64_t order = 0;  // of its hello
        std::vector<std::string> types;
        std::unordered_map<std::string, ParamsSchema::Ptr> schemas;
    };
    void rebuild();  // with mutex_ held

    mutable std::mutex mutex_;
    std::uint64_t hellos_ = 0;
    std::unordered_map<std::string, Worker> workers_;
    std::map<std::string, TypeInfo> by_type_;
    std::map<std::string, std::uint64_t> refusals_;
};

}  // namespace jobcast::proto
