// Text for people: pretty JSON (`jobcast get`), the job table (`jobcast
// list`) and the message of an HTTP error. Pure.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace jobcast::cli {

// Two-space indented JSON, keys in the server's order, ending in a newline.
std::string pretty_json(const boost::json::value& value);

// unix ms -> "2024-05-01 12:00:03" (the caller picks the time zone).
using TimeFormatter = std::function<std::string(std::int64_t unix_ms)>;
TimeFormatter local_time_formatter();

// ID  TYPE  STATE  PROGRESS  CREATED, one job per line, columns aligned.
std::string job_table(const boost::json::array& jobs, const TimeFormatter& format_time);

// The server's {"error":{"code","message"}} message, else the body's first
// line (cut short), else "HTTP <status>".
std::string http_error_message(int status, std::string_view body);

}  // namespace jobcast::cli
