// Why a worker-protocol frame did not decode: a code and a detail that names
// the field. Shared by the codec and the msgpack <-> JSON conversion it uses.
#pragma once

#include <string>
#include <string_view>

namespace jobcast::proto {

enum class DecodeErrorCode {
    oversize,       // frame larger than the configured limit
    malformed,      // not msgpack, truncated, or trailing bytes after the map
    not_a_map,      // top level is not a map
    bad_version,    // "v" missing or not 1
    unknown_type,   // "t" missing or not a message of this direction
    missing_field,  // a required field is absent
    wrong_type,     // a field has the wrong msgpack type or is out of range
    too_deep,       // nesting deeper than the limit
    invalid_utf8,   // a string is not valid UTF-8
};

std::string_view to_string(DecodeErrorCode code);

struct DecodeError {
    DecodeErrorCode code;
    // e.g. "field 'wseq': expected unsigned integer". Peer-supplied text in it
    // (an unknown type's name) is cut short; log it through log_quote.
    std::string detail;
    // The message type ("hello", "assign", ...) when 't' named one of this
    // direction's messages and its fields were wrong; empty otherwise. Lets the
    // broker answer a refused hello.
    std::string_view message_type = {};
};

}  // namespace jobcast::proto
