// The streaming wire format of Client API v1, shared by the WebSocket, SSE and
// long-poll transports: the client ops a WebSocket reads, the frames and SSE
// text the server writes, the long-poll's events page and the WebSocket close
// codes. Pure: no sockets. Every malformed op becomes an OpError with a code
// and a message that says what is wrong; nothing throws. Boost.JSON stays
// inside client_api.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/model.hpp"

namespace jobcast::client_api {

// ---- WebSocket client ops --------------------------------------------------

struct SubscribeOp {
    std::string job;
    std::uint64_t after = 0;
};
struct SubscribeFeedOp {
    std::string feed;  // "jobs"
};
struct UnsubscribeOp {
    std::string job;
};
struct UnsubscribeFeedOp {
    std::string feed;
};
struct CancelOp {
    std::string job;
};
struct PingOp {};
struct AuthOp {
    std::string token;
};

using ClientOp = std::variant<SubscribeOp, SubscribeFeedOp, UnsubscribeOp, UnsubscribeFeedOp,
                              CancelOp, PingOp, AuthOp>;

struct OpError {
    std::string code;     // "bad_json", "unknown_op", "bad_request"
    std::string message;  // names the field and the problem
    std::string job;      // the job the op named, when it named one
};

std::variant<ClientOp, OpError> parse_client_op(std::string_view text);

// ---- WebSocket server frames -----------------------------------------------

// {"type":"error","code":C,"message":M[,"job":ID]}
std::string error_frame(std::string_view code, std::string_view message, std::string_view job = {});
// {"type":"subscribed","job":ID,"last_seq":N}
std::string subscribed_frame(std::string_view job, std::uint64_t last_seq);
// {"type":"subscribed","feed":"jobs"}
std::string feed_subscribed_frame();
// {"type":"pong"}
std::string pong_frame();
// {"type":"authenticated"[,"expires_at":T]}: T in unix seconds, when the
// broker checks tokens.
std::string authenticated_frame(std::optional<std::int64_t> expires_at);

// {"type":"event","job":ID,"seq":N,"kind":K,"ts":T,"data":{...}}
std::string event_frame(std::string_view job, const Event& event);
// A batch of one job's events from `skip` on: an `event` frame when it is
// one event, else {"type":"events","job":ID,"events":[{seq,kind,ts,data},...]}.
std::string websocket_frame(const std::string& job, const std::vector<Event>& events,
                            std::size_t skip = 0);
// Events of one job taken from several batches (each from its `skip` on).
struct EventSlice {
    const std::vector<Event>* events;
    std::size_t skip = 0;
};
std::string websocket_frame(const std::string& job, const std::vector<EventSlice>& slices);

// Close codes of Client API v1.
inline constexpr std::uint16_t kCloseGoingAway = 1001;  // reconnect and resume
inline constexpr std::uint16_t kCloseRestart = 1012;    // reconnect and resume
inline constexpr std::uint16_t kCloseTooSlow = 4001;    // resume
inline constexpr std::uint16_t kCloseReauthenticate =
    4003;  // token expired: reconnect with a new one
inline constexpr std::uint16_t kClosePolicy = 4008;

// ---- Server-Sent Events ----------------------------------------------------

// "id: <seq>\nevent: <kind>\ndata: {seq,kind,ts,data}\n\n" per event from `skip` on.
std::string sse_text(const std::string& job, const std::vector<Event>& events,
                     std::size_t skip = 0);

// One job's events framed one by one, as a store read hands them over
// (store::EventLog::read_into, no Event copies): the bytes websocket_frame or
// sse_text gives for the same events, or (objects) their event objects
// separated by commas, an events page's or a JSON array's elements.
class PageFramer {
  public:
    enum class Format : std::uint8_t { websocket, sse, objects };
    // `buffer`: memory to frame into (its contents are dropped, its capacity kept).
    PageFramer(Format format, std::string_view job, std::string buffer = {});
    void reserve(std::size_t bytes) { out_.reserve(bytes); }
    void add(const EventView& event);
    std::size_t events() const { return events_; }
    // The frame, text or objects of the events added; empty for none.
    // The framer starts empty again.
    std::string take();
    // The memory it frames into, emptied (none after a take() of several
    // events, which hands it over with the frame).
    std::string release_buffer();

