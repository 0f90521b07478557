// OpenAI-compatible streaming client. It runs on the handler's own thread: an
// io_context private to the call, driven in short run_for() slices so that a
// cancel (checked between slices) closes the socket and ends the request.
#include "workers/jobs/openai.hpp"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <optional>

#include "workers/jobs/sse.hpp"
#include "workers/log.hpp"
#include "workers/text.hpp"

namespace jobcast::worker::jobs {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr std::size_t kMaxErrorBody = 64 * 1024;

// Everything one request needs, declared so that the io_context outlives the
// streams that use it.
struct Session {
    asio::io_context ioc;
    ssl::context tls{ssl::context::tls_client};
    std::optional<beast::tcp_stream> plain;
    std::optional<beast::ssl_stream<beast::tcp_stream>> secure;

    beast::tcp_stream* lowest() {
        if (plain) return &*plain;
        if (secure) return &beast::get_lowest_layer(*secure);
        return nullptr;
    }
};

struct Collected {
    int status = 0;
    std::string text;
    std::int64_t tokens = 0;
    bool done = false;  // "[DONE]" seen
    std::string stream_error;
    std::string error_body;
};

std::string error_message_from_body(const std::string& body) {
    boost::system::error_code ec;
    const auto value = boost::json::parse(body, ec);
    if (!ec && value.is_object()) {
        if (const auto* error = value.get_object().if_contains("error")) {
            if (const auto* o = error->if_object()) {
                if (const auto* m = o->if_contains("message"); m && m->is_string()) {
                    return std::string(m->get_string());
                }
            }
            if (error->is_string()) return std::string(error->get_string());
        }
    }
    return body.substr(0, 300);
}

template <class Stream>
asio::awaitable<void> exchange(Stream& stream, beast::tcp_stream& lowest,
                               http::request<http::string_body>& request,
                               const OpenAiOptions& options, JobContext& context, Collected& out) {
    lowest.expires_after(options.read_timeout);
    co_await http::async_write(stream, request, asio::use_awaitable);

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);  // a stream; the SSE parser bounds each event
    co_await http::async_read_header(stream, buffer, parser, asio::use_awaitable);
    out.status = static_cast<int>(parser.get().result_int());
    const bool ok = out.status >= 200 && out.status < 300;

    SseParser sse;
    const auto on_event = [&](std::string_view data) {
        if (out.done) return;
        const auto chunk = parse_chat_chunk(data);
        if (chunk.done) {
            out.done = true;
        } else if (!chunk.error.empty()) {
            out.stream_error = chunk.error;
            out.done = true;
        } else if (!chunk.content.empty()) {
            out.text += chunk.content;
            ++out.tokens;
            context.token(chunk.content);
        }
    };

    char chunk[8192];
    while (!parser.is_done() && !out.done) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        lowest.expires_after(options.read_timeout);
        auto [ec, ignored] = co_await http::async_read_some(stream, buffer, parser,
                                                            asio::as_tuple(asio::use_awaitable));
        if (ec == http::error::need_buffer) ec = {};
        const std::size_t got = sizeof chunk - parser.get().body().size;
        if (got > 0) {
            const std::string_view bytes(chunk, got);
            if (ok) {
                sse.feed(bytes, on_event);
            } else if (out.error_body.size() < kMaxErrorBody) {
                out.error_body.append(bytes.substr(0, kMaxErrorBody - out.error_body.size()));
            }
        }
        if (ec) throw beast::system_error(ec);
    }
    if (ok && !out.done) sse.finish(on_event);
}

asio::awaitable<void> request_completion(Session& session, const BaseUrl& base,
                                         http::request<http::string_body>& request,
                                         const OpenAiOptions& options, JobContext& context,
                                         Collected& out) {
    tcp::resolver resolver(session.ioc);
    const auto endpoints =
        co_await resolver.async_resolve(base.host, base.port, asio::use_awaitable);
    if (!base.tls) {
        auto& stream = session.plain.emplace(session.ioc);
        stream.expires_after(options.connect_timeout);
        co_await stream.async_connect(endpoints, asio::use_awaitable);
        stream.socket().set_option(tcp::no_delay(true));
        co_await exchange(stream, stream, request, options, context, out);
        co_return;
    }
    auto& stream = session.secure.emplace(session.ioc, session.tls);
    if (!SSL_set_tlsext_host_name(stream.native_handle(), base.host.c_str())) {
        throw beast::system_error(beast::error_code(static_cast<int>(::ERR_get_error()),
                                                    asio::error::get_ssl_category()));
    }
    stream.set_verify_callback(ssl::host_name_verification(base.host));
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_after(options.connect_timeout);
    co_await lowest.async_connect(endpoints, asio::use_awaitable);
    lowest.socket().set_option(tcp::no_delay(true));
    co_await stream.async_handshake(ssl::stream_base::client, asio::use_awaitable);
    co_await exchange(stream, lowest, request, options, context, out);
}

}  // namespace

