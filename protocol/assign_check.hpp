// The broker's side of protocol/limits.hpp: whether an assign is one every
// worker decodes, checked by encoding it and running the worker's own decoder,
// at submit (params_problem) and before sending (check_assign).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protocol/messages.hpp"

namespace jobcast::proto {

// Encodes `assign` into `frame` and checks it the way a worker will decode it:
// the frame size against kMaxFrameBytes, then the worker's decoder itself
// (unique keys, nesting depth). nullopt when a worker can take it; otherwise
// why not, for a log line or a job error.
struct AssignProblem {
    enum class Kind { too_large, too_deep, undecodable } kind;
    std::string detail;  // e.g. "1200345 bytes, over the limit of 1048576"
};
std::optional<AssignProblem> check_assign(const Assign& assign, std::string& frame);

// The client's view of the same rule, for a job being created: params (a JSON
// object's text) that a worker could not decode in the assign of a job of
// `type`, with the message a 400 answer carries ("field 'params' ..."). The
// assign is measured with the longest job id and attempt, and no checkpoint.
std::optional<std::string> params_problem(std::string_view type, std::string_view params);

}  // namespace jobcast::proto
