// How the REST API reads a request before it touches the store: which endpoint,
// with which validated parameters, or the error response that turns it away.
// Pure (no store, no sockets, no clock), so the fuzzer runs the same code the
// server does (tests/fuzz/fuzz_http_request.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "protocol/json.hpp"
#include "protocol/model.hpp"
#include "protocol/token_requests.hpp"
#include "web/http/http_message.hpp"

namespace jobcast::web {

// The bounds a request's parameters must keep.
struct RestLimits {
    std::size_t max_idempotency_key = 200;  // characters
    std::size_t default_list_limit = 50;
    std::size_t max_list_limit = 1000;
    std::size_t default_events_limit = 1000;
    std::size_t max_events_limit = 10000;
    std::chrono::seconds max_wait{60};  // a long-poll's ?wait=S
};

struct HealthCall {};             // GET /healthz
struct ReadyCall {};              // GET /readyz
struct CreateJobCall {            // POST /v1/jobs
    std::string idempotency_key;  // empty: none given
    json::JobRequest job;
};
struct GetJobCall {  // GET /v1/jobs/{id}
    std::string job_id;
};
struct ListJobsCall {  // GET /v1/jobs
    std::optional<JobState> state;
    std::optional<std::string> type;
    std::size_t limit = 0;  // in [1, max_list_limit]
    std::string cursor;
};
struct CancelJobCall {  // POST /v1/jobs/{id}/cancel
    std::string job_id;
};
struct JobEventsCall {  // GET /v1/jobs/{id}/events
    std::string job_id;
    std::uint64_t after = 0;
    std::size_t limit = 0;             // in [1, max_events_limit]
    std::chrono::milliseconds wait{};  // in [0, max_wait]; 0: answer at once
};

struct JobSnapshotCall {  // GET /v1/jobs/{id}/snapshot
    std::string job_id;
};

struct TypesCall {};  // GET /v1/types

struct CreateTokenCall {  // POST /v1/jobs/{id}/tokens
    std::string job_id;
    json::TokenRequest token;
};

struct RevokeTokensCall {  // POST /v1/tokens/revoke
    json::RevokeRequest revoke;
};

using RestCall =
    std::variant<HealthCall, ReadyCall, CreateJobCall, GetJobCall, ListJobsCall, CancelJobCall,
                 JobEventsCall, JobSnapshotCall, TypesCall, CreateTokenCall, RevokeTokensCall>;

// The call `request` asks for, or the 4xx response that refuses it (404 no such
// route, 405 with an Allow header, 400 invalid_request naming the parameter).
std::variant<RestCall, HttpResponse> parse_rest_request(const HttpRequest& request,
                                                        const RestLimits& limits);

// {"error":{"code":C,"message":M}} with `status`.
HttpResponse error_response(int status, std::string_view code, std::string_view message);

}  // namespace jobcast::web
