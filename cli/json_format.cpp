#include "cli/json_format.hpp"

#include <time.h>

#include <algorithm>
#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <vector>

namespace jobcast::cli {
namespace {

namespace json = boost::json;

void pretty(const json::value& value, std::string& out, int depth) {
    const auto indent = [&](int level) { out.append(static_cast<std::size_t>(level) * 2, ' '); };
    if (value.is_object()) {
        const auto& object = value.get_object();
        if (object.empty()) {
            out += "{}";
            return;
        }
        out += "{\n";
        bool first = true;
        for (const auto& [key, member] : object) {
            if (!first) out += ",\n";
            first = false;
            indent(depth + 1);
            out += json::serialize(json::string_view(key));
            out += ": ";
            pretty(member, out, depth + 1);
        }
        out += '\n';
        indent(depth);
        out += '}';
    } else if (value.is_array()) {
        const auto& array = value.get_array();
        if (array.empty()) {
            out += "[]";
            return;
        }
        out += "[\n";
        bool first = true;
        for (const auto& element : array) {
            if (!first) out += ",\n";
            first = false;
            indent(depth + 1);
            pretty(element, out, depth + 1);
        }
        out += '\n';
        indent(depth);
        out += ']';
    } else {
        out += json::serialize(value);
    }
}

std::string text_of(const json::object& job, std::string_view key) {
    const auto* value = job.if_contains(key);
    if (value == nullptr || !value->is_string()) return "-";
    return std::string(value->get_string());
}

std::string progress_of(const json::object& job) {
    // A finished job's output is complete even when its worker never reported progress.
    if (text_of(job, "state") == "succeeded") return "100%";
    const auto* value = job.if_contains("progress");
    if (value == nullptr || !value->is_number()) return "-";
    const double fraction = std::clamp(value->to_number<double>(), 0.0, 1.0);
    return std::to_string(static_cast<int>(std::floor(fraction * 100 + 1e-9))) + "%";
}

}  // namespace

std::string pretty_json(const json::value& value) {
    std::string out;
    pretty(value, out, 0);
    out += '\n';
    return out;
}

TimeFormatter local_time_formatter() {
    return [](std::int64_t unix_ms) {
        const time_t seconds = static_cast<time_t>(unix_ms / 1000);
        tm local{};
        localtime_r(&seconds, &local);
        char text[32];
        const auto n = strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
        return std::string(text, n);
    };
}

std::string job_table(const json::array& jobs, const TimeFormatter& format_time) {
    using Row = std::array<std::string, 5>;
    std::vector<Row> rows{{"ID", "TYPE", "STATE", "PROGRESS", "CREATED"}};
    for (const auto& item : jobs) {
        if (!item.is_object()) continue;
        const auto& job = item.get_object();
        std::string created = "-";
        if (const auto* at = job.if_contains("created_at"); at != nullptr && at->is_number()) {
            created = format_time(at->to_number<std::int64_t>());
        }
        rows.push_back({text_of(job, "id"), text_of(job, "type"), text_of(job, "state"),
                        progress_of(job), created});
    }
    std::array<std::size_t, 5> widths{};
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i)
            widths[i] = std::max(widths[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
        }
        out += line + '\n';
    }
    return out;
}

std::string http_error_message(int status, std::string_view body) {
    boost::system::error_code ec;
    const auto value = json::parse(body, ec);
    if (!ec && value.is_object()) {
        if (const auto* error = value.get_object().if_contains("error")) {
            if (const auto* object = error->if_object()) {
                if (const auto* message = object->if_contains("message");
                    message != nullptr && message->is_string() && !message->get_string().empty()) {
                    return std::string(message->get_string());
                }
            }
            if (error->is_string()) return std::string(error->get_string());
        }
    }
    auto line = body.substr(0, body.find('\n'));
    while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
        line.remove_suffix(1);
    if (line.empty()) return "HTTP " + std::to_string(status);
    return std::string(line.substr(0, 200));
}

}  // namespace jobcast::cli
