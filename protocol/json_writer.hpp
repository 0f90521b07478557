// Low-level JSON text building shared by the codec (msgpack -> JSON) and the
// client JSON shapes. Internal to protocol/ except json::append_quoted, the
// string escaper every module uses (json.hpp brings it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace jobcast::json {

// Appends `text` as a JSON string literal (quotes and escapes included).
void append_quoted(std::string& out, std::string_view text);

}  // namespace jobcast::json

namespace jobcast::json::detail {

void append_int(std::string& out, std::int64_t value);
void append_uint(std::string& out, std::uint64_t value);

// Shortest text that reads back as the same double (std::to_chars). Returns
// false and writes nothing for NaN and infinities, which JSON cannot represent.
// -0 is written "-0.0": a bare "-0" reads back as the integer 0 in Boost.JSON and
// would lose its sign on a round trip.
bool append_double(std::string& out, double value);
// Same for a float32 from msgpack: the shortest text for the float, so 0.1f
// shows as 0.1 rather than 0.10000000149011612.
bool append_float(std::string& out, float value);

}  // namespace jobcast::json::detail
