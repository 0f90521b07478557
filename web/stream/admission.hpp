// Internal to web/: who may open a stream, and the session that then takes the
// connection. A WebSocket upgrade (GET /v1/ws) or an SSE request (GET
// /v1/jobs/{id}/events with Accept: text/event-stream) passes its checks here
// (the upgrade's own headers, the caller's token, the SSE job and where to
// resume, the per-owner connection limit) and its connection then goes to a
// new WebSocket or SSE session. The HTTP session that read the request lends
// what that takes through StreamDoor; Host and Origin were checked before, as
// for every request.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "web/http/http_message.hpp"

namespace jobcast::web {

class FlexStream;
class SecurityContext;
class StreamSession;
struct StreamingContext;

// The HTTP session's side of an admission. Called on that session's strand.
class StreamDoor {
  public:
    virtual ~StreamDoor() = default;

    // The peer, "ip:port".
    virtual const std::string& remote() const = 0;
    // Access-Control-Allow-Origin for a permitted cross-origin caller.
    virtual const std::optional<std::string>& cors_origin() const = 0;
    // Sets request.owner (and auth_valid_until); the answer that turns the
    // caller away, if any.
    virtual std::optional<HttpResponse> authenticate(HttpRequest& request) = 0;
    // Answers over HTTP; the connection stays the HTTP session's.
    virtual void send(HttpResponse response) = 0;
    // Runs `next` back on the strand (after work on another thread), unless
    // the connection closed meanwhile.
    virtual void resume(std::function<void()> next) = 0;
    // Admitted: the request counts as answered with `status`, and the
    // connection goes to the session `open` starts on it, which also keeps
    // the connection's place under the accept-time caps.
    using Open = std::function<std::shared_ptr<StreamSession>(FlexStream&& stream)>;
    virtual void hand_over(int status, const Open& open) = 0;
};

// A WebSocket upgrade or an SSE request: true when it was taken here (answered,
// being answered, or handed to a stream session); false for any other
// request, which is the Handler's. `security` is null when nothing is limited.
bool admit_stream(const std::shared_ptr<StreamDoor>& door,
                  const std::shared_ptr<StreamingContext>& streaming,
                  const std::shared_ptr<SecurityContext>& security, HttpRequest& request,
                  boost::beast::http::request<boost::beast::http::string_body>& message);

}  // namespace jobcast::web
