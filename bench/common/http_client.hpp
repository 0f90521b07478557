// A blocking HTTP/1.1 client on plain POSIX sockets, for the ingest bench's
// submitters and /metrics polls.
#pragma once

#include <string>

namespace jobcast::bench {

struct HttpResponse {
    int status = 0;
    std::string body;
};

// Blocking HTTP/1.1 with keep-alive over one TCP connection; reconnects once
// when the server closed an idle connection.
class HttpClient {
  public:
    HttpClient(std::string host, int port) : host_(std::move(host)), port_(port) {}
    ~HttpClient() { close(); }
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    HttpResponse request(const std::string& method, const std::string& target,
                         const std::string& body = {});

  private:
    void connect();
    void close();
    void write_all(const std::string& data);
    void fill();
    std::string take_line();  // up to CRLF, consumed
    std::string take(std::size_t n);
    HttpResponse read_response();

    std::string host_;
    int port_;
    int fd_ = -1;
    std::string buffer_;
};

}  // namespace jobcast::bench
