#include "cli/params.hpp"

#include <boost/json/parse.hpp>

#include "cli/errors.hpp"

namespace jobcast::cli {
namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

boost::json::value parse_param_value(const std::string& value) {
    // JSON allows surrounding whitespace, but " 5" typed on a command line is
    // text with a space in it, not the number 5.
    if (value.empty() || is_space(value.front()) || is_space(value.back())) {
        return boost::json::string(value);
    }
    boost::system::error_code ec;
    auto parsed = boost::json::parse(value, ec);
    if (ec) return boost::json::string(value);
    return parsed;
}

boost::json::object parse_params(const std::vector<std::string>& arguments) {
    boost::json::object params;
    for (const auto& argument : arguments) {
        const auto equals = argument.find('=');
        if (equals == std::string::npos) {
            throw UsageError("expected key=value, got '" + argument + "'");
        }
        const auto key = argument.substr(0, equals);
        if (key.empty()) throw UsageError("missing key before '=' in '" + argument + "'");
        if (params.contains(key)) throw UsageError("param '" + key + "' is given twice");
        params[key] = parse_param_value(argument.substr(equals + 1));
    }
    return params;
}

}  // namespace jobcast::cli
