// Requests answered, per (route template, status code): the numbers behind
// jobcast_http_requests_total{route,code}. Labels are templates such as
// "/v1/jobs/{id}", never raw paths, so the set stays small.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jobcast::web {

struct RequestCount {
    std::string route;
    int code = 0;
    std::uint64_t count = 0;
};

class RequestCounter {
  public:
    void add(std::string_view route, int code);
    std::vector<RequestCount> snapshot() const;  // sorted by (route, code)

  private:
    mutable std::mutex mutex_;
    std::map<std::pair<std::string, int>, std::uint64_t, std::less<>> counts_;
};

}  // namespace jobcast::web
