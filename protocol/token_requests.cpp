#include "protocol/token_requests.hpp"

#include <algorithm>
#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace jobcast::json {

namespace bj = boost::json;

namespace {

constexpr std::size_t kMaxDepth = 4;

std::variant<bj::object, RequestError> parse_object(std::string_view body) {
    if (body.empty()) return bj::object{};
    bj::error_code ec;
    bj::parse_options options;
    options.max_depth = kMaxDepth;
    auto value = bj::parse(body, ec, {}, options);
    if (ec) return RequestError{"body is not valid JSON: " + ec.message()};
    if (!value.is_object()) return RequestError{"body must be a JSON object"};
    return std::move(value.as_object());
}

// Whole seconds in [1, kMaxTokenTtlSeconds]; a number with a fraction, a
// negative one or one past the bound (however large) is refused.
std::optional<std::int64_t> ttl_of(const bj::value& value) {
    if (value.is_int64()) {
        auto v = value.get_int64();
        if (v >= 1 && v <= kMaxTokenTtlSeconds) return v;
    } else if (value.is_uint64()) {
        auto v = value.get_uint64();
        if (v <= static_cast<std::uint64_t>(kMaxTokenTtlSeconds))
            return static_cast<std::int64_t>(v);
    }
    return std::nullopt;
}

}  // namespace

std::variant<TokenRequest, RequestError> parse_token_request(std::string_view body) {
    auto parsed = parse_object(body);
    if (auto* error = std::get_if<RequestError>(&parsed)) return std::move(*error);
    TokenRequest out;
    for (const auto& [name, value] : std::get<bj::object>(parsed)) {
        if (name == "ttl") {
            out.ttl_seconds = ttl_of(value);
            if (!out.ttl_seconds) {
                return RequestError{"ttl must be whole seconds between 1 and " +
                                    std::to_string(kMaxTokenTtlSeconds)};
            }
        } else if (name == "cancel") {
            if (!value.is_bool()) return RequestError{"cancel must be true or false"};
            out.cancel = value.get_bool();
        } else {
            return RequestError{"unknown field '" + std::string(name.substr(0, 64)) +
                                "'; a token request has ttl and cancel"};
        }
    }
    return out;
}

std::variant<RevokeRequest, RequestError> parse_revoke_request(std::string_view body) {
    auto parsed = parse_object(body);
    if (auto* error = std::get_if<RequestError>(&parsed)) return std::move(*error);
    const auto& object = std::get<bj::object>(parsed);
    constexpr std::array<std::pair<std::string_view, RevokeRequest::Kind>, 3> kinds = {
        {{"token_id", RevokeRequest::Kind::token},
         {"job", RevokeRequest::Kind::job},
         {"owner", RevokeRequest::Kind::owner}}};
    constexpr std::string_view kShape = "a revocation names exactly one of token_id, job, owner";
    std::optional<RevokeRequest> out;
    for (const auto& [name, value] : object) {
        const std::string_view field = name;  // clang 14 cannot capture a structured binding
        auto kind = std::find_if(kinds.begin(), kinds.end(),
                                 [&](const auto& k) { return k.first == field; });
        if (kind == kinds.end()) {
            return RequestError{"unknown field '" + std::string(name.substr(0, 64)) + "'; " +
                                std::string(kShape)};
        }
        if (out) return RequestError{std::string(kShape)};
        if (!value.is_string() || value.get_string().empty() ||
            value.get_string().size() > kMaxRevokeKeyBytes) {
            return RequestError{std::string(name) + " must be a non-empty string of at most " +
                                std::to_string(kMaxRevokeKeyBytes) + " bytes"};
        }
        out = RevokeRequest{kind->second, std::string(value.get_string())};
    }
    if (!out) return RequestError{std::string(kShape)};
    return std::move(*out);
}

}  // namespace jobcast::json
