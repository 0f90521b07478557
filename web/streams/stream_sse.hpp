// Internal to web/: GET /v1/streams/{name}?offset=O&live=sse. The request is
// checked (DurableStreams::plan_sse, off the I/O thread), then its connection
// goes to a session that writes the stream as SSE: an `event: data` per
// message, each followed by an `event: control` with the next offset and a
// cursor (upToDate at the tail, streamClosed at the end of a closed stream);
// binary streams in base64. A job's log arrives through the hub like any
// subscription (replay, then live, the slow-consumer switch included); a
// created stream is read again at each change of it, and a quiet stream gets
// a control event every long-poll interval.
#pragma once

#include <memory>

#include "web/http/http_message.hpp"

namespace jobcast::web {

class SecurityContext;
class StreamDoor;
struct StreamingContext;

namespace streams {

// A GET under /v1/streams/ that asks for live=sse.
bool wants_sse(const HttpRequest& request);

class DurableStreams;

// Takes the request: answers it, or hands its connection to a stream session.
void admit_sse(const std::shared_ptr<StreamDoor>& door,
               const std::shared_ptr<StreamingContext>& streaming, DurableStreams& durable,
               const std::shared_ptr<SecurityContext>& security, HttpRequest request);

}  // namespace streams
}  // namespace jobcast::web
