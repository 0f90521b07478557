#include "web/stream/websocket_handshake.hpp"

#include "protocol/json.hpp"

namespace jobcast::web {

namespace {

// A client's key is 16 random bytes in base64: 24 characters. Beast keeps it
// in a buffer of that size and refuses longer ones.
constexpr std::size_t kMaxKeyLength = 24;

HttpResponse refusal(int status, std::string_view code, std::string_view message) {
    return HttpResponse{status, "application/json", json::error_body(code, message), {}};
}

}  // namespace

std::optional<HttpResponse> refuse_websocket_upgrade(const HttpRequest& request) {
    auto key = request.header("Sec-WebSocket-Key");
    if (!key || key->empty() || key->size() > kMaxKeyLength) {
        return refusal(400, "invalid_request",
                       "a WebSocket upgrade needs a Sec-WebSocket-Key of 16 bytes in base64");
    }
    auto version = request.header("Sec-WebSocket-Version");
    if (!version || version->empty()) {
        return refusal(400, "invalid_request", "a WebSocket upgrade needs Sec-WebSocket-Version");
    }
    if (*version != "13") {
        HttpResponse response =
            refusal(426, "upgrade_required", "only WebSocket version 13 is supported");
        response.headers.emplace_back("Sec-WebSocket-Version", "13");
        return response;
    }
    return std::nullopt;
}

}  // namespace jobcast::web
