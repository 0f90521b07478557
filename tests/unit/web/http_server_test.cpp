// The real HttpServer on 127.0.0.1:0, spoken to by a small synchronous Beast
// client: keep-alive, limits, malformed input, timeouts and stop().
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "test_support.hpp"
#include "web/http/http_server.hpp"

using namespace jobcast;
using namespace jobcast::web;
using namespace jobcast::web::test;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

namespace {

tcp::endpoint parse_endpoint(const std::string& text) {
    auto colon = text.rfind(':');
    return {net::ip::make_address(text.substr(0, colon)),
            static_cast<unsigned short>(std::stoi(text.substr(colon + 1)))};
}

class Client {
  public:
    explicit Client(const std::string& endpoint) : socket_(io_) {
        socket_.connect(parse_endpoint(endpoint));
    }

    http::response<http::string_body> request(http::verb method, const std::string& target,
                                              std::string body = {}, bool keep_alive = true) {
        http::request<http::string_body> request{method, target, 11};
        request.set(http::field::host, "127.0.0.1");
        request.keep_alive(keep_alive);
        if (!body.empty() || method == http::verb::post) {
            request.set(http::field::content_type, "application/json");
            request.body() = std::move(body);
        }
        request.prepare_payload();
        http::write(socket_, request);
        return read_response();
    }

    http::response<http::string_body> read_response() {
        http::response<http::string_body> response;
        http::read(socket_, buffer_, response);
        return response;
    }

    void write_raw(std::string_view bytes) { net::write(socket_, net::buffer(bytes)); }

    // True when the server closed the connection (EOF or reset) before `timeout`.
    bool closed_by_server(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        socket_.non_blocking(true);
        char byte;
        while (std::chrono::steady_clock::now() < deadline) {
            beast::error_code ec;
            std::size_t n = socket_.read_some(net::buffer(&byte, 1), ec);
            if (ec == net::error::would_block) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            if (ec) return true;
            (void)n;
        }
        return false;
    }

    tcp::socket& socket() { return socket_; }

  private:
    net::io_context io_;
    tcp::socket socket_;
    beast::flat_buffer buffer_;
};

struct ServerFixture : RestFixture {
    std::unique_ptr<HttpServer> server;

    explicit ServerFixture(HttpConfig config = small_config()) {
        server = std::make_unique<HttpServer>(config, [this](HttpRequest request, Reply reply) {
            api.handle(std::move(request), std::move(reply));
        });
        server->start();
    }
    ~ServerFixture() { server->stop(); }

    static HttpConfig small_config() {
        HttpConfig config;
        config.listen = "127.0.0.1:0";
        config.io_threads = 2;
        return config;
    }

    std::uint64_t count(std::string_view route, int code) const {
        for (const auto& entry : server->request_counts()) {
            if (entry.route == route && entry.code == code) return entry.count;
        }
        return 0;
    }
};

}  // namespace

TEST_CASE("HTTP round trip: two requests on one kept-alive connection", "[web][http]") {
    ServerFixture f;
    std::string endpoint = f.server->bound_endpoint();
    CHECK(endpoint.rfind("127.0.0.1:", 0) == 0);
    CHECK(endpoint != "127.0.0.1:0");

    Client client(endpoint);
    auto created = client.request(http::verb::post, "/v1/jobs", R"({"type":"research"})");
    REQUIRE(created.result_int() == 201);
    CHECK(created.keep_alive());
    CHECK(created[http::field::content_type] == "application/json");
    std::string id(boost::json::parse(created.body()).at("id").as_string());
    CHECK(created[http::field::location] == "/v1/jobs/" + id);

    auto read = client.request(http::verb::get, "/v1/jobs/" + id);  // same socket
    REQUIRE(read.result_int() == 200);
    CHECK(boost::json::parse(read.body()).at("state") == "queued");

    auto missing = client.request(http::verb::delete_, "/v1/jobs/" + id);
    CHECK(missing.result_int() == 405);
    CHECK(missing[http::field::allow] == "GET");

    // Counted by route template, never by raw path.
    CHECK(f.count("/v1/jobs", 201) == 1);
    CHECK(f.count("/v1/jobs/{id}", 200) == 1);
    CHECK(f.count("/v1/jobs/{id}", 405) == 1);
    for (const auto& entry : f.server->request_counts()) {
        CHECK(entry.route.find(id) == std::string::npos);
    }

    // Connection: close is honoured: the server closes after answering.
    auto last = client.request(http::verb::get, "/healthz", {}, false);
    CHECK(last.result_int() == 200);
    CHECK_FALSE(last.keep_alive());
    CHECK(client.closed_by_server(std::chrono::seconds(2)));
}

TEST_CASE("an oversize body gets 413 with a JSON error", "[web][http]") {
    HttpConfig config = ServerFixture::small_config();
    config.body_limit = 64 * 1024;
    ServerFixture f(config);

    SECTION("the whole body is sent") {
        Client client(f.server->bound_endpoint());
        // The server answers after the header; it must drain the rest instead of
        // resetting the connection, so the client gets to read the 413.
        std::string body =
            R"({"type":"research","params":{"x":")" + std::string(256 * 1024, 'a') + "\"}}";
        auto response = client.request(http::verb::post, "/v1/jobs", body);
        CHECK(response.result_int() == 413);
        CHECK(boost::json::parse(response.body()).at("error").at("code") == "payload_too_large");
        CHECK_FALSE(response.keep_alive());
    }
    SECTION("Expect: 100-continue lets the client skip sending it") {
        Client client(f.server->bound_endpoint());
        client.write_raw(
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n"
            "Expect: 100-continue\r\n\r\n");
        auto response = client.read_response();
        CHECK(response.result_int() == 413);
    }
    SECTION("a body within the limit after 100 Continue is accepted") {
        Client client(f.server->bound_endpoint());
        std::string body = R"({"type":"research"})";
        client.write_raw("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\nExpect: 100-continue\r\n\r\n");
        auto interim = client.read_response();
        CHECK(interim.result_int() == 100);
        client.write_raw(body);
        auto response = client.read_response();
        CHECK(response.result_int() == 201);
    }
    CHECK(f.count("/v1/jobs", 413) + f.count("/v1/jobs", 201) == 1);
}

