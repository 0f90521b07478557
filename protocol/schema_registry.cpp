#include "protocol/schema_registry.hpp"

#include <set>

namespace jobcast::proto {

void SchemaRegistry::announce(const std::string& worker, const std::vector<std::string>& types,
                              std::unordered_map<std::string, ParamsSchema::Ptr> schemas) {
    std::lock_guard lock(mutex_);
    workers_[worker] = Worker{++hellos_, types, std::move(schemas)};
    rebuild();
}

void SchemaRegistry::forget(const std::string& worker) {
    std::lock_guard lock(mutex_);
    if (workers_.erase(worker) != 0) rebuild();
}

void SchemaRegistry::rebuild() {
    by_type_.clear();
    std::map<std::string, std::uint64_t> newest;  // type -> order of the hello its schema is from
    for (const auto& [name, worker] : workers_) {
        // A type named twice in one hello is one worker serving it.
        const std::set<std::string> types(worker.types.begin(), worker.types.end());
        for (const std::string& type : types) {
            TypeInfo& info = by_type_[type];
            info.type = type;
            ++info.workers;
            auto schema = worker.schemas.find(type);
            if (schema == worker.schemas.end() || !schema->second) continue;
            std::uint64_t& order = newest[type];
            if (worker.order > order) {
                order = worker.order;
                info.schema = schema->second;
            }
        }
    }
}

ParamsSchema::Ptr SchemaRegistry::find(const std::string& type) const {
    std::lock_guard lock(mutex_);
    auto it = by_type_.find(type);
    return it == by_type_.end() ? nullptr : it->second.schema;
}

std::vector<SchemaRegistry::TypeInfo> SchemaRegistry::types() const {
    std::lock_guard lock(mutex_);
    std::vector<TypeInfo> out;
    out.reserve(by_type_.size());
    for (const auto& [type, info] : by_type_)
        out.push_back(info);
    return out;
}

void SchemaRegistry::refused(const std::string& type) {
    std::lock_guard lock(mutex_);
    ++refusals_[type];
}

std::map<std::string, std::uint64_t> SchemaRegistry::refusals() const {
    std::lock_guard lock(mutex_);
    return refusals_;
}

}  // namespace jobcast::proto