ChatMessages chat_messages(std::string_view params_json) {
    ChatMessages out;
    boost::system::error_code ec;
    const boost::json::value params = boost::json::parse(params_json, ec);
    const auto* object = ec ? nullptr : params.if_object();
    const auto* found = object ? object->if_contains("messages") : nullptr;
    const auto* messages = found ? found->if_array() : nullptr;
    if (messages == nullptr) return out;
    out.json = boost::json::serialize(*messages);
    for (const auto& message : *messages) {
        const auto* m = message.if_object();
        if (m == nullptr) continue;
        const auto* role = m->if_contains("role");
        const auto* content = m->if_contains("content");
        if (role && role->is_string() && role->get_string() == "user" && content &&
            content->is_string()) {
            out.last_user = content->get_string();
        }
    }
    return out;
}

std::string chat_completions_target(const BaseUrl& base) {
    if (base.path.ends_with("/v1")) return base.path + "/chat/completions";
    return base.path + "/v1/chat/completions";
}

std::string openai_generate(JobContext& context, const OpenAiOptions& options,
                            const ChatRequest& chat) {
    const auto base = parse_base_url(options.base_url);
    if (!base) throw Failure("openai: invalid base URL '" + options.base_url + "'", false);
    if (chat.model.empty()) throw Failure("openai: no model configured", false);

    boost::json::object body;
    body["model"] = chat.model;
    if (chat.messages.empty()) {
        body["messages"] =
            boost::json::array{boost::json::object{{"role", "user"}, {"content", chat.prompt}}};
    } else {
        body["messages"] = boost::json::parse(chat.messages);
    }
    body["stream"] = true;
    body["max_tokens"] = chat.max_tokens;

    http::request<http::string_body> request{http::verb::post, chat_completions_target(*base), 11};
    request.set(http::field::host, base->authority());
    request.set(http::field::user_agent, "jobcast-worker/" JOBCAST_VERSION);
    request.set(http::field::content_type, "application/json");
    request.set(http::field::accept, "text/event-stream");
    if (!options.api_key.empty()) {
        request.set(http::field::authorization, "Bearer " + options.api_key);
    }
    request.body() = boost::json::serialize(body);
    request.prepare_payload();

    // Declared before the session: a coroutine frame still pending at a cancel
    // is destroyed with the io_context and must not outlive what it refers to.
    Collected out;
    bool finished = false;
    std::exception_ptr error;
    Session session;
    if (base->tls) {
        session.tls.set_default_verify_paths();
        session.tls.set_verify_mode(ssl::verify_peer);
    }
    asio::co_spawn(session.ioc, request_completion(session, *base, request, options, context, out),
                   [&](std::exception_ptr e) {
                       error = e;
                       finished = true;
                   });
    bool cancelled = false;
    while (!finished) {
        session.ioc.run_for(std::chrono::milliseconds{100});
        if (finished) break;
        if (context.cancelled() && !cancelled) {
            cancelled = true;
            if (auto* lowest = session.lowest()) lowest->close();
            session.ioc.stop();
            break;
        }
        if (session.ioc.stopped()) session.ioc.restart();
    }
    if (cancelled) throw Failure("cancelled", false);

    if (error) {
        try {
            std::rethrow_exception(error);
        } catch (const Failure&) {
            throw;
        } catch (const std::exception& e) {
            // Network trouble (refused, reset, timeout, TLS): another attempt may work.
            throw Failure(std::string("openai: ") + e.what(), true);
        }
    }
    if (out.status < 200 || out.status >= 300) {
        const bool retryable = out.status == 429 || out.status >= 500;
        throw Failure("openai: HTTP " + std::to_string(out.status) + ": " +
                          sanitize_utf8(error_message_from_body(out.error_body)),
                      retryable);
    }
    if (!out.stream_error.empty()) {
        throw Failure("openai: " + sanitize_utf8(out.stream_error), true);
    }
    std::string result = "{\"text\":";
    append_json_string(result, out.text);
    result += ",\"tokens\":" + std::to_string(out.tokens) + "}";
    return result;
}

}  // namespace jobcast::worker::jobs
