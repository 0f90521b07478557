#include "protocol/assign_check.hpp"

#include <climits>
#include <stdexcept>

#include "protocol/codec.hpp"

namespace jobcast::proto {

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
