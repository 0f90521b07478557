// `jobcast submit TYPE key=value...`: the job's params object from the
// key=value arguments. Pure.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <vector>

namespace jobcast::cli {

// Each argument is KEY=VALUE, split at the first '='. A VALUE that is valid
// JSON as a whole (a number, true/false, null, an array, an object, a quoted
// string) is taken as that JSON value; anything else is a plain string, so
//   prompt="hello world" max_tokens=50 args='["-c","echo hi"]' flag=true
// gives {"prompt":"hello world","max_tokens":50,"args":["-c","echo hi"],"flag":true}
// (the shell removes the quotes around hello world). To pass the string
// "true" or "50", quote it for JSON too: flag='"true"'.
// Throws UsageError for an argument without '=', an empty key or a key given twice.
boost::json::object parse_params(const std::vector<std::string>& arguments);

// VALUE as parse_params reads it.
boost::json::value parse_param_value(const std::string& value);

}  // namespace jobcast::cli
