// HTTP requests and the WebSocket connection to the broker, over plain TCP or,
// when built with JOBCAST_CLI_TLS (the default), TLS (https:// URLs). All of Boost.Beast and Asio
// stays in transport.cpp: it is the one slow file to compile.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/message_stream.hpp"
#include "cli/url.hpp"

namespace jobcast::cli {

struct TransportConfig {
    ServerUrl url;
    std::string token;  // sent as "Authorization: Bearer"; on the WebSocket also ?access_token=
    // https: the PEM file of the CA (or self-signed certificate) to trust
    // instead of the system's store.
    std::string ca_file;
    std::chrono::milliseconds connect_timeout{10'000};  // resolve + TCP + TLS + WS handshake
    std::chrono::milliseconds request_timeout{30'000};  // each HTTP read or write
    // WebSocket: a ping goes out after half of this without traffic; no answer
    // by the end of it means the connection is dead (a silent network drop).
    std::chrono::milliseconds idle_timeout{20'000};
};

struct HttpResponse {
    int status = 0;
    std::string body;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// One request on its own connection (the CLI makes one or two per run).
// `target` is a path from the URL's base path on, e.g. "/v1/jobs?limit=5".
// A JSON `body` is sent with Content-Type application/json.
// Throws ConnectionError; an HTTP error status is a normal response.
HttpResponse http_request(const TransportConfig& config, std::string_view method,
                          const std::string& target, const std::string& body = {},
                          const HttpHeaders& headers = {});

// Connects to GET /v1/ws.
std::unique_ptr<Connector> websocket_connector(TransportConfig config);

// Whether this build speaks https:// (cmake -DJOBCAST_CLI_TLS=ON).
bool tls_supported();

}  // namespace jobcast::cli
