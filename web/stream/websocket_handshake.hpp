// The checks of a WebSocket upgrade request (RFC 6455 4.2.1) that Beast's
// accept would otherwise answer in plain text: refused here first, with the
// API's JSON error body and the status counted like any other answer.
#pragma once

#include <optional>

#include "web/http/http_message.hpp"

namespace jobcast::web {

// For a request that is already an upgrade (GET, HTTP/1.1, Connection: upgrade,
// Upgrade: websocket): nullopt when Beast will accept it; otherwise 400 for a
// missing or malformed Sec-WebSocket-Key or a missing version, 426 (with
// Sec-WebSocket-Version: 13) for a version other than 13.
std::optional<HttpResponse> refuse_websocket_upgrade(const HttpRequest& request);

}  // namespace jobcast::web
