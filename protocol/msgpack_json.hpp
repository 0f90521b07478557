// Conversion between the msgpack maps on the wire (chunk data, assign params,
// done result) and the JSON object text the structs carry. Internal to
// protocol/, used by codec.cpp.
#pragma once

#include <msgpack/object.hpp>
#include <msgpack/pack.hpp>
#include <string>
#include <string_view>

#include "protocol/decode_error.hpp"

namespace jobcast::proto::detail {

// msgpack::packer writes straight through to this sink, so code holding the
// packer may also append raw bytes to the same string.
struct StringSink {
    std::string* out;
    void write(const char* data, std::size_t size) { out->append(data, size); }
};
using Packer = msgpack::packer<StringSink>;

// Appends the JSON text of `map`, a msgpack map that is the value of `field`
// (named in error details). The map itself is at depth 1; a map or array nested
// deeper than `max_depth` is too_deep. Keys must be strings and unique; floats
// must be finite; bin and ext values have no JSON form and are wrong_type (a
// worker that wants to send bytes base64-encodes them into a string itself).
// Strings are expected to be valid UTF-8 already (scan_frame checked them).
bool map_to_json(const msgpack::object& map, std::string_view field, int max_depth,
                 std::string& out, DecodeError& error);

// Appends `json_text`, which must be a JSON object, as a msgpack map. Numbers
// keep their kind: integers as msgpack integers, others as float64. Throws
// std::invalid_argument when the text is not a JSON object.
void pack_json_object(std::string& out, std::string_view json_text, std::string_view field);

}  // namespace jobcast::proto::detail
