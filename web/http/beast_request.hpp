// Internal to the web module: a parsed Beast request as the module's own
// HttpRequest value. The server's sessions and the HTTP fuzzer
// (tests/fuzz/fuzz_http_request.cpp) share it, so what is fuzzed is what runs.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "web/http/http_message.hpp"

namespace jobcast::web {

// Method, target, headers (repeated fields joined with ", ", RFC 9110 5.3) and
// the body, which is moved out of `message`; remote and owner are left to the caller.
HttpRequest to_http_request(boost::beast::http::request<boost::beast::http::string_body>& message);

}  // namespace jobcast::web
