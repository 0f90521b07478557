#include "protocol/event_data.hpp"

#include <algorithm>
#include <array>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cmath>

namespace jobcast::client_api {

namespace {

std::string string_member(const boost::json::object& object, std::string_view key) {
    auto* value = object.if_contains(key);
    if (!value || !value->is_string()) return {};
    return std::string(value->get_string());
}

}  // namespace

EventData read_event_data(const Event& event) {
    EventData out;
    // Token data is a few dozen bytes: parse into a stack buffer, no heap.
    std::array<unsigned char, 1024> buffer;
    boost::json::monotonic_resource resource(buffer.data(), buffer.size());
    boost::system::error_code ec;
    boost::json::value value = boost::json::parse(event.data, ec, &resource);
    if (ec || !value.is_object()) return out;
    const auto& data = value.get_object();
    switch (event.kind) {
        case EventKind::token:
            out.text = string_member(data, "text");
            break;
        case EventKind::state: {
            out.state = parse_job_state(string_member(data, "state"));
            if (auto* attempt = data.if_contains("attempt"); attempt && attempt->is_int64()) {
                out.attempt =
                    static_cast<int>(std::clamp<std::int64_t>(attempt->get_int64(), 0, 1 << 20));
            }
            out.reason = string_member(data, "reason");
            if (auto* resume = data.if_contains("resume_seq"); resume && resume->is_int64()) {
                out.resume_seq =
                    static_cast<std::uint64_t>(std::max<std::int64_t>(resume->get_int64(), 0));
            }
            break;
        }
        case EventKind::progress: {
            if (auto* fraction = data.if_contains("fraction"); fraction && fraction->is_number()) {
                double f = fraction->to_number<double>();
                if (!std::isnan(f)) out.fraction = std::clamp(f, 0.0, 1.0);
            }
            if (auto* stage = data.if_contains("stage"); stage && stage->is_string()) {
                out.stage = std::string(stage->get_string());
            }
            break;
        }
        case EventKind::log:
        case EventKind::error:
            out.message = string_member(data, "message");
            break;
        case EventKind::result:
            break;
    }
    return out;
}

}  // namespace jobcast::client_api
