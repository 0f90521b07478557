#include "bench/common/http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "bench/common/process.hpp"

namespace jobcast::bench {

HttpResponse HttpClient::request(const std::string& method, const std::string& target,
                                 const std::string& body) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + host_ + ":" +
                      std::to_string(port_) + "\r\n";
    if (!body.empty() || method == "POST") {
        req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\n";
    }
    req += "\r\n";
    req += body;
    for (int attempt = 0;; ++attempt) {
        try {
            if (fd_ < 0) connect();
            write_all(req);
            return read_response();
        } catch (const std::exception&) {
            close();
            if (attempt >= 1) throw;
        }
    }
}

void HttpClient::connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail(std::string("socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    if (::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr) != 1) fail("bad host " + host_);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        fail(std::string("connect: ") + std::strerror(errno));
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    buffer_.clear();
}

void HttpClient::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
}

void HttpClient::write_all(const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
        const auto n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail(std::string("send: ") + std::strerror(errno));
        done += static_cast<std::size_t>(n);
    }
}

void HttpClient::fill() {
    char chunk[65536];
    for (;;) {
        const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(std::string("recv: ") + std::strerror(errno));
        if (n == 0) fail("connection closed");
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return;
    }
}

std::string HttpClient::take_line() {
    std::size_t at;
    while ((at = buffer_.find("\r\n")) == std::string::npos)
        fill();
    std::string line = buffer_.substr(0, at);
    buffer_.erase(0, at + 2);
    return line;
}

std::string HttpClient::take(std::size_t n) {
    while (buffer_.size() < n)
        fill();
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return out;
}

HttpResponse HttpClient::read_response() {
    HttpResponse r;
    const std::string status = take_line();
    if (status.rfind("HTTP/1.", 0) != 0 || status.size() < 12) fail("bad status: " + status);
    r.status = std::atoi(status.c_str() + 9);
    std::optional<std::size_t> length;
    bool chunked = false, close_after = false;
    for (;;) {
        std::string line = take_line();
        if (line.empty()) break;
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        std::string lower = value;
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        if (name == "content-length") length = std::stoull(value);
        if (name == "transfer-encoding" && lower.find("chunked") != std::string::npos) {
            chunked = true;
        }
        if (name == "connection" && lower.find("close") != std::string::npos) {
            close_after = true;
        }
    }
    if (chunked) {
        for (;;) {
            const std::size_t n = std::stoull(take_line(), nullptr, 16);
            if (n == 0) {
                while (!take_line().empty()) {
                }
                break;
            }
            r.body += take(n);
            take_line();
        }
    } else if (length) {
        r.body = take(*length);
    }
    if (close_after) close();
    return r;
}

}  // namespace jobcast::bench
