// Errors that the load generators' threads report: how many, and the first.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

namespace jobcast::bench {

struct Errors {
    std::atomic<int> errors{0};
    std::mutex error_mutex;
    std::string first_error;
    void error(const std::string& what) {
        errors.fetch_add(1);
        std::lock_guard lock(error_mutex);
        if (first_error.empty()) first_error = what;
    }
};

}  // namespace jobcast::bench
