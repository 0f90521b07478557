// Internal to web/: GET /v1/jobs/{id}/events with Accept: text/event-stream.
// `id: <seq>` on every event, so a browser's EventSource resumes by itself
// (Last-Event-ID) with no gap; heartbeat comments keep proxies from timing
// out; the stream ends after the job's terminal event. With `format=ui-message`
// the same log goes out as the AI SDK's UI message stream.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "auth/jwt.hpp"
#include "protocol/client_api.hpp"
#include "web/http/flex_stream.hpp"
#include "web/stream/stream_session.hpp"

namespace jobcast::web {

// Takes over a connection whose request was checked (the job exists and is
// the caller's); writes the response header and streams events after `after`.
// With `valid_until` (unix seconds, the caller's token expiry) the stream ends
// then: the client reconnects with a fresh token and resumes. With
// `ui_message` the events are written as that UI message stream instead of
// jobcast's own SSE events. With `grant` (the caller's job token) the
// stream ends as soon as that token is revoked. `written` (cluster mode:
// store::written_seq at admission) is how far the replay reads before it
// trusts live events (Subscription::reach).
std::shared_ptr<StreamSession> start_sse_session(
    FlexStream&& stream, std::shared_ptr<StreamingContext> ctx, std::string owner,
    std::string remote, std::string job, std::uint64_t after, std::int64_t valid_until = 0,
    std::vector<std::pair<std::string, std::string>> extra_headers = {},
    std::optional<client_api::UiMessageStream> ui_message = std::nullopt,
    std::optional<auth::JobGrant> grant = std::nullopt, std::uint64_t written = 0);

}  // namespace jobcast::web
