#include "protocol/decode_error.hpp"

namespace jobcast::proto {

std::string_view to_string(DecodeErrorCode code) {
    switch (code) {
        case DecodeErrorCode::oversize:
            return "oversize";
        case DecodeErrorCode::malformed:
            return "malformed";
        case DecodeErrorCode::not_a_map:
            return "not_a_map";
        case DecodeErrorCode::bad_version:
            return "bad_version";
        case DecodeErrorCode::unknown_type:
            return "unknown_type";
        case DecodeErrorCode::missing_field:
            return "missing_field";
        case DecodeErrorCode::wrong_type:
            return "wrong_type";
        case DecodeErrorCode::too_deep:
            return "too_deep";
        case DecodeErrorCode::invalid_utf8:
            return "invalid_utf8";
    }
    return "unknown";
}

}  // namespace jobcast::proto
