// Helpers shared by the job handler tests: the text of each token a handler
// emitted, and a run that cancels the job part-way.
#pragma once

#include <boost/json.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include "workers/testing.hpp"

namespace jobcast::worker::testing {

inline std::vector<std::string> token_texts(const RecordingSink& sink) {
    std::vector<std::string> out;
    for (const auto& data : sink.events(EventKind::token)) {
        out.emplace_back(boost::json::parse(data).at("text").as_string());
    }
    return out;
}

// Runs `handler`, cancelling its job from another thread once `sink` holds
// `records` records (or after 10 s without them).
inline JobOutcome run_cancelled_after(const Handler& handler, JobContext& context,
                                      RecordingSink& sink, std::size_t records) {
    std::thread canceller([&] {
        sink.wait_until([records](const auto& got) { return got.size() >= records; },
                        std::chrono::seconds{10});
        context.request_cancel();
    });
    JobOutcome outcome = invoke_handler(handler, context);
    canceller.join();
    return outcome;
}

}  // namespace jobcast::worker::testing
