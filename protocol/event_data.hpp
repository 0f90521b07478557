// The members of an event's data that clients act on, read once per event by
// the job fold (job_fold.hpp) and the UI message stream (client_api.hpp).
// Pure; Boost.JSON stays in event_data.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "protocol/model.hpp"

namespace jobcast::client_api {

struct EventData {
    std::string text;                  // token: the streamed text
    std::optional<JobState> state;     // state: the new state
    int attempt = 0;                   // state: the attempt it belongs to
    std::string reason;                // state: why (a retry, a failure, a cancel)
    std::uint64_t resume_seq = 0;      // running: the seq its checkpoint covers (0: none)
    std::optional<double> fraction;    // progress: 0..1 (clamped)
    std::optional<std::string> stage;  // progress: the stage's name
    std::string message;               // error, log: the message
};

// What `event.data` says for its kind; members it lacks (or that have the
// wrong type) keep their defaults. Never throws.
EventData read_event_data(const Event& event);

}  // namespace jobcast::client_api
