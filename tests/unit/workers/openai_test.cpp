// The openai backend against a tiny in-test HTTP server, plus its pure parts.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <functional>
#include <mutex>
#include <thread>

#include "workers/jobs/jobs.hpp"
#include "workers/jobs/openai.hpp"
#include "workers/jobs/sse.hpp"
#include "workers/testing.hpp"

#include "handler_test_support.hpp"

using namespace jobcast::worker;
using jobcast::EventKind;
using testing::token_texts;

namespace {

// Accepts connections on 127.0.0.1:<ephemeral>, reads one request each and
// lets `respond` write the answer on the raw socket.
class FakeHttpServer {
  public:
    using Respond = std::function<void(int fd, const std::string& request)>;

    explicit FakeHttpServer(Respond respond) : respond_(std::move(respond)) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = 0;
        REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(listen_fd_, 8) == 0);
        socklen_t length = sizeof address;
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeHttpServer() {
        stop_ = true;
        thread_.join();
        ::close(listen_fd_);
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::string last_request() const {
        std::lock_guard lock(mutex_);
        return last_request_;
    }
    std::atomic<bool> stop_{false};

  private:
    void serve() {
        while (!stop_) {
            pollfd p{listen_fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            std::string request;
            char buffer[4096];
            std::size_t needed = std::string::npos;
            while (request.size() < needed) {
                pollfd q{fd, POLLIN, 0};
                if (::poll(&q, 1, 2000) <= 0) break;
                const auto n = ::read(fd, buffer, sizeof buffer);
                if (n <= 0) break;
                request.append(buffer, static_cast<std::size_t>(n));
                const auto end = request.find("\r\n\r\n");
                if (end != std::string::npos && needed == std::string::npos) {
                    const auto at = request.find("Content-Length: ");
                    const std::size_t body =
                        at == std::string::npos ? 0 : std::stoul(request.substr(at + 16));
                    needed = end + 4 + body;
                }
            }
            {
                std::lock_guard lock(mutex_);
                last_request_ = request;
            }
            respond_(fd, request);
            ::close(fd);
        }
    }

    Respond respond_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::thread thread_;
    mutable std::mutex mutex_;
    std::string last_request_;
};

void write_all(int fd, const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
        const auto n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n <= 0) return;
        done += static_cast<std::size_t>(n);
    }
}

std::string sse_delta(const std::string& content) {
    return "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
           "\"delta\":{\"content\":" +
           boost::json::serialize(boost::json::value(content)) + "},\"finish_reason\":null}]}\n\n";
}

JobOutcome generate(RecordingSink& sink, const std::string& base_url, const std::string& params) {
    jobs::LlmOptions options;
    options.openai.base_url = base_url;
    options.openai.model = "fake-model";
    options.openai.api_key = "sk-test";
    JobContext context(JobSpec{"j", 1, "llm.generate", params, ""}, sink);
    return invoke_handler(jobs::llm_handler(options), context);
}

}  // namespace

TEST_CASE("SseParser splits events across reads and line endings") {
    jobs::SseParser parser;
    std::vector<std::string> events;
    const auto on_event = [&](std::string_view data) { events.emplace_back(data); };
    parser.feed("data: one\n\nda", on_event);
    parser.feed("ta: two\r\n\r\n: comment\n\nevent: x\ndata:three\ndata: more\n", on_event);
    parser.feed("\nid: 5\ndata: [DONE]", on_event);
    CHECK(events == std::vector<std::string>{"one", "two", "three\nmore"});
    parser.finish(on_event);
    CHECK(events.back() == "[DONE]");
}

TEST_CASE("parse_chat_chunk reads the delta content, [DONE] and errors") {
    CHECK(jobs::parse_chat_chunk("[DONE]").done);
    CHECK(jobs::parse_chat_chunk(R"({"choices":[{"delta":{"content":"Hi"}}]})").content == "Hi");
    CHECK(
        jobs::parse_chat_chunk(R"({"choices":[{"delta":{"role":"assistant"}}]})").content.empty());
    CHECK(jobs::parse_chat_chunk(R"({"choices":[]})").content.empty());
    CHECK(jobs::parse_chat_chunk(R"({"error":{"message":"overloaded"}})").error == "overloaded");
    CHECK_THROWS(jobs::parse_chat_chunk("not json"));
}

TEST_CASE("parse_base_url and the completions target") {
    auto base = jobs::parse_base_url("https://api.openai.com");
    REQUIRE(base);
    CHECK(base->tls);
    CHECK(base->host == "api.openai.com");
    CHECK(base->port == "443");
    CHECK(jobs::chat_completions_target(*base) == "/v1/chat/completions");
    base = jobs::parse_base_url("http://127.0.0.1:8000/v1/");
    REQUIRE(base);
    CHECK_FALSE(base->tls);
    CHECK(base->port == "8000");
    CHECK(jobs::chat_completions_target(*base) == "/v1/chat/completions");
    base = jobs::parse_base_url("http://[::1]:9000/proxy");
    REQUIRE(base);
    CHECK(base->host == "::1");
    CHECK(jobs::chat_completions_target(*base) == "/proxy/v1/chat/completions");
    CHECK_FALSE(jobs::parse_base_url("ftp://x"));
    CHECK_FALSE(jobs::parse_base_url("http://"));
    CHECK_FALSE(jobs::parse_base_url("http://host:port"));
    CHECK_FALSE(jobs::parse_base_url("http://user@host"));
}

