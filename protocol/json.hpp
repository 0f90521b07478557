// The client-facing JSON shapes of Client API v1 (jobs, events, requests).
// Boost.JSON stays inside json.cpp so that including this header is cheap.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/json_writer.hpp"  // json::append_quoted
#include "protocol/model.hpp"

namespace jobcast::json {

// {"id","type","owner","params","priority","state","attempt","max_attempts",
//  "worker","progress","last_seq","result","error","created_at","started_at",
//  "finished_at","cancel_requested"}; absent values are null. The checkpoint is
//  not exposed (opaque worker bytes); "has_checkpoint" says whether one exists.
std::string job(const Job& job);

// {"seq":N,"kind":K,"ts":T,"data":{...}} — one element of an events page or of a
// batched WebSocket frame (client_api.hpp builds both).
std::string event_object(const Event& event);
void append_event_object(std::string& out, const EventView& event);
inline void append_event_object(std::string& out, const Event& event) {
    append_event_object(out, view_of(event));
}
// The same members without the braces, for a frame that adds its own.
void append_event_members(std::string& out, const EventView& event);
inline void append_event_members(std::string& out, const Event& event) {
    append_event_members(out, view_of(event));
}

// {"error":{"code":C,"message":M}} — the body of every REST error.
std::string error_body(std::string_view code, std::string_view message);

// POST /v1/jobs body: {type, params?, priority?, max_attempts?}.
struct JobRequest {
    std::string type;
    std::string params = "{}";  // JSON object text, re-serialized canonically
    int priority = 0;
    int max_attempts = 3;
};
struct RequestError {
    std::string message;  // says which field is wrong and why
};
std::variant<JobRequest, RequestError> parse_job_request(std::string_view body);

// True when `text` parses as a JSON object (used to validate stored payloads).
bool is_object(std::string_view text);

}  // namespace jobcast::json
