#include "protocol/limits.hpp"

#include <climits>
#include <stdexcept>

#include "protocol/codec.hpp"
#include "protocol/utf8.hpp"

namespace jobcast::proto {

bool is_printable_name(std::string_view name, std::size_t max_bytes) {
    if (name.empty() || name.size() > max_bytes) return false;
    const auto* s = reinterpret_cast<const unsigned char*>(name.data());
    std::size_t pos = 0;
    while (pos < name.size()) {
        const std::size_t length = detail::utf8_sequence_length(name, pos);
        if (length == 0) return false;
        const unsigned char b0 = s[pos];
        if (b0 < 0x20 || b0 == 0x7f) return false;           // C0, DEL
        if (b0 == 0xc2 && s[pos + 1] <= 0x9f) return false;  // C1: U+0080..U+009F
        if (b0 == 0xe2 && s[pos + 1] == 0x80 && (s[pos + 2] == 0xa8 || s[pos + 2] == 0xa9)) {
            return false;  // U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR
        }
        pos += length;
    }
    return true;
}

std::optional<AssignProblem> check_assign(const Assign& assign, std::string& frame) {
    using Kind = AssignProblem::Kind;
    try {
        encode(BrokerMessage{assign}, frame);
    } catch (const std::exception& e) {
        frame.clear();
        return AssignProblem{Kind::undecodable, e.what()};
    }
    if (frame.size() > kMaxFrameBytes) {
        return AssignProblem{Kind::too_large, std::to_string(frame.size()) +
                                                  " bytes, over the limit of " +
                                                  std::to_string(kMaxFrameBytes)};
    }
    // The worker's own decoder, with the limits it runs with: whatever it
    // would refuse (a duplicate key, nesting past kMaxDataDepth) is refused here.
    auto decoded = decode_broker_message(frame);
    if (auto* error = std::get_if<DecodeError>(&decoded)) {
        const Kind kind = error->code == DecodeErrorCode::too_deep   ? Kind::too_deep
                          : error->code == DecodeErrorCode::oversize ? Kind::too_large
                                                                     : Kind::undecodable;
        return AssignProblem{kind, std::move(error->detail)};
    }
    return std::nullopt;
}

std::optional<std::string> params_problem(std::string_view type, std::string_view params) {
    Assign assign;
    assign.job.assign(kMaxJobIdBytes, '0');
    assign.attempt = INT_MAX;
    assign.type.assign(type);
    assign.params.assign(params);
    thread_local std::string frame;
    auto problem = check_assign(assign, frame);
    if (frame.capacity() > (std::size_t{64} << 10)) std::string().swap(frame);
    if (!problem) return std::nullopt;
    switch (problem->kind) {
        case AssignProblem::Kind::too_large:
            return "field 'params' is too large for a worker: its assign message would be " +
                   problem->detail + " (a number with a fraction or exponent takes 9 bytes there)";
        case AssignProblem::Kind::too_deep:
            return "field 'params' nests deeper than " + std::to_string(kMaxDataDepth) +
                   " levels (the params object is level 1), more than a worker decodes";
        case AssignProblem::Kind::undecodable:
            break;
    }
    // The decoder's detail names the field itself: "field 'params': duplicate key ...".
    std::string_view detail = problem->detail;
    constexpr std::string_view kPrefix = "field 'params': ";
    if (detail.starts_with(kPrefix)) detail.remove_prefix(kPrefix.size());
    return "field 'params' cannot be decoded by a worker: " + std::string(detail);
}

}  // namespace jobcast::proto