TEST_CASE("openai backend relays each streamed delta as a token") {
    const std::vector<std::string> pieces = {"Hello", ",", " wörld", "!"};
    const bool chunked = GENERATE(false, true);
    FakeHttpServer server([&](int fd, const std::string&) {
        std::string body = ": keep-alive\n\n";
        body += "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n";
        for (const auto& p : pieces)
            body += sse_delta(p);
        body += "data: [DONE]\n\n";
        if (chunked) {
            write_all(fd,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n");
            for (std::size_t at = 0; at < body.size(); at += 50) {
                const auto part = body.substr(at, 50);
                char size[16];
                std::snprintf(size, sizeof size, "%zx\r\n", part.size());
                write_all(fd, size + part + "\r\n");
            }
            write_all(fd, "0\r\n\r\n");
        } else {
            write_all(fd,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Connection: close\r\n\r\n" +
                          body);
        }
    });
    RecordingSink sink;
    auto outcome =
        generate(sink, server.url(), R"({"backend":"openai","prompt":"Say hi","max_tokens":12})");
    REQUIRE(std::holds_alternative<std::string>(outcome));
    CHECK(token_texts(sink) == pieces);
    const auto result = boost::json::parse(std::get<std::string>(outcome)).as_object();
    CHECK(result.at("text").as_string() == "Hello, wörld!");
    CHECK(result.at("tokens").to_number<int>() == 4);

    const auto request = server.last_request();
    CHECK(request.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"));
    CHECK(request.find("Authorization: Bearer sk-test\r\n") != std::string::npos);
    const auto body = boost::json::parse(request.substr(request.find("\r\n\r\n") + 4)).as_object();
    CHECK(body.at("model").as_string() == "fake-model");
    CHECK(body.at("stream").as_bool());
    CHECK(body.at("max_tokens").to_number<int>() == 12);
    CHECK(body.at("messages").at(0).at("content").as_string() == "Say hi");
    CHECK(body.at("messages").at(0).at("role").as_string() == "user");
}

TEST_CASE("openai backend maps HTTP errors to failures") {
    const int status = GENERATE(401, 429, 500, 503);
    FakeHttpServer server([&](int fd, const std::string&) {
        const std::string body = R"({"error":{"message":"nope from server"}})";
        write_all(fd, "HTTP/1.1 " + std::to_string(status) +
                          " X\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body);
    });
    RecordingSink sink;
    auto outcome = generate(sink, server.url(), R"({"backend":"openai","prompt":"x"})");
    REQUIRE(std::holds_alternative<Failure>(outcome));
    const auto& failure = std::get<Failure>(outcome);
    CHECK(std::string(failure.what()).find("HTTP " + std::to_string(status)) != std::string::npos);
    CHECK(std::string(failure.what()).find("nope from server") != std::string::npos);
    CHECK(failure.retryable() == (status != 401));
    CHECK(sink.events(EventKind::token).empty());
}

TEST_CASE("openai backend: an unreachable endpoint is a retryable failure") {
    int port = 0;
    {
        FakeHttpServer server([](int, const std::string&) {});
        port = std::stoi(server.url().substr(server.url().rfind(':') + 1));
    }  // closed: nothing listens there now
    RecordingSink sink;
    auto outcome = generate(sink, "http://127.0.0.1:" + std::to_string(port),
                            R"({"backend":"openai","prompt":"x"})");
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK(std::get<Failure>(outcome).retryable());
}

TEST_CASE("openai backend stops streaming when the job is cancelled") {
    std::atomic<bool> release{false};
    FakeHttpServer server([&](int fd, const std::string&) {
        write_all(fd,
                  "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Connection: close\r\n\r\n" +
                      sse_delta("first"));
        // Then silence until the test is over.
        for (int i = 0; i < 400 && !release; ++i) {
            pollfd p{fd, POLLIN, 0};
            ::poll(&p, 1, 25);
        }
    });
    RecordingSink sink;
    jobs::LlmOptions options;
    options.openai.base_url = server.url();
    JobContext context(JobSpec{"j", 1, "llm.generate", R"({"backend":"openai","prompt":"x"})", ""},
                       sink);
    const auto started = std::chrono::steady_clock::now();
    auto outcome = testing::run_cancelled_after(jobs::llm_handler(options), context, sink, 1);
    release = true;
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK(std::string(std::get<Failure>(outcome).what()) == "cancelled");
    CHECK(token_texts(sink) == std::vector<std::string>{"first"});
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds{5});
}

TEST_CASE("openai backend sends a chat's messages as they are, and the sim takes the last user's") {
    FakeHttpServer server([&](int fd, const std::string&) {
        write_all(fd,
                  "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  "Connection: close\r\n\r\n" +
                      sse_delta("ok") + "data: [DONE]\n\n");
    });
    RecordingSink sink;
    const std::string messages =
        R"([{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},)"
        R"({"role":"assistant","content":"Hello!"},{"role":"user","content":"Tides?"}])";
    auto outcome = generate(sink, server.url(),
                            R"({"backend":"openai","max_tokens":5,"messages":)" + messages + "}");
    REQUIRE(std::holds_alternative<std::string>(outcome));
    const auto request = server.last_request();
    const auto body = boost::json::parse(request.substr(request.find("\r\n\r\n") + 4)).as_object();
    CHECK(body.at("messages") == boost::json::parse(messages));

    const auto chat = jobs::chat_messages(R"({"messages":)" + messages + "}");
    CHECK(chat.last_user == "Tides?");
    CHECK(boost::json::parse(chat.json) == boost::json::parse(messages));
    CHECK(jobs::chat_messages(R"({"prompt":"x"})").json.empty());
}
