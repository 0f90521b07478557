#include "web/stream/admission.hpp"

#include <boost/beast/websocket/rfc6455.hpp>
#include <charconv>
#include <exception>
#include <utility>

#include "persistence/store.hpp"
#include "persistence/written_seqs.hpp"
#include "protocol/json.hpp"
#include "web/http/flex_stream.hpp"
#include "web/http/log.hpp"
#include "web/http/query.hpp"
#include "web/http/routes.hpp"
#include "web/security/audit.hpp"
#include "web/security/security.hpp"
#include "web/stream/sse_session.hpp"
#include "web/stream/subscription.hpp"
#include "web/stream/websocket_handshake.hpp"
#include "web/stream/websocket_session.hpp"

namespace jobcast::web {

namespace {

using UpgradeRequest = boost::beast::http::request<boost::beast::http::string_body>;

HttpResponse invalid_request(const std::string& message) {
    return HttpResponse{400, "application/json", json::error_body("invalid_request", message), {}};
}

// A streaming connection's place under the per-owner limit; null after
// answering 429.
std::shared_ptr<void> acquire_slot(StreamDoor& door,
                                   const std::shared_ptr<SecurityContext>& security,
                                   const HttpRequest& request, std::string_view transport) {
    if (!security) return std::make_shared<int>(0);
    auto acquired = security->acquire_connection(request.owner, door.remote(), transport);
    if (!acquired.slot) door.send(too_many_connections(acquired.limit));
    return acquired.slot;
}

void admit_websocket(const std::shared_ptr<StreamDoor>& door,
                     const std::shared_ptr<StreamingContext>& streaming,
                     const std::shared_ptr<SecurityContext>& security, HttpRequest& request,
                     UpgradeRequest& message) {
    if (!boost::beast::websocket::is_upgrade(message)) {
        return door->send(
            HttpResponse{426,
                         "application/json",
                         json::error_body("upgrade_required", "GET /v1/ws is a WebSocket"),
                         {{"Upgrade", "websocket"}}});
    }
    if (auto refused = refuse_websocket_upgrade(request)) return door->send(std::move(*refused));
    if (auto denied = door->authenticate(request)) return door->send(std::move(*denied));
    auto slot = acquire_slot(*door, security, request, "websocket");
    if (!slot) return;
    door->hand_over(101, [&](FlexStream&& stream) {
        auto session =
            start_websocket_session(std::move(stream), std::move(message), streaming, request.owner,
                                    door->remote(), request.auth_valid_until, request.grant);
        session->hold(std::move(slot));
        return session;
    });
}

// The job must exist and be the caller's: a store read, off the I/O thread.
// With it, how far its log is written (cluster mode: maybe past what this
// broker can show yet; the stream reads that far before going live).
void start_sse(const std::shared_ptr<StreamDoor>& door,
               const std::shared_ptr<StreamingContext>& streaming,
               const std::shared_ptr<SecurityContext>& security, HttpRequest request,
               std::string job, std::uint64_t after, bool ui_message) {
    bool queued = streaming->run_blocking([door, streaming, security, request = std::move(request),
                                           job, after, ui_message] {
        std::optional<Job> found;
        std::uint64_t written = 0;
        try {
            found = streaming->jobs.get(job);
            if (found) written = store::written_seq(streaming->jobs, job);
        } catch (const std::exception& e) {
            log().error("sse job lookup failed job={} error={}", audit_quote(job),
                        audit_quote(e.what()));
        }
        door->resume([door, streaming, security, request, job, after, ui_message, found, written] {
            if (!found || found->owner != request.owner) {
                return door->send(HttpResponse{
                    404, "application/json", json::error_body("not_found", "no such job"), {}});
            }
            if (after_beyond_log(*found, after, written)) {
                return door->send(invalid_request("after=" + std::to_string(after) +
                                                  " is beyond the job's last seq " +
                                                  std::to_string(found->last_seq)));
            }
            if (stream_already_ended(*found, after, written)) {
                // EventSource reconnects whenever a stream ends; 204 is what
                // makes it stop. The client has every event up to the last.
                return door->send(HttpResponse{204, "", "", {}});
            }
            auto slot = acquire_slot(*door, security, request, "sse");
            if (!slot) return;
            door->hand_over(200, [&](FlexStream&& stream) {
                std::vector<std::pair<std::string, std::string>> headers;
                if (const auto& origin = door->cors_origin()) {
                    headers = {{"Access-Control-Allow-Origin", *origin}, {"Vary", "Origin"}};
                }
                std::optional<client_api::UiMessageStream> ui;
                // A resumed stream names the part it resumes in after the
                // job's attempt now (its first state event corrects it).
                if (ui_message) ui.emplace(job, after, found->attempt);
                auto session =
                    start_sse_session(std::move(stream), streaming, request.owner, door->remote(),
                                      job, after, request.auth_valid_until, std::move(headers),
                                      std::move(ui), request.grant, written);
                session->hold(std::move(slot));
                return session;
            });
        });
    });
    if (!queued) {
        door->send(HttpResponse{503,
                                "application/json",
                                json::error_body("busy", "the broker is busy; try again"),
                                {{"Retry-After", "1"}}});
    }
}

}  // namespace

bool admit_stream(const std::shared_ptr<StreamDoor>& door,
                  const std::shared_ptr<StreamingContext>& streaming,
                  const std::shared_ptr<SecurityContext>& security, HttpRequest& request,
                  UpgradeRequest& message) {
    std::string_view target = request.target;
    std::string_view path = target.substr(0, target.find('?'));
    if (path == "/v1/ws") {
        admit_websocket(door, streaming, security, request, message);
        return true;
    }
    auto accept = request.header("Accept");
    if (!accept || accept->find("text/event-stream") == std::string_view::npos) return false;
    auto match = match_route(path);
    if (!match || match->route != Route::job_events || request.method != "GET") return false;

    if (auto denied = door->authenticate(request)) {
        door->send(std::move(*denied));
        return true;
    }
    // Where to start: EventSource sends Last-Event-ID when it reconnects; a
    // first connection may say ?after=N. ?format=ui-message asks for the AI
    // SDK's UI message stream.
    std::optional<std::string> after_text;
    bool ui_message = false;
    if (auto q = target.find('?'); q != std::string_view::npos) {
        auto query = QueryParams::parse(target.substr(q + 1));
        if (!query) {
            door->send(invalid_request("malformed query string"));
            return true;
        }
        if (auto value = query->get("after")) after_text = std::string(*value);
        if (auto format = query->get("format")) {
            if (*format != "ui-message") {
                door->send(invalid_request("format must be ui-message (or absent)"));
                return true;
            }
            ui_message = true;
        }
    }
    if (auto last = request.header("Last-Event-ID"); last && !last->empty()) {
        after_text = std::string(*last);
    }
    std::uint64_t after = 0;
    if (after_text) {
        auto [end, ec] =
            std::from_chars(after_text->data(), after_text->data() + after_text->size(), after);
        if (ec != std::errc{} || end != after_text->data() + after_text->size()) {
            door->send(invalid_request("after / Last-Event-ID must be a non-negative integer"));
            return true;
        }
    }
    start_sse(door, streaming, security, std::move(request), match->job_id, after, ui_message);
    return true;
}

}  // namespace jobcast::web