TEST_CASE("an oversize header gets 431", "[web][http]") {
    ServerFixture f;
    Client client(f.server->bound_endpoint());
    client.write_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'b') +
                     "\r\n\r\n");
    auto response = client.read_response();
    CHECK(response.result_int() == 431);
    CHECK(f.count("malformed", 431) == 1);
}

TEST_CASE("a malformed request is refused and the server keeps serving", "[web][http]") {
    ServerFixture f;
    {
        Client client(f.server->bound_endpoint());
        client.write_raw("THIS IS NOT HTTP\r\n\r\n");
        http::response<http::string_body> response;
        beast::flat_buffer buffer;
        beast::error_code ec;
        http::read(client.socket(), buffer, response, ec);
        if (!ec) {
            CHECK(response.result_int() == 400);
            CHECK_FALSE(response.keep_alive());
        }  // else: closed without an answer, also acceptable
        CHECK(client.closed_by_server(std::chrono::seconds(3)));
    }
    {
        Client client(f.server->bound_endpoint());
        client.write_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n");
        auto response = client.read_response();
        CHECK(response.result_int() == 400);
    }
    Client next(f.server->bound_endpoint());
    auto response = next.request(http::verb::get, "/healthz");
    CHECK(response.result_int() == 200);
    CHECK(boost::json::parse(response.body()).at("status") == "ok");
}

TEST_CASE("a client that sends too slowly is disconnected", "[web][http]") {
    HttpConfig config = ServerFixture::small_config();
    config.read_timeout = std::chrono::milliseconds(300);
    ServerFixture f(config);

    Client slow(f.server->bound_endpoint());
    slow.write_raw("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // never finishes the header
    CHECK(slow.closed_by_server(std::chrono::seconds(3)));

    Client idle(f.server->bound_endpoint());
    CHECK(idle.request(http::verb::get, "/healthz").result_int() == 200);
    CHECK(idle.closed_by_server(std::chrono::seconds(3)));  // idle keep-alive ends too
}

TEST_CASE("stop() closes idle connections and answers in-flight requests", "[web][http]") {
    std::thread late_replier;
    std::mutex mutex;
    Reply held;
    HttpConfig config = ServerFixture::small_config();
    HttpServer server(config, [&](HttpRequest request, Reply reply) {
        if (request.target == "/slow") {
            std::lock_guard lock(mutex);
            held = std::move(reply);
            return;
        }
        reply(HttpResponse{200, "application/json", R"({"status":"ok"})", {}});
    });
    server.start();

    Client idle(server.bound_endpoint());
    CHECK(idle.request(http::verb::get, "/fast").result_int() == 200);

    Client busy(server.bound_endpoint());
    busy.write_raw("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 200; ++i) {
        {
            std::lock_guard lock(mutex);
            if (held) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // The in-flight request is answered from another thread while stop() waits.
    late_replier = std::thread([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        std::lock_guard lock(mutex);
        held(HttpResponse{200, "application/json", R"({"slow":true})", {}});
        held = nullptr;
    });
    auto started = std::chrono::steady_clock::now();
    server.stop();
    late_replier.join();
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(3));

    auto response = busy.read_response();
    CHECK(response.result_int() == 200);
    CHECK(response.body() == R"({"slow":true})");
    CHECK_FALSE(response.keep_alive());
    CHECK(idle.closed_by_server(std::chrono::seconds(1)));
}

TEST_CASE("each connection stays on one I/O thread, the connections taken in turn", "[web][http]") {
    std::mutex mutex;
    std::map<std::string, std::set<std::thread::id>> threads_of;  // by connection
    HttpServer server(ServerFixture::small_config(), [&](HttpRequest request, Reply reply) {
        {
            std::lock_guard lock(mutex);
            threads_of[request.target].insert(std::this_thread::get_id());
        }
        reply(HttpResponse{200, "application/json", R"({"status":"ok"})", {}});
    });
    server.start();

    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 3; ++i)
        clients.push_back(std::make_unique<Client>(server.bound_endpoint()));
    for (int round = 0; round < 20; ++round) {
        for (std::size_t i = 0; i < clients.size(); ++i) {
            auto response = clients[i]->request(http::verb::get, "/c" + std::to_string(i));
            REQUIRE(response.result_int() == 200);
        }
    }
    server.stop();

    std::lock_guard lock(mutex);
    REQUIRE(threads_of.size() == 3);
    for (const auto& [target, threads] : threads_of) {
        INFO(target);
        CHECK(threads.size() == 1);  // never handed to the other I/O thread
    }
    // Two I/O threads: the first and third connection share one, the second
    // has the other.
    CHECK(threads_of["/c0"] != threads_of["/c1"]);
    CHECK(threads_of["/c0"] == threads_of["/c2"]);
}
