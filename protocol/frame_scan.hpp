// A first pass over an untrusted msgpack frame, before msgpack-c builds objects
// from it. msgpack-c allocates an array's or map's slots as soon as it reads the
// header, so a few header bytes claiming 2^32 elements (repeated at each level of
// nesting) cost gigabytes before it notices the frame is truncated. This scan
// walks the bytes without allocating and rejects such frames, nesting beyond the
// limit and invalid UTF-8 anywhere (keys, values, unknown fields) up front.
// Internal to protocol/.
#pragma once

#include <cstddef>
#include <string_view>

namespace jobcast::proto::detail {

enum class ScanError { none, malformed, too_deep, invalid_utf8 };

struct ScanResult {
    ScanError error = ScanError::none;
    std::string_view detail;  // static text
};

// Checks that `frame` is exactly one well-formed msgpack object (no trailing
// bytes), that no array or map sits deeper than `max_depth` (the top-level object
// is depth 1), that every str is valid UTF-8, and that the declared element
// counts fit in the bytes left — so the objects msgpack-c then allocates are
// bounded by the frame size.
ScanResult scan_frame(std::string_view frame, std::size_t max_depth);

}  // namespace jobcast::proto::detail
