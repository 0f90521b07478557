#include "web/http/request_counter.hpp"

namespace jobcast::web {

void RequestCounter::add(std::string_view route, int code) {
    std::lock_guard lock(mutex_);
    ++counts_[{std::string(route), code}];
}

std::vector<RequestCount> RequestCounter::snapshot() const {
    std::lock_guard lock(mutex_);
    std::vector<RequestCount> out;
    out.reserve(counts_.size());
    for (const auto& [key, count] : counts_)
        out.push_back({key.first, key.second, count});
    return out;
}

}  // namespace jobcast::web
