// Internal to web/: GET /v1/ws — JSON ops in, event frames out, many jobs per
// connection, plus the caller's jobs feed. Created by the HTTP session when a
// request asks to upgrade.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "auth/jwt.hpp"
#include "web/http/flex_stream.hpp"
#include "web/stream/stream_session.hpp"

namespace jobcast::web {

// Starts a WebSocket session on an upgraded connection; returns it so the
// server can close it on shutdown. With `valid_until` (unix seconds, the
// token's expiry) the session closes with 4003 then, unless the client sent
// a fresh token ({"op":"auth","token":...}) for the same owner before. With
// `grant` (a job token's scope) it subscribes to and cancels that job only,
// has no jobs feed, takes fresh tokens of the same job only, and closes with
// 4003 as soon as the token is revoked.
std::shared_ptr<StreamSession> start_websocket_session(
    FlexStream&& stream, boost::beast::http::request<boost::beast::http::string_body> request,
    std::shared_ptr<StreamingContext> ctx, std::string owner, std::string remote,
    std::int64_t valid_until = 0, std::optional<auth::JobGrant> grant = std::nullopt);

}  // namespace jobcast::web
