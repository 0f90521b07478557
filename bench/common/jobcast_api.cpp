#include "bench/common/jobcast_api.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "bench/common/process.hpp"
#include "bench/common/scan.hpp"

namespace jobcast::bench {

namespace http = boost::beast::http;

namespace {

struct HttpResult {
    int status = 0;
    std::string body;
};

HttpResult http_request(const tcp::endpoint& ep, http::verb method, const std::string& target,
                        const std::string& body = {}) {
    boost::asio::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect(ep);
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, ep.address().to_string() + ":" + std::to_string(ep.port()));
    if (method == http::verb::post) {
        req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
    }
    http::write(socket, req);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    boost::beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    return {static_cast<int>(res.result_int()), std::move(res.body())};
}

}  // namespace

std::string JobcastApi::submit(const std::string& type, const std::string& params) const {
    auto r = http_request(ep_, http::verb::post, "/v1/jobs",
                          R"({"type":")" + type + R"(","params":)" + params + "}");
    if (r.status != 201) fail("POST /v1/jobs answered " + std::to_string(r.status) + ": " + r.body);
    auto id = json_string(r.body, "id");
    if (id.empty()) fail("no job id in " + r.body);
    return id;
}

std::string JobcastApi::job(const std::string& id) const {
    auto r = http_request(ep_, http::verb::get, "/v1/jobs/" + id);
    if (r.status != 200) fail("GET /v1/jobs/" + id + " answered " + std::to_string(r.status));
    return r.body;
}

void JobcastApi::cancel(const std::string& id) const {
    http_request(ep_, http::verb::post, "/v1/jobs/" + id + "/cancel", "{}");
}

Metrics JobcastApi::metrics() const {
    return parse_metrics(http_request(ep_, http::verb::get, "/metrics").body);
}

}  // namespace jobcast::bench