  private:
    Format format_;
    std::string job_;
    std::string out_;
    std::size_t events_ = 0;
    std::size_t first_ = 0;  // WebSocket: where the first event's object starts
};

// ": <text>\n\n", which EventSource ignores (heartbeats).
std::string sse_comment(std::string_view text);
// "retry: <ms>\n\n": how soon EventSource reconnects.
std::string sse_retry(std::uint32_t milliseconds);

// ---- The AI SDK's UI message stream (format=ui-message) ---------------------

// The response header that marks a UI message stream.
inline constexpr std::string_view kUiMessageStreamHeader = "x-vercel-ai-ui-message-stream";
inline constexpr std::string_view kUiMessageStreamVersion = "v1";

// One job's log as the Vercel AI SDK's UI message stream: SSE `data:` lines
// holding UI message chunks, which `readUIMessageStream` and `useChat` read.
// Stateful (which text part is open), so one per stream, fed every event in
// order. It keeps no text: the one place that needs the job's text, the
// restatement below, asks its caller for it. The mapping:
//   seq 1            `start` {messageId: job} (only a stream from the beginning)
//   token            `text-delta` in the text part "<job>-<attempt>"; a
//                    `text-start` opens it before the first delta this stream
//                    writes (a resumed stream re-opens the part it resumes in)
//   progress, log,   `data-progress`, `data-log`, `data-result`, `data-error`,
//   result, error,   `data-state` {the event's data}, all `transient`: they
//   state            reach useChat's onData and never pile up in the message
//   result, requeue  `text-end` for the open part (a requeued attempt's text
//                    ends its part; the next attempt opens a new one)
//   running          of an attempt that resumes from a checkpoint: `text-start`
//                    of its part and a `text-delta` restating the job's text up
//                    to its resume_seq, so the message's last text part is the
//                    job's text (earlier parts: what failed attempts showed)
//   succeeded        `finish` {finishReason: "stop"}
//   failed           `error` {errorText: reason}, `finish` {finishReason: "error"}
//   cancelled        `abort` {reason}
//   terminal         then `[DONE]`, and the stream ends
// Every SSE event has an `id:`: the seq of the last event it completes. An
// event that becomes several chunks gives the earlier ones the previous seq,
// so Last-Event-ID (or after=) resumes exactly however the stream was cut: a
// resume never skips a chunk, and repeats at most an opening `text-start`.
class UiMessageStream {
  public:
    // `after`: the stream starts after this seq (0: from the beginning).
    // `attempt`: the job's attempt when the stream opens, naming the text
    // part of tokens that come before the next state event.
    UiMessageStream(std::string job, std::uint64_t after, int attempt);

    // The SSE text of events[skip..]. Events at or below the last one
    // formatted are skipped. It stops before a `running` event with a
    // resume_seq (an attempt resuming from a checkpoint): restating() then
    // gives that event's seq, and format() writes nothing more until
    // restate() has written the event.
    std::string format(const std::vector<Event>& events, std::size_t skip = 0);

    // The seq of the `running` event that waits for restate(); 0: none.
    std::uint64_t restating() const { return restating_ ? restating_->seq : 0; }

    // The SSE text of the waiting `running` event, its part restating `text`:
    // the job's text with the log folded up to and including that event
    // (JobFold's text, which that event cut back to its resume_seq).
    std::string restate(std::string_view text);

  private:
    void append_event(std::string& out, const Event& event, std::string_view restated = {});
    void close_part();
    // A `text-delta` of `text` in the open part (opened first when none is).
    void append_delta(std::string_view text);

    std::string job_;
    std::uint64_t seq_;
    int attempt_;
    std::string open_part_;            // the text part's id; empty: none open
    std::optional<Event> restating_;   // the `running` event waiting for its text
    std::vector<std::string> chunks_;  // one event's chunks (reused)
};

// ---- Long-poll / REST ------------------------------------------------------

// The body of GET /v1/jobs/{id}/events: {"events":[...],"last_seq":N,"done":B},
// the array's elements being `event_objects` (PageFramer::Format::objects).
std::string events_page(std::string_view event_objects, std::uint64_t last_seq, bool done);

}  // namespace jobcast::client_api
